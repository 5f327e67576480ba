"""Child process for the whole-memory scan of tests/test_sealed_box.py.

Runs one sealed-box seal (secret kernel, or its plain control), prints the
box, then reads masked search patterns from stdin and counts how many 8-byte
words of its own writable memory (heap, anonymous mappings, stacks) equal a
pattern.  The patterns arrive XORed with a mask, and memory words are XORed
with the same mask before comparing, so this process never holds a plain
copy of a secret the kernel did not leave behind itself.  memfd_secret
mappings (the secret arena and stacks under that backing), which
``/proc/self/mem`` reads as EIO, are read in place.
"""

import ctypes
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(os.path.dirname(here), 'examples'))

import sealed_box  # noqa: E402
from secretjit.testing.control import plain_kernel  # noqa: E402
from _maps import writable_regions  # noqa: E402


def scan(masked, mask):
    hits = 0
    with open('/proc/self/mem', 'rb', buffering=0) as mem:
        for start, end, memfd in list(writable_regions()):
            if memfd:                       # read in place (no copy)
                words = np.ctypeslib.as_array(
                    (ctypes.c_uint64 * ((end - start) // 8)).from_address(start))
                hits += int(np.isin(words ^ mask, masked).sum())
                continue
            try:
                buf = os.pread(mem.fileno(), end - start, start)
            except OSError:
                continue
            words = np.frombuffer(buf[:len(buf) // 8 * 8], dtype=np.uint64)
            hits += int(np.isin(words ^ mask, masked).sum())
            del buf, words
    return hits


def main():
    mode = sys.argv[1]
    pk = np.frombuffer(bytes.fromhex(sys.argv[2]), np.uint8)
    kernel = sealed_box.seal_kernel if mode == 'secret' else \
        plain_kernel(sealed_box.seal_kernel, keep_wipe=False)
    message = np.frombuffer(b'forward secrecy needs the session key gone' * 3, np.uint8)
    out = np.empty(message.size + 48, np.uint8)
    kernel(pk, message, out)
    print(out.tobytes().hex(), flush=True)
    mask = np.uint64(int(sys.stdin.readline()))
    masked = np.array([int(x) for x in sys.stdin.readline().split()], dtype=np.uint64)
    print(scan(masked, mask), flush=True)


if __name__ == '__main__':
    main()
