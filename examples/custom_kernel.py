"""Decorate your own kernel with @secret_jit, look at what the passes did, use wipe.

Run: python examples/custom_kernel.py
"""

import re

import numpy as np
from numba import njit

from secretjit import enabled, secret_jit, wipe
from secretjit.stack_bound import readable


@njit
def round_key(master, i):
    """A plain numba helper: called from a secret kernel it is recompiled secret."""
    x = master[i % master.size] ^ np.uint64(0x9E3779B97F4A7C15 * (i + 1))
    return (x << np.uint64(13)) | (x >> np.uint64(51))


@secret_jit(nogil=True)
def mac64(master, msg):
    """A toy 64-bit MAC: round keys live in a heap buffer wiped before return."""
    keys = np.empty(16, np.uint64)
    for i in range(16):
        keys[i] = round_key(master, i)
    acc = np.uint64(0)
    for j in range(msg.size):
        acc = (acc ^ np.uint64(msg[j])) * keys[j % 16] + keys[(j + 7) % 16]
    wipe(keys)          # explicit and un-removable; the allocator wipes it anyway
    return acc, enabled()


def main():
    master = np.frombuffer(bytes(range(32)), dtype=np.uint64).copy()
    msg = np.frombuffer(b'attack at dawn', dtype=np.uint8)
    tag, inside = mac64(master, msg)
    print('tag %016x, enabled() inside the kernel: %s, in Python: %s'
          % (tag, inside, enabled()))

    sig = mac64.signatures[0]
    print('\npasses:')
    for report in mac64.pass_reports(sig):
        print('  ', report)
    bound = mac64.stack_bound(sig)
    print('\nstack scrub depth: %d bytes; deepest chain:' % bound.depth)
    for name, depth in bound.path:
        print('   %6d  %s' % (depth, readable(name)))

    asm = mac64.inspect_asm(sig)
    label = re.search(r'^"?__secretjit\.boundary\.[^\s:"]+"?:$', asm, re.M)
    body = asm[label.end():]
    body = body[:body.index('.Lfunc_end')]
    # The fallback (no secret stack: run in place, scrub below sp) is laid
    # out after the common path's return.
    scrub = [l.strip() for l in body.splitlines() if 'stos' in l]
    to_ret = body[:body.index('retq')]
    if 'stos' in to_ret:
        to_ret = to_ret.split('#NO_APP', 1)[1]
    zeroing = [l.strip() for l in to_ret.splitlines() if l.strip().startswith(
        ('xorl', 'vxorps', 'kxorq', 'fldz'))]
    print('\nboundary: stack scrub %s; epilogue zeroes %d registers, e.g.'
          % (scrub, len(zeroing)))
    print('   ' + '\n   '.join(zeroing[:4] + ['...'] + zeroing[-3:]))

    ir = mac64.inspect_llvm(sig)
    print('\nvolatile memsets from wipe() in the IR: %d'
          % len(re.findall(r'llvm\.memset[^\n]*i1 true\)', ir)))


if __name__ == '__main__':
    main()
