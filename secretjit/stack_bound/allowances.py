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
    # The secret arena (secretjit/csrc/arena*.c): its own frames, then
    # mprotect/mlock/madvise system calls and pthread mutexes on slow paths;
    # no stdio (its one warning is formatted by hand).  Measured: at most
    # 232 bytes (alloc, carving new spans) and 72 (free); re-measured by
    # tests/test_allowance_calibration.py.
    'secretjit_arena_alloc': 1024, 'secretjit_arena_free': 1024,
    'secretjit_arena_realloc': 1024,
    # Its small-block front end (slab.c): a frame of its own, then the arena.
    'secretjit_slab_alloc': 1024, 'secretjit_slab_free': 1024,
    'secretjit_slab_realloc': 1024,
    # The marking wrappers of the secret engines' memset/memcpy/memmove
    # (csrc/marked.c: a flag store, then a call of libc's): libc's allowance
    # and a small frame (272 bytes read from the machine code on x86-64).
    'secretjit__m_memset': 256 + 64, 'secretjit__m_memcpy': 256 + 64,
    'secretjit__m_memmove': 256 + 64,
}
# The C library functions the secret runtime's kernel-path entries
# (secretjit_slab_*, read from _secretmem's machine code by
# stack_bound.native.runtime_bounds) call: system-call wrappers, pthread
# mutexes, the string functions of the mlock-failure warning.  Measured with
# the poisoned-stack probe (glibc 2.36, x86-64): 24 bytes for mmap, mprotect,
# mlock, munlock, madvise, getrlimit, __errno_location, strchr, strncmp and
# an uncontended mutex; close 56, read/write 72, strtoll 104, open 152; a
# contended lock (futex wait) 56 and an unlock waking a waiter 40.  Fixed
# code (no slow path the probe cannot reach but cancellation), so about 2.5x
# headroom; tests/test_allowance_calibration.py re-measures every entry.
# Each of these calls goes through a marking wrapper (csrc/marked.h): an
# exact secret call in which one ran checks the frame window below the depth
# like the plain call, so an allowance that was too small is still caught.
RUNTIME_LIBC_ALLOWANCE = dict(
    {n: 64 for n in (
        'mmap mprotect mlock munlock madvise getrlimit __errno_location strchr '
        'strncmp').split()},
    pthread_mutex_lock=128, pthread_mutex_unlock=128, close=128, read=256,
    write=256, strtoll=256, open=384,
    memset=EXTERNAL_ALLOWANCE['memset'], memcpy=EXTERNAL_ALLOWANCE['memcpy'],
    memmove=EXTERNAL_ALLOWANCE['memmove'], strlen=EXTERNAL_ALLOWANCE['strlen'])
LIBM_ALLOWANCE = 1536
LIBM = frozenset('''
    sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2
    expm1 log log2 log10 log1p pow sqrt cbrt hypot fmod remainder erf erfc
    tgamma lgamma floor ceil trunc round rint nearbyint ldexp frexp modf copysign
    fma fmin fmax sincos exp10 nextafter'''.split())
# numba's C helpers (numba/_helperlib.c, numba/cext/{list,dict}object.c)
# that nopython code reaches: every one found in the call trees of the test
# and channel kernels (with and without the allow= opt-outs) and of numba
# features tried beside them, measured with the poisoned-stack probe on their
# slow paths by secretjit.testing.calibration (x86-64, glibc 2.36; the
# typed-list/dict entries include their malloc/realloc/free).  Measured worst
# -> allowance: reshape of 32 dimensions 1120 -> 2560; cpow 3336 -> 7168
# (CPython's _Py_c_pow); dict insert/new 424/312 -> 1536; list append and
# delete_slice 392/472 -> 1536; dict/list free 200/216 -> 1024; lookup 136
# -> 512; the math wrappers (tgamma, lgamma, erf, ...) 312 -> libm's 1536;
# the others 24-96 -> 256 (list_new, which mallocs: 1024).  The typed
# containers' method-table callbacks (numba-generated key equality,
# incref/decref) are not counted here: they only run under the
# typed-containers opt-out, and a write below the bound is detected and
# scrubbed by the secret stack (secretjit/csrc/secretstack.c).
# tests/test_allowance_calibration.py re-measures every entry.
_LEAF = 256
NUMBA_HELPER_ALLOWANCE = dict(
    {'numba_' + n: _LEAF for n in '''
        list_base_ptr list_size_address list_length list_allocated
        list_is_mutable list_set_is_mutable list_set_method_table list_setitem
        list_getitem list_delitem list_iter_sizeof list_iter list_iter_next
        dict_length dict_set_method_table dict_delitem dict_popitem
        dict_iter_sizeof dict_iter dict_iter_next
        rnd_init rnd_shuffle gettyperecord get_PyUnicode_ExtendedCase
        fptoui fptouif sdiv srem udiv urem'''.split()},
    **{'numba_' + n: LIBM_ALLOWANCE for n in '''
        gamma gammaf lgamma lgammaf erf erff erfc erfcf frexp frexpf ldexp
        ldexpf nextafter nextafterf round roundf cpowf'''.split()},
    numba_attempt_nocopy_reshape=2560, numba_cpow=7168,
    numba_list_new=1024, numba_list_append=1536, numba_list_delete_slice=1536,
    numba_list_free=1024, numba_dict_new_sized=1536, numba_dict_insert=1536,
    numba_dict_lookup=512, numba_dict_free=1024)
# numba's C helpers that may run the Python interpreter: the random states
# seed themselves with os.urandom() through it on first use in a thread
# (numba/_random.c, rnd_implicit_init).  The stack bound refuses them
# (no-interpreter-calls) like every other call into the interpreter.
RUNS_PYTHON = frozenset(['numba_get_np_random_state', 'numba_get_py_random_state',
                         'numba_get_internal_random_state'])
# The stack bound gives no allowance to an external it does not list (it is
# a bounded-stack error).  This figure is what the audit (secretjit.audit)
# counts for a call through a pointer it cannot resolve, and what tests pass
# as compute_bounds' indirect_allowance.
DEFAULT_ALLOWANCE = 16384


def known_allowance(name, extra=None):
    """Measured stack allowance in bytes for the external ``name``, or None."""
    if extra and name in extra:
        return extra[name]
    base = name[:-1] if name.endswith('f') and name[:-1] in LIBM else name
    if base in LIBM:
        return LIBM_ALLOWANCE
    if name in EXTERNAL_ALLOWANCE:
        return EXTERNAL_ALLOWANCE[name]
    return NUMBA_HELPER_ALLOWANCE.get(name)


def external_allowance(name, extra=None):
    """Stack allowance for ``name``: :func:`known_allowance`, else
    :data:`DEFAULT_ALLOWANCE` (the audit's guess; the stack bound refuses
    unknown externals instead)."""
    known = known_allowance(name, extra)
    return DEFAULT_ALLOWANCE if known is None else known
