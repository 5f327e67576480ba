"""The C runtime under secret kernels: secret heap (arena) and secret stack.

The sources are in ``secretjit/csrc`` (see ``secretmem.h`` for the contract);
``pip install`` builds them into ``secretjit/_secretmem<EXT_SUFFIX>``, a plain
shared library (no Python API) that this module loads with ctypes.  The JIT
calls its functions by address; AOT libraries compile the same sources for
their target.

Settings (environment, read once when the library first needs them):

``SECRETJIT_ARENA_SIZE``
    Address space of the secret heap, default ``256M``.  Every buffer a
    secret kernel allocates comes from it; when it is full, the allocation
    raises ``MemoryError``.
``SECRETJIT_STACK_SIZE``
    Size of each thread's secret stack, default ``256K``.  A kernel whose call
    tree may need more fails to compile (``bounded-stack``).
"""

import ctypes
import os
import sysconfig

CSRC = os.path.join(os.path.dirname(__file__), 'csrc')
DEFAULT_ARENA_SIZE = 256 << 20
DEFAULT_STACK_SIZE = 256 << 10

_FIELDS = [
    ('arena_start', ctypes.c_size_t), ('arena_end', ctypes.c_size_t),
    ('arena_limit', ctypes.c_size_t), ('arena_carved', ctypes.c_size_t),
    ('arena_in_use', ctypes.c_size_t), ('locked_bytes', ctypes.c_size_t),
    ('arena_failures', ctypes.c_uint64), ('stack_size', ctypes.c_size_t),
    ('stacks_created', ctypes.c_uint64), ('stack_fallbacks', ctypes.c_uint64),
    ('mlock_errno', ctypes.c_int), ('dontdump_errno', ctypes.c_int),
    ('wipeonfork_errno', ctypes.c_int), ('reserved', ctypes.c_int),
]


class _MemStats(ctypes.Structure):
    _fields_ = _FIELDS


def library_path():
    return os.path.join(os.path.dirname(__file__),
                        '_secretmem' + sysconfig.get_config_var('EXT_SUFFIX'))


_LIB = None


def lib():
    """The loaded C runtime (``ctypes.CDLL``)."""
    global _LIB
    if _LIB is None:
        path = library_path()
        if not os.path.exists(path):
            raise ImportError(
                "secretjit's C runtime %s is not built: install the package "
                "with `pip install -e .` (or `pip install .`), which compiles "
                "secretjit/csrc with the system C compiler" % path)
        handle = ctypes.CDLL(path)
        handle.secretjit_memstats.argtypes = [ctypes.POINTER(_MemStats)]
        handle.secretjit_memstats.restype = None
        handle.secretjit_stack_range.argtypes = [
            ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)]
        handle.secretjit_stack_range.restype = ctypes.c_int
        _LIB = handle
    return _LIB


def address(name):
    """Address of a function of the C runtime."""
    return ctypes.cast(getattr(lib(), name), ctypes.c_void_p).value


def memory_status():
    """Counters and settings of the secret heap and stacks, as a dict.

    ``arena_start``/``arena_end`` (address range), ``arena_limit``,
    ``arena_carved`` (bytes of spans ever carved), ``arena_in_use``,
    ``locked_bytes`` (mlock'ed heap and stacks), ``arena_failures``,
    ``stack_size``, ``stacks_created``, ``stack_fallbacks`` (calls that ran on
    the thread's own stack because no secret stack could be set up), and the
    first ``errno`` of ``mlock``/``MADV_DONTDUMP``/``MADV_WIPEONFORK`` failures
    (0: none).
    """
    st = _MemStats()
    lib().secretjit_memstats(ctypes.byref(st))
    return {name: getattr(st, name) for name, _ in _FIELDS if name != 'reserved'}


def stack_range():
    """The calling thread's secret stack as ``(lo, hi)``, or None."""
    lo, hi = ctypes.c_size_t(), ctypes.c_size_t()
    if lib().secretjit_stack_range(ctypes.byref(lo), ctypes.byref(hi)):
        return lo.value, hi.value
    return None


def _env_size(name, default):
    """The C runtime's reading of a size setting (for compile-time checks)."""
    s = os.environ.get(name, '').strip()
    if not s:
        return default
    mult = {'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}.get(s[-1].lower(), 1)
    digits = s[:-1] if mult != 1 else s
    if not digits.isdigit() or int(digits) == 0:
        return default                  # the C side warns on stderr
    return int(digits) * mult


def stack_size():
    """Bytes of secret stack per thread (SECRETJIT_STACK_SIZE, page-rounded)."""
    page = os.sysconf('SC_PAGESIZE')
    n = _env_size('SECRETJIT_STACK_SIZE', DEFAULT_STACK_SIZE)
    return (n + page - 1) // page * page


def arena_size():
    page = os.sysconf('SC_PAGESIZE')
    n = _env_size('SECRETJIT_ARENA_SIZE', DEFAULT_ARENA_SIZE)
    return (n + page - 1) // page * page


def mapping_flags(lo, hi, smaps='/proc/self/smaps'):
    """What the kernel says about the readable pages of ``[lo, hi)``.

    Returns ``(flags, locked_kib, rss_kib)``: the VmFlags every readable
    mapping in the range carries (``dd``: left out of core dumps, ``wf``:
    wiped on fork, ``lo``: locked), and the Locked/Rss sums over them.
    Guard pages (no access) are skipped.
    """
    common, locked, rss, vma = None, 0, 0, None
    with open(smaps) as f:
        for line in f:
            head = line.split(None, 1)[0]
            if not head.endswith(':') and '-' in head:
                start, end = (int(x, 16) for x in head.split('-'))
                perms = line.split()[1]
                vma = start < hi and end > lo and perms[0] == 'r'
            elif not vma:
                continue
            elif head == 'Locked:':
                locked += int(line.split()[1])
            elif head == 'Rss:':
                rss += int(line.split()[1])
            elif head == 'VmFlags:':
                flags = set(line.split()[1:])
                common = flags if common is None else common & flags
    return (common or set()), locked, rss
