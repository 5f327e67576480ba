"""numba's allocation statistics, counting the secret allocator's blocks too.

numba's C runtime counts allocations while its statistics are enabled
(``TheMSys.stats`` in ``numba/core/runtime/nrt.cpp``): ``alloc``/``free``
for every ``NRT_Allocate``/``NRT_Free`` and MemInfo block, ``mi_alloc``/
``mi_free`` for every MemInfo made or destroyed.  Secret kernels allocate
through :mod:`secretjit.arena_nrt` instead, which numba never sees, while the
frees of secret MemInfos still go through numba's C code and are counted
there.  So the secret runtime counts its own allocations (and the payload
and scratch frees it does itself) in counters kept here (one set for the
process, shared by every secret engine), and
``rtsys.get_allocation_stats()`` (what numba's ``MemoryLeakMixin`` and
users' leak checks read) reports numba's counts plus these: balanced when
nothing leaks, under either allocator.

The runtime counts only while numba's statistics are enabled, as numba
does: enabling or disabling them through ``numba.core.runtime._nrt_python``
(``memsys_enable_stats``/``memsys_disable_stats``, which
``rtsys.memsys_enable_stats`` also calls) switches the secret counters too,
and every read of the statistics re-synchronises the switch.
"""

import ctypes
import threading
from collections import namedtuple

from numba.core.runtime import _nrt_python as _nrt
from numba.core.runtime import nrt as _numba_nrt

from .arena_nrt import STATS, STATS_FIELDS

SecretAllocationStats = namedtuple('SecretAllocationStats',
                                   ['alloc', 'free', 'mi_alloc'])

_lock = threading.Lock()
# enabled flag, alloc, free, mi_alloc: the runtime's external global
# ``secretjit_nrt_stats`` in every secret engine (kept for the process).
_counters = (ctypes.c_int64 * len(STATS_FIELDS))()
_numba = {}              # numba's own functions, before the hooks


def _set_enabled(on):
    _counters[0] = 1 if on else 0


def _sync():
    _set_enabled(_nrt.memsys_stats_enabled())


def secret_allocation_stats():
    """What the secret runtime counted: ``(alloc, free, mi_alloc)``.

    The frees and ``mi_free`` of secret MemInfos are counted by numba's C
    runtime itself (they are freed through it), so they are in numba's
    numbers, not here.
    """
    return SecretAllocationStats(*_counters[1:])


def get_allocation_stats():
    """``rtsys.get_allocation_stats()`` including secret allocations."""
    _sync()
    stats = _numba['get_allocation_stats']()    # raises while disabled
    ours = secret_allocation_stats()
    return stats._replace(alloc=stats.alloc + ours.alloc,
                          free=stats.free + ours.free,
                          mi_alloc=stats.mi_alloc + ours.mi_alloc)


def _enable_stats():
    _numba['memsys_enable_stats']()
    _set_enabled(True)


def _disable_stats():
    _numba['memsys_disable_stats']()
    _set_enabled(False)


def _install_hooks():
    rtsys = _numba_nrt.rtsys
    _numba['get_allocation_stats'] = rtsys.get_allocation_stats
    _numba['memsys_enable_stats'] = _nrt.memsys_enable_stats
    _numba['memsys_disable_stats'] = _nrt.memsys_disable_stats
    rtsys.get_allocation_stats = get_allocation_stats
    _nrt.memsys_enable_stats = _enable_stats
    _nrt.memsys_disable_stats = _disable_stats


def install():
    """Hook numba's statistics; the counters' address for the secret engines."""
    with _lock:
        if not _numba:
            _install_hooks()
        _sync()
    return ctypes.addressof(_counters)
