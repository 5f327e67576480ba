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

_FIELDS = [
    ('arena_start', ctypes.c_size_t), ('arena_end', ctypes.c_size_t),
    ('arena_limit', ctypes.c_size_t), ('arena_carved', ctypes.c_size_t),
    ('arena_in_use', ctypes.c_size_t), ('locked_bytes', ctypes.c_size_t),
    ('arena_failures', ctypes.c_uint64), ('stack_size', ctypes.c_size_t),
    ('stacks_created', ctypes.c_uint64), ('stack_fallbacks', ctypes.c_uint64),
    ('mlock_errno', ctypes.c_int), ('dontdump_errno', ctypes.c_int),
    ('wipeonfork_errno', ctypes.c_int), ('reserved', ctypes.c_int),
]


class MemStats(ctypes.Structure):
    """``struct secretjit_memstats`` of secretmem.h."""
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
        handle.secretjit_memstats.argtypes = [ctypes.POINTER(MemStats)]
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
    st = MemStats()
    lib().secretjit_memstats(ctypes.byref(st))
    return {name: getattr(st, name) for name, _ in _FIELDS if name != 'reserved'}


def stack_range():
    """The calling thread's secret stack as ``(lo, hi)``, or None."""
    lo, hi = ctypes.c_size_t(), ctypes.c_size_t()
    if lib().secretjit_stack_range(ctypes.byref(lo), ctypes.byref(hi)):
        return lo.value, hi.value
    return None


def stack_size():
    """Bytes of secret stack per thread, as the C runtime read them.

    ``SECRETJIT_STACK_SIZE`` (page-rounded), read once when the runtime was
    loaded: compile-time checks use the size the calls will really get.
    """
    return memory_status()['stack_size']


def arena_size():
    """Bytes of the secret arena's reservation, as the C runtime made it."""
    return memory_status()['arena_limit']


def mappings(smaps='/proc/self/smaps'):
    """Every mapping of this process, from ``/proc/self/smaps``.

    A list of dicts: ``start``, ``end``, ``perms`` (``rw-p``...), ``flags``
    (the set of VmFlags: ``dd`` left out of core dumps, ``wf`` wiped on fork,
    ``lo`` locked, ...) and each ``kB`` field under its name (``Rss``,
    ``Locked``, ...), in kB.
    """
    out = []
    with open(smaps) as f:
        for line in f:
            head, _, rest = line.partition(' ')
            if not head.endswith(':') and '-' in head:
                start, end = (int(x, 16) for x in head.split('-'))
                out.append({'start': start, 'end': end, 'perms': rest.split()[0],
                            'flags': set()})
            elif head == 'VmFlags:':
                out[-1]['flags'] = set(rest.split())
            elif line.rstrip().endswith(' kB'):
                out[-1][head[:-1]] = int(rest.split()[0])
    return out


def mapping_flags(lo, hi, smaps='/proc/self/smaps'):
    """What the kernel says about the readable pages of ``[lo, hi)``.

    Returns ``(flags, locked_kib, rss_kib)``: the VmFlags every readable
    mapping in the range carries (``dd``: left out of core dumps, ``wf``:
    wiped on fork, ``lo``: locked), and the Locked/Rss sums over them.
    Guard pages (no access) are skipped.
    """
    common, locked, rss = None, 0, 0
    for m in mappings(smaps):
        if m['start'] < hi and m['end'] > lo and m['perms'][0] == 'r':
            locked += m['Locked']
            rss += m['Rss']
            common = m['flags'] if common is None else common & m['flags']
    return (common or set()), locked, rss
