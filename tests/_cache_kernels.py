"""A cached secret kernel for tests/test_compile_time.py (numba caches by source file)."""

from secretjit import secret_jit


@secret_jit(cache=True)
def add_one(a):
    return a + 1.0
