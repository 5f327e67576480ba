"""Stack allowances for the external functions a secret call tree reaches.

Measured bounds, not proofs: ``tests/test_allowance_calibration.py``
re-measures each of them on every run (``tests/test_aarch64.py`` on AArch64).
"""

# Allowances for external callees, in bytes of stack they may write below the
# call site's stack pointer (return address included).  glibc's string
# functions are leaf assembly (measured: 8 bytes, the return address).
# malloc/free and libm were measured with the poisoned-stack probe on slow
# paths (mmap-sized blocks, consolidation, huge-argument reduction): at most
# 312 bytes for malloc/free and 296 for libm on glibc 2.36; the allowances give
# about 5x headroom, and tests/test_allowance_calibration.py re-measures them
# on every run.  numba's C runtime entries are bounded in ``secretjit.pipeline``.
EXTERNAL_ALLOWANCE = {
    'memset': 256, 'memcpy': 256, 'memmove': 256, 'memcmp': 256,
    'bcmp': 256, 'strlen': 256,
    'malloc': 1536, 'free': 1536, 'calloc': 1536, 'realloc': 1536,
    'getrandom': 512, 'secretjit_libc_getrandom': 512,
    'secretjit_libc_errno_location': 64,
    '__udivti3': 256, '__umodti3': 256, '__divti3': 256, '__modti3': 256,
    '__multi3': 256, '__powidf2': 256, '__powisf2': 256,
    '__truncdfhf2': 256, '__extendhfsf2': 256, '__truncsfhf2': 256,
    # The secret arena (secretjit/csrc/arena.c): its own frames, then
    # mprotect/mlock/madvise system calls and pthread mutexes on slow paths;
    # no stdio (its one warning is formatted by hand).  Measured: at most
    # 232 bytes (alloc, carving new spans) and 72 (free); re-measured by
    # tests/test_allowance_calibration.py.
    'secretjit_arena_alloc': 1024, 'secretjit_arena_free': 1024,
    'secretjit_arena_realloc': 1024,
    # Its small-block front end (slab.c): a frame of its own, then the arena.
    'secretjit_slab_alloc': 1024, 'secretjit_slab_free': 1024,
    'secretjit_slab_realloc': 1024,
}
LIBM_ALLOWANCE = 1536
LIBM = frozenset('''
    sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2
    expm1 log log2 log10 log1p pow sqrt cbrt hypot fmod remainder erf erfc
    tgamma lgamma floor ceil trunc round rint nearbyint ldexp frexp modf copysign
    fma fmin fmax sincos exp10 nextafter'''.split())
# Anything else: numba helper functions, unknown C code, indirect calls.
DEFAULT_ALLOWANCE = 16384


def external_allowance(name, extra=None):
    """Stack allowance in bytes for the external function ``name``."""
    if extra and name in extra:
        return extra[name]
    base = name[:-1] if name.endswith('f') and name[:-1] in LIBM else name
    if base in LIBM:
        return LIBM_ALLOWANCE
    return EXTERNAL_ALLOWANCE.get(name, DEFAULT_ALLOWANCE)
