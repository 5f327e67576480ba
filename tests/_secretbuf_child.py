"""Child process for tests/test_secretbuf.py's whole-process key scan.

``python _secretbuf_child.py MODE KEYFILE``: MODE ``secret`` reads the 32-byte
key with ``secretjit.read_secret`` (secret arena), MODE ``bytes`` reads it
into a ``bytes`` object (the control).  Then 1000 ``aead.seal`` calls and a
few calls of every other keyed kernel API (xseal, chacha20, hmac, keyed
blake2b, hkdf, poly1305, x25519 public_key) use the key; the child prints the
first box (hex), reads masked search patterns from stdin and prints two scans:
``inside outside`` word hits (inside/outside the secret arena) after the
calls, then again after the key was wiped (``secret``) or dropped (``bytes``).

The patterns are the key's 8-byte words times a random odd ``mask`` (mod
2**64), and memory words are multiplied by it before comparing.  Unlike the
XOR mask of tests/_memscan_child.py this is not its own inverse: scanning
the pattern array makes temporaries holding ``k * mask**2``, not ``k``, so
one scan cannot plant key words that a later scan would count.

Memory outside the arena is read through ``/proc/self/mem`` into one fixed
scratch mapping that the scan skips and zeroes after each chunk; arena
pages and memfd_secret mappings (``/secretmem``: the secret stacks with that
backing, which ``/proc/self/mem`` reads as EIO) are scanned in place, so the
scan itself never copies a key that lives only in the arena into ordinary
memory.
"""

import ctypes
import gc
import mmap
import os
import sys

import numpy as np

import secretjit
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, x25519
from _maps import writable_regions

CHUNK = 1 << 20
NCALLS = 1000


class Scanner:
    def __init__(self, masked, mask):
        self.masked = masked
        self.mask = mask
        self.scratch = mmap.mmap(-1, CHUNK)
        self.words = np.frombuffer(self.scratch, np.uint64)
        self.lo = ctypes.addressof(ctypes.c_char.from_buffer(self.scratch))
        st = secretjit.memory_status()
        self.arena = (st['arena_start'], st['arena_end'])

    def _count(self, words):
        with np.errstate(over='ignore'):
            return int(np.isin(words * self.mask, self.masked).sum())

    def scan(self):
        inside = outside = 0
        a_lo, a_hi = self.arena
        with open('/proc/self/mem', 'rb', buffering=0) as mem:
            for start, end, memfd in list(writable_regions()):
                if start < self.lo + CHUNK and end > self.lo:
                    continue                       # the scratch buffer itself
                arena = start >= a_lo and end <= a_hi
                if arena or memfd:                 # secret memory: in place
                    n = (end - start) // 8
                    hits = self._count(np.ctypeslib.as_array(
                        (ctypes.c_uint64 * n).from_address(start)))
                    if arena:
                        inside += hits
                    else:
                        outside += hits            # a memfd_secret stack
                    continue
                for lo in range(start, end, CHUNK):
                    size = min(CHUNK, end - lo)
                    try:
                        got = os.preadv(mem.fileno(), [memoryview(self.scratch)[:size]], lo)
                    except OSError:
                        continue
                    outside += self._count(self.words[:got // 8])
                    self.words[:] = 0
        return inside, outside


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == 'secret':
        key = secretjit.read_secret(path, 32)
    else:
        with open(path, 'rb') as f:
            key = f.read()
    msg = b'a session key must not outlive its session' * 4
    first = None
    for i in range(NCALLS):
        box = aead.seal(key, i.to_bytes(12, 'little'), msg, b'hdr')
        if first is None:
            first = box
    assert aead.open(key, (0).to_bytes(12, 'little'), first, b'hdr') == msg
    for i in range(10):
        aead.xseal(key, i.to_bytes(24, 'little'), msg)
        chacha20.chacha20(key, i.to_bytes(12, 'little'), msg)
        hmac.hmac_sha256(key, msg)
        blake2b.blake2b(msg, 32, key)
        hmac.hkdf_sha256(key, b'', b'info', 32)
        poly1305.poly1305(key, msg)
        x25519.public_key(key)
    print(first.hex(), flush=True)
    mask = np.uint64(int(sys.stdin.readline()))
    masked = np.array([int(x) for x in sys.stdin.readline().split()], dtype=np.uint64)
    scanner = Scanner(masked, mask)
    print(*scanner.scan(), flush=True)
    if mode == 'secret':
        secretjit.wipe_buffer(key)
    del key
    gc.collect()
    print(*scanner.scan(), flush=True)


if __name__ == '__main__':
    main()
