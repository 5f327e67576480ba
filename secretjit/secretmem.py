"""The C runtime under secret kernels: secret heap (arena) and secret stack.

The sources are in ``secretjit/csrc`` (see ``secretmem.h`` for the contract);
``pip install`` builds them into ``secretjit/_secretmem<EXT_SUFFIX>``, a plain
shared library (no Python API) that this module loads with ctypes.  The JIT
calls its functions by address; AOT libraries compile the same sources for
their target.

Settings (environment, read once when the library first needs them):

``SECRETJIT_ARENA_SIZE``
    Address space of the secret heap, default ``256M`` (``8K`` to ``4T``).
    Every buffer a secret kernel allocates comes from it; when it is full, the
    allocation raises ``MemoryError``.
``SECRETJIT_STACK_SIZE``
    Size of each thread's secret stack, default ``256K`` (``4K`` to ``1G``).
    A kernel whose call tree may need more than this minus
    :func:`signal_reserve` fails to compile (``bounded-stack``).

``SECRETJIT_SECRET_MEMORY``
    ``auto`` (default: ``memfd_secret(2)`` pages when the kernel offers them,
    else mlock'ed anonymous memory), ``memfd`` (``memfd_secret`` or
    :func:`lib` raises ``OSError``), ``mlock``; another value makes :func:`lib`
    raise ``ValueError``.  ``memory_status()['backing']`` says which is in force.

Sizes are whole numbers of bytes with an optional suffix ``K``, ``M``, ``G``
or ``T``; a negative, overflowing, malformed or out-of-range value makes
:func:`lib` raise ``ValueError`` naming the setting and the accepted range.

``secretjit_test_deep_scrub(0)`` of the C runtime is for secretjit's own
tests only (:func:`test_deep_scrub`): it turns off the scrub of what signal
frames (and anything else) wrote below a call's computed depth, so that the
tests can show the leftover it removes.
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
    ('wipeonfork_errno', ctypes.c_int), ('rseq', ctypes.c_int),
    ('signal_scrubs', ctypes.c_uint64), ('nested_calls', ctypes.c_uint64),
    ('signal_reserve', ctypes.c_size_t), ('locked_cached', ctypes.c_size_t),
    ('slab_bytes', ctypes.c_size_t), ('slab_in_use', ctypes.c_size_t),
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
        handle.secretjit_settings_error.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        handle.secretjit_settings_error.restype = ctypes.c_int
        handle.secretjit_signal_reserve.argtypes = []
        handle.secretjit_signal_reserve.restype = ctypes.c_size_t
        handle.secretjit_signal_window.argtypes = []
        handle.secretjit_signal_window.restype = ctypes.c_size_t
        handle.secretjit_set_marked_slack.argtypes = [ctypes.c_size_t]
        handle.secretjit_set_marked_slack.restype = None
        handle.secretjit_marked_slack.argtypes = []
        handle.secretjit_marked_slack.restype = ctypes.c_size_t
        buf = ctypes.create_string_buffer(512)
        if handle.secretjit_settings_error(buf, len(buf)):
            raise ValueError('secretjit: ' + buf.value.decode(errors='replace'))
        handle.secretjit_backing.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        handle.secretjit_backing.restype = ctypes.c_int
        backing, reason = _backing(handle)
        if backing is None:
            raise OSError('secretjit: %s.  Fix: use SECRETJIT_SECRET_MEMORY=auto '
                          '(memfd_secret where it works, else mlock) or mlock'
                          % reason)
        _LIB = handle
    return _LIB


_BACKINGS = {1: 'memfd_secret', 2: 'mlock', 3: 'mixed'}


def _backing(handle):
    """(backing name or None when the required memfd_secret failed, reason)."""
    buf = ctypes.create_string_buffer(512)
    code = handle.secretjit_backing(buf, len(buf))
    return _BACKINGS.get(code), buf.value.decode(errors='replace')


def address(name):
    """Address of a function of the C runtime."""
    return ctypes.cast(getattr(lib(), name), ctypes.c_void_p).value


def memory_status():
    """Counters and settings of the secret heap and stacks, as a dict.

    ``arena_start``/``arena_end`` (address range), ``arena_limit``,
    ``arena_carved`` (bytes of spans ever carved), ``arena_in_use``,
    ``locked_bytes`` (mlock'ed heap and stacks), ``arena_failures``,
    ``stack_size``, ``stacks_created``, ``stack_fallbacks`` (calls that ran on
    the thread's own stack because no secret stack could be set up, or the
    call tree's depth plus ``signal_reserve`` did not fit in it), the first
    ``errno`` of ``mlock``/``MADV_DONTDUMP``/``MADV_WIPEONFORK`` failures
    (0: none), ``signal_scrubs`` (calls after which something, usually a
    signal frame or its handler, had written below the call's computed depth:
    the secret stack was zeroed down to the deepest write), ``nested_calls``
    (secret calls made while the thread's secret stack was in use, run and
    scrubbed in place), ``signal_reserve``, ``locked_cached`` (bytes of
    freed arena spans kept locked for reuse) and ``rseq`` (1 when the calling
    thread's calls learn from rseq whether they were interrupted, and check
    the whole signal window only then; 0: after every call).

    ``backing`` says where the secret pages come from (``SECRETJIT_SECRET_MEMORY``):
    ``'memfd_secret'`` (out of the kernel's direct map: unreadable through
    ``/proc/<pid>/mem``, ptrace and ``process_vm_readv``), ``'mlock'`` (mlock'ed
    anonymous memory), ``'mixed'`` (some mappings fell back to mlock, e.g. on
    RLIMIT_MEMLOCK), or ``'failed'`` (``memfd`` was required and a mapping
    could not have it); ``backing_reason`` says why.
    """
    st = MemStats()
    handle = lib()
    handle.secretjit_memstats(ctypes.byref(st))
    out = {name: getattr(st, name) for name, _ in _FIELDS}
    backing, out['backing_reason'] = _backing(handle)
    out['backing'] = backing or 'failed'
    return out


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


def signal_reserve():
    """Bytes of secret stack kept free below every call tree.

    Room for a signal frame (the red zone, then the kernel's largest signal
    frame, ``getauxval(AT_MINSIGSTKSZ)``, which counts AVX-512 and AMX state)
    and its handler's frames.  A call tree may use at most ``stack_size() -
    signal_reserve()`` bytes.
    """
    return lib().secretjit_signal_reserve()


_SLACK_UNSET = ctypes.c_size_t(-1).value       # SIZE_MAX: secretstack.c's "unset"


def marked_slack():
    """Bytes the exact secret call adds to its depth when one of the secret
    heap's marked calls ran (``secretjit/csrc/marked.h``): set by
    :func:`secretjit.stack_bound.native.runtime_bounds` from the heap's
    machine code; ``None`` until then (such a call scrubs the whole room)."""
    n = lib().secretjit_marked_slack()
    return None if n == _SLACK_UNSET else n


def set_marked_slack(nbytes):
    """Set :func:`marked_slack` (``None``: unset).  The compiler's hot
    depths are valid only with the slack it computed with them: only
    :func:`secretjit.stack_bound.native.runtime_bounds` (and tests, which
    restore it) call this."""
    lib().secretjit_set_marked_slack(_SLACK_UNSET if nbytes is None else nbytes)


def test_deep_scrub(on):
    """For secretjit's own tests only: turn the scrub of writes found below a
    call's computed depth off (False) or on (True, the default).  Returns the
    previous setting."""
    f = lib().secretjit_test_deep_scrub
    f.argtypes, f.restype = [ctypes.c_int], ctypes.c_int
    return bool(f(1 if on else 0))


def signal_window():
    """Bytes below a call's scrub depth checked for writes after every call."""
    return lib().secretjit_signal_window()


def arena_size():
    """Bytes of the secret arena's reservation, as the C runtime made it."""
    return memory_status()['arena_limit']


def mappings(smaps='/proc/self/smaps'):
    """Every mapping of this process, from ``/proc/self/smaps``.

    A list of dicts: ``start``, ``end``, ``perms`` (``rw-p``...), ``name``
    (the mapped file: ``/secretmem`` for memfd_secret memory), ``flags``
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
                fields = rest.split()
                out.append({'start': start, 'end': end, 'perms': fields[0],
                            'name': fields[4] if len(fields) > 4 else '',
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
