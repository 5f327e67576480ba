"""A sibling process that reads another process's memory: tests/test_secret_memory_memfd.py.

    python tests/_sibling_reader.py PID SEED_HEX THREADS WINDOW PASSES RANGES_JSON

PID runs tests/_core_child.py (threads deriving key(t, c), c < WINDOW).  This
process is not its parent (ptrace_scope 1 lets a parent read its child; the
child allows any process with PR_SET_PTRACER_ANY) and reads the target with
both interfaces a debugger or an attacker with the same uid or root has:

- ``/proc/PID/mem`` (pread; the kernel uses FOLL_FORCE, so even PROT_NONE
  pages of a private mapping read back);
- ``process_vm_readv``.

RANGES_JSON is ``[[lo, hi], ...]``: the secret arena and the secret stacks.
Every mapping inside them is read PASSES times while the threads run (keys
live there only mid-call); every other writable mapping once.  Prints one
JSON object: per interface, the derived keys found in the secret ranges and
elsewhere, whether the planted key (a copy left on purpose in an ordinary
numpy array) was found, and the bytes that could not be read.
"""

import ctypes
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _corescan  # noqa: E402
from _core_child import PLANTED_THREAD  # noqa: E402

CHUNK = 1 << 20


class IoVec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
                                   ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong]


def read_mem(fd, pid, lo, n, buf):
    """n bytes at lo through /proc/PID/mem into buf; bytes read (0 on error)."""
    try:
        return os.preadv(fd, [memoryview(buf)[:n]], lo)
    except OSError:
        return 0


def read_vm(fd, pid, lo, n, buf):
    local = IoVec(ctypes.addressof(ctypes.c_char.from_buffer(buf)), n)
    remote = IoVec(lo, n)
    got = _libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    return max(got, 0)


def regions(pid, secret):
    """(lo, hi, in_secret) of the target's mappings worth reading."""
    for lo, hi, perms, name in _corescan.read_maps(pid):
        inside = any(s <= lo and hi <= e for s, e in secret)
        if inside and perms[0:2] == 'rw':
            yield lo, hi, True
        elif not inside and perms[0:2] == 'rw' and (
                name in ('', '[heap]') or name.startswith('[stack')):
            yield lo, hi, False


def scan(pid, fd, reader, index, secret, passes, planted):
    buf = bytearray(CHUNK)
    words = np.frombuffer(buf, np.uint64)
    found = {True: set(), False: set()}
    unread = {True: 0, False: 0}
    for p in range(passes):
        for lo, hi, inside in list(regions(pid, secret)):
            if p and not inside:
                continue
            for at in range(lo, hi, CHUNK):
                n = min(CHUNK, hi - at)
                got = reader(fd, pid, at, n, buf)
                unread[inside] += n - got
                if got:
                    found[inside] |= index.keys_of(words[:got // 8][index.hits(words[:got // 8])])
                words[:] = 0
    return {'secret_keys': len(found[True] - {planted}),
            'other_keys': len(found[False] - {planted}),
            'planted': planted in found[True] | found[False],
            'unread_secret': unread[True], 'unread_other': unread[False]}


def main():
    pid, seed = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
    threads, window, passes = (int(x) for x in sys.argv[3:6])
    secret = [tuple(r) for r in json.loads(sys.argv[6])]
    keys = [_corescan.derive(seed, t, c) for t in range(threads) for c in range(window)]
    index = _corescan.KeyIndex(keys + [_corescan.derive(seed, PLANTED_THREAD, 0)])
    planted = len(keys)
    out = {}
    fd = os.open('/proc/%d/mem' % pid, os.O_RDONLY)
    try:
        out['proc_mem'] = scan(pid, fd, read_mem, index, secret, passes, planted)
        out['process_vm_readv'] = scan(pid, fd, read_vm, index, secret, passes, planted)
    finally:
        os.close(fd)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
