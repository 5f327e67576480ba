"""The secret words the detectors look for, and the masked form they are held in.

Every word is kept as ``(w ^ m) * k`` (:class:`Mask`), memory is compared in
the same form, so the checker itself never holds a plain copy of a secret
for a later scan to find.
"""

import secrets as _secrets

import numpy as np

from . import probes


class _Mask:
    """The one-way-ish form secret words are kept and compared in: ``(w ^ m) * k``.

    Scanning memory applies the same map to every memory word; a masked copy
    the checker holds maps to something else again, never to the plain word,
    so the scan itself leaves no plain copy (an XOR mask alone would).
    """

    def __init__(self):
        self.m = np.uint64(_secrets.randbits(64))
        self.xor = int(self.m)
        self.k = np.uint64(_secrets.randbits(64) | 1)
        self.kinv = np.uint64(pow(int(self.k), -1, 1 << 64))

    def __call__(self, words):
        return (np.asarray(words, np.uint64) ^ self.m) * self.k

    def inplace(self, words):
        words ^= self.m
        words *= self.k
        return words

    def after_xor(self, words):
        """Finish masking words a probe already XORed with ``self.xor``."""
        return np.asarray(words, np.uint64) * self.k

    def plain(self, masked):
        return (masked * self.kinv) ^ self.m


def _mask_words(words, mask):
    return np.unique(mask(np.array([int(w) & 0xFFFFFFFFFFFFFFFF for w in words],
                                   dtype=np.uint64)))


def _windows(arr, mask):
    """Every 8-byte window of a contiguous array's bytes, masked."""
    raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    if raw.size < 8:
        return np.empty(0, np.uint64)
    win = np.ndarray(shape=(raw.size - 7,), dtype=np.uint64, buffer=raw,
                     strides=(1,))
    return mask(win)


def _input_words(args, mask):
    """Every 8-byte window of the array arguments, masked.

    Integer arguments are not sought themselves: numba's CPython wrapper
    unboxes them into its own frame, outside the protected call (the
    contract's first limitation); what the kernel derives from them is.
    """
    parts = [np.empty(0, np.uint64)]
    for a in args:
        if isinstance(a, np.ndarray) and a.size:
            parts.append(_windows(a, mask))
    return np.unique(np.concatenate(parts))


def _maps():
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split('-'))
            yield lo, hi, parts[1], parts[5] if len(parts) > 5 else ''


def _high_entropy(masked, mask):
    """Which masked words look like data: not small, not pointers, varied bytes."""
    plain = mask.plain(masked)
    keep = ((plain >> np.uint64(32)) != 0) & ((~plain >> np.uint64(32)) != 0)
    keep &= plain != np.uint64(probes.POISON)
    b = np.sort(plain.view(np.uint8).reshape(-1, 8), axis=1)
    keep &= (np.diff(b, axis=1) != 0).sum(axis=1) >= 3
    for lo, hi, _, _ in _maps():
        keep &= ~((plain >= np.uint64(lo)) & (plain < np.uint64(hi)))
    plain.fill(0)
    b.fill(0)
    return keep


def _buffers(objs):
    """(lo, hi) address ranges of the arrays among ``objs``."""
    out = []
    for a in objs:
        if isinstance(a, np.ndarray) and a.size:
            lo = a.ctypes.data
            out.append((lo, lo + a.nbytes))
        elif isinstance(a, tuple):
            out.extend(_buffers(a))
    return out


def _public_words(objs, mask):
    """Masked words of what the caller gets back: arrays, integers, tuples of them."""
    parts = [np.empty(0, np.uint64)]
    for a in objs:
        if isinstance(a, np.ndarray) and a.size:
            parts.append(_windows(a, mask))
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool):
            parts.append(mask(np.array([int(a) & 0xFFFFFFFFFFFFFFFF], np.uint64)))
        elif isinstance(a, tuple):
            parts.append(_public_words(a, mask))
    return np.unique(np.concatenate(parts))


def _perturbed(args):
    out = []
    for a in args:
        if isinstance(a, np.ndarray) and a.size:
            b = a.copy()
            flat = b.view(np.uint8).reshape(-1)
            flat ^= np.frombuffer(_secrets.token_bytes(flat.size), np.uint8) | 1
            out.append(b)
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool) \
                and abs(int(a)) >= 1 << 32:          # a key, not a size or index
            flip = _secrets.randbits(31) << 32 | 1 << 63
            out.append(type(a)(int(a) ^ flip) if isinstance(a, np.integer)
                       else int(a) ^ flip)
        else:
            out.append(a)
    return out


def _fresh(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]
