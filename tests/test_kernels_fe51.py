"""Radix-2^51 field arithmetic (secretjit.kernels._fe51), X25519's field multiply.

- Every operation is exact mod p = 2^255 - 19 on inputs at its documented bounds
  (random limbs and all limbs at the maximum), gives outputs within its bounds, and
  the compiled code (plain ``njit`` and ``secret_jit``) computes what the Python path
  computes.  The control: limbs far above the bounds overflow, and the same
  comparison reports a wrong result.
- The machine code multiplies 64x64->128 bits (``mulx``/``mul`` on x86-64) with no
  call to a 128-bit multiply routine; the control, int64 products in numba code,
  has none of them.
- Bad arguments are typing errors naming the problem.
"""

import platform
import re

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from secretjit import secret_jit
from secretjit.kernels._fe51 import (LIMBS, fe_add, fe_cswap, fe_mul, fe_mul121666, fe_sq,
                                     fe_sub)

P = 2 ** 255 - 19
TIGHT = 0x8CCCCCCCCCCCC          # 1.1 * 2^51: outputs of mul, sq, mul121666; inputs of add, sub
LOOSE = 0x1A666666666664         # 3.3 * 2^51: inputs of mul, sq, mul121666
X86 = platform.machine() in ("x86_64", "AMD64")

# F layout of all_ops: loose inputs at 0 and 5, tight inputs at 10 and 15, outputs from 20
_OUT = {"mul": 20, "sq": 25, "add": 30, "sub": 35, "mul121666": 40}
_SWAP = (45, 50)


def all_ops(F, swap):
    fe_mul(F, 20, 0, 5)
    fe_sq(F, 25, 0)
    fe_add(F, 30, 10, 15)
    fe_sub(F, 35, 10, 15)
    fe_mul121666(F, 40, 0)
    fe_cswap(F, 45, 50, swap)


def value(F, o):
    return sum(int(F[o + i]) << (51 * i) for i in range(LIMBS))


def expected(F):
    a, b, c, d = value(F, 0), value(F, 5), value(F, 10), value(F, 15)
    return {"mul": a * b % P, "sq": a * a % P, "add": (c + d) % P, "sub": (c - d) % P,
            "mul121666": 121666 * a % P}


def inputs(rng, n):
    """n scratch arrays: loose limbs at 0 and 5, tight at 10 and 15, random at 45..55."""
    out = []
    for k in range(n):
        F = np.zeros(55, np.uint64)
        if k == 0:                                   # every limb at its maximum
            F[0:10], F[10:20] = LOOSE - 1, TIGHT - 1
        else:
            F[0:10] = rng.integers(0, LOOSE, 10, dtype=np.uint64)
            F[10:20] = rng.integers(0, TIGHT, 10, dtype=np.uint64)
        F[45:55] = rng.integers(0, 2 ** 63, 10, dtype=np.uint64)
        out.append(F)
    return out


@pytest.fixture(scope="module", params=["njit", "secret_jit"])
def compiled(request):
    return (njit if request.param == "njit" else secret_jit)(all_ops)


def test_exact_mod_p_within_bounds_and_same_as_python(compiled):
    rng = np.random.default_rng(51)
    for k, F in enumerate(inputs(rng, 200)):
        G = F.copy()
        swap = k & 1
        compiled(F, swap)
        all_ops(G, swap)                             # the Python path (_Py)
        np.testing.assert_array_equal(F, G)
        for op, want in expected(F).items():
            o = _OUT[op]
            assert value(F, o) % P == want, (op, k)
            bound = LOOSE if op in ("add", "sub") else TIGHT
            assert int(F[o:o + LIMBS].max()) < bound, (op, k)
        a, b = G[45:50].copy(), G[50:55].copy()
        all_ops(G, 1 - swap)
        np.testing.assert_array_equal(G[45:50], b if swap == 0 else a)


def test_control_limbs_beyond_the_bounds_overflow(compiled):
    """The exactness check can fail: limbs of 2^62 overflow 19 * g (64 bits)."""
    F = np.zeros(55, np.uint64)
    F[0:10] = 2 ** 62 + 12345
    compiled(F, 0)
    assert value(F, _OUT["mul"]) % P != expected(F)["mul"]


def _function_asm(dispatcher):
    asm = dispatcher.inspect_asm(dispatcher.signatures[0])
    name = dispatcher.py_func.__name__
    start = re.search(r"^_ZN\S*%s\S*:$" % name, asm, re.M)
    return asm[start.end():asm.index(".Lfunc_end", start.end())]


def _wide_multiplies(asm):
    return len(re.findall(r"\tmulx?q\t", asm))     # AT&T: mulxq, mulq


@pytest.mark.skipif(not X86, reason="x86-64 machine code")
def test_field_multiply_is_25_wide_multiplies_and_no_call():
    @njit
    def one_mul(F):
        fe_mul(F, 10, 0, 5)

    one_mul(np.zeros(15, np.uint64))
    asm = _function_asm(one_mul)
    assert _wide_multiplies(asm) == 25
    assert len(re.findall(r"\tadc", asm)) >= 20       # the 128-bit column sums
    assert "call" not in asm                          # no __multi3

    @njit
    def int64_products(f, g):                         # the control: 64-bit products only
        s = np.int64(0)
        for i in range(10):
            s += f[i] * g[9 - i]
        return s

    int64_products(np.ones(10, np.int64), np.ones(10, np.int64))
    assert _wide_multiplies(_function_asm(int64_products)) == 0


@pytest.mark.parametrize("body,F,message", [
    (lambda F: fe_mul(F, 0, 0, 0), np.zeros(20, np.float64),
     r"fe_mul\(F, ...\): F must be a writable 1-D C-contiguous uint64 array, got array\(float64"),
    (lambda F: fe_sq(F[::2], 0, 0), np.zeros(20, np.uint64),
     r"fe_sq\(F, ...\): F must be a writable 1-D C-contiguous uint64 array"),
    (lambda F: fe_add(F, 0.5, 0, 0), np.zeros(20, np.uint64),
     r"fe_add\(F, ...\): element offsets must be integers, got float64"),
    (lambda F: fe_cswap(F, 0, 5, 1.0), np.zeros(20, np.uint64),
     r"fe_cswap\(F, a, b, swap\): swap must be an integer 0 or 1, got float64"),
])
def test_bad_arguments_are_typing_errors(body, F, message):
    with pytest.raises(TypingError, match=message):
        njit(body)(F)


def test_cache_key_covers_the_kernel_helpers(monkeypatch):
    """A change to _fe51.py changes the secret cache key (numba's own check looks only at
    x25519.py, so a cached x25519 kernel would otherwise keep the old field arithmetic)."""
    import io
    from secretjit import codegen

    def digest(extra):
        real_open = open

        def reading(path, mode="r", *args, **kw):
            f = real_open(path, mode, *args, **kw)
            if path.endswith("_fe51.py"):
                return io.BytesIO(f.read() + extra)
            return f

        monkeypatch.setattr(codegen, "open", reading, raising=False)
        monkeypatch.setattr(codegen, "_DIGEST", None)
        return codegen._source_digest()

    assert digest(b"") == digest(b"")
    assert digest(b"# changed\n") != digest(b"")
