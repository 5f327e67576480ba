"""Masked scans of memory ranges: the heap detector's freed blocks and the secret arena.

Memory is read through ``/proc/self/mem`` into one preallocated buffer
(the secret arena under memfd_secret backing, which ``/proc/self/mem``
reads as EIO, is copied into it directly: its pages are mapped read-write),
masked in place (:class:`~secretjit.testing.words._Mask`) and compared with
the masked secret words; the buffer is zeroed after the scan.  Nothing is
allocated per word, so a scan leaves no plain copy of what it read.
"""

import ctypes
import os

import numpy as np

from .. import secretmem
from .words import _maps

_CHUNK = 1 << 20
_scan_buffer = None


def _hits(words, wanted):
    """Indexes of ``words`` that are in sorted ``wanted``, without copying ``words``.

    (``np.isin`` sorts a copy of its input: scanning memory with it leaves
    sorted copies of that memory in the heap for the next scan to find.)
    """
    if not len(wanted):
        return np.empty(0, np.intp)
    pos = np.searchsorted(wanted, words)
    np.minimum(pos, len(wanted) - 1, out=pos)
    return np.nonzero(wanted[pos] == words)[0]


def scan_regions(regions, wanted, mask, skip=()):
    """``(address, masked word)`` rows of every ``wanted`` word in ``regions``.

    ``regions`` and ``skip`` are ``(lo, hi)`` address ranges; words in
    ``skip`` are not reported.  ``wanted`` is sorted and masked by ``mask``.
    """
    global _scan_buffer
    if _scan_buffer is None:
        _scan_buffer = np.zeros(_CHUNK // 8, np.uint64)
    buf = _scan_buffer
    skip = list(skip) + [(buf.ctypes.data, buf.ctypes.data + buf.nbytes)]
    mv = memoryview(buf).cast('B')
    st = secretmem.memory_status()
    arena = (st['arena_start'], st['arena_end'])
    out = []
    fd = os.open('/proc/self/mem', os.O_RDONLY)
    try:
        for lo, hi in regions:
            for start in range(lo, hi, _CHUNK):
                end = min(hi, start + _CHUNK)
                try:
                    n = os.preadv(fd, [mv[:end - start]], start)
                except OSError:
                    if not arena[0] <= start < arena[1]:
                        continue
                    n = end - start         # memfd_secret: EIO through /proc
                    ctypes.memmove(buf.ctypes.data, start, n)
                words = buf[:n // 8]
                mask.inplace(words)
                idx = _hits(words, wanted)
                addrs = (start + 8 * idx).astype(np.uint64)
                keep = np.ones(len(idx), bool)
                for a, b in skip:
                    keep &= ~((addrs >= np.uint64(a)) & (addrs < np.uint64(b)))
                out.append(np.stack([addrs[keep], words[idx[keep]]], axis=1))
    finally:
        os.close(fd)
        buf.fill(0)
    return np.concatenate(out) if out else np.empty((0, 2), np.uint64)


def arena_regions():
    """The mapped, writable ranges of the secret arena (where no Python object lives)."""
    st = secretmem.memory_status()
    lo, hi = st['arena_start'], st['arena_end']
    return [(a, b) for a, b, perms, _ in _maps()
            if perms.startswith('rw') and lo <= a < hi]


def scan_arena(wanted, mask, skip=()):
    """``{(address, masked word)}`` of the secret words in the secret arena.

    The arena is scanned in place in this process: the scan allocates
    nothing there, so two scans around a call differ only by what the call
    left (a forked child would see the arena as zeros: ``MADV_WIPEONFORK``).
    """
    rows = scan_regions(arena_regions(), wanted, mask, skip)
    return set((int(a), int(w)) for a, w in rows)
