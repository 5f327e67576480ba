"""Child process of tests/test_core_dump.py: threads deriving keys, to be dumped.

    python tests/_core_child.py MODE THREADS CALLS WINDOW SEED_HEX

MODE is ``secret`` (the kernel under ``secret_jit``) or ``control`` (the
same source recompiled with plain numba, ``wipe`` a no-op: secretjit/testing/control.py).
THREADS threads each call the kernel CALLS times, then wait.  Every call
derives a fresh 32-byte key inside the kernel,

    key(t, c) = HKDF-SHA256(ikm=SEED, salt="", info="secretjit core" || le32(t) || le32(c))

with c = call number mod WINDOW, and returns only the ChaCha20-Poly1305 tag
of a fixed message under that key (nonce 0, no aad).  The parent computes
every key(t, c) itself; this process never holds a key outside the kernel
except one, deliberately: ``planted`` = key(PLANTED_THREAD, 0), copied out
by a kernel into a numpy array that stays alive, so that the parent can check
its scan sees a key where one is.

Protocol (one JSON object per stdout line; commands on stdin):
    -> {"state": "after", ...}    threads done with their CALLS and waiting
    <- "run"                      threads loop again (c keeps counting mod WINDOW)
    -> {"state": "during", ...}   every thread made at least one more call
    <- "stop"
    -> {"state": "stopped", "calls": [...]}, exit 0
"""

import time

_T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from secretjit import secret_jit, wipe  # noqa: E402
from secretjit.kernels.aead import aead_seal_kernel  # noqa: E402
from secretjit.kernels.hmac import hkdf_sha256_into  # noqa: E402

# Long enough (about 1 MiB) that a call spends most of its time inside the
# kernel (on the secret stack), not in the dispatcher or queued for the GIL
# behind the other threads: a dump taken while threads call then stops most
# of them mid-call (3-8 of 8 in 8 dumps here; with 256 KiB 0-4, half the dumps
# caught none; with the original 37 bytes, 6 dumps in a row once caught none).
MESSAGE = b'core dumps must not hold session keys. ' * 26400
INFO_PREFIX = b'secretjit core'
PLANTED_THREAD = 0xFFFF
_PREFIX = np.frombuffer(INFO_PREFIX, np.uint8)


@secret_jit(nogil=True)
def derive_key(seed, prefix, tid, ctr, key):
    info = np.empty(prefix.size + 8, np.uint8)
    for i in range(prefix.size):
        info[i] = prefix[i]
    for i in range(4):
        info[prefix.size + i] = np.uint8((tid >> (8 * i)) & 0xFF)
        info[prefix.size + 4 + i] = np.uint8((ctr >> (8 * i)) & 0xFF)
    salt = np.empty(0, np.uint8)
    hkdf_sha256_into(seed, salt, info, key)


@secret_jit(nogil=True)
def derive_and_tag(seed, prefix, tid, ctr, msg, tag):
    """tag = last 16 bytes of ChaCha20-Poly1305(key(tid, ctr), 0, msg)."""
    key = np.empty(32, np.uint8)
    derive_key(seed, prefix, tid, ctr, key)
    nonce = np.zeros(12, np.uint8)
    aad = np.empty(0, np.uint8)
    out = np.empty(msg.size + 16, np.uint8)
    aead_seal_kernel(key, nonce, msg, aad, out)
    for i in range(16):
        tag[i] = out[msg.size + i]
    wipe(key)
    wipe(out)


@secret_jit
def export_key(seed, prefix, tid, ctr, key):
    """The deliberate leak: key(tid, ctr) written to the caller's array."""
    derive_key(seed, prefix, tid, ctr, key)


def kernels(mode):
    if mode == 'secret':
        return derive_and_tag, export_key
    from secretjit.testing.control import plain_kernel
    return (plain_kernel(derive_and_tag, keep_wipe=False),
            plain_kernel(export_key, keep_wipe=False))


def status():
    try:
        import secretjit
        return secretjit.memory_status()
    except (AttributeError, ImportError, OSError):
        return None


def my_stack_range():
    try:
        from secretjit.secretmem import stack_range
        return stack_range()
    except (ImportError, OSError):
        return None


def allow_ptrace():
    """Let any process of this user attach (gdb is our sibling, not our parent):
    needed where Yama's ptrace_scope is 1.  Harmless elsewhere."""
    import ctypes
    try:
        ctypes.CDLL(None).prctl(0x59616D61, ctypes.c_ulong(2 ** 64 - 1), 0, 0, 0)
    except (AttributeError, OSError):
        pass


def main():
    allow_ptrace()
    mode, nthreads, calls, window = sys.argv[1], int(sys.argv[2]), \
        int(sys.argv[3]), int(sys.argv[4])
    seed = np.frombuffer(bytes.fromhex(sys.argv[5]), np.uint8)
    kernel, export = kernels(mode)
    msg = np.frombuffer(MESSAGE, np.uint8)

    planted = np.zeros(32, np.uint8)
    export(seed, _PREFIX, PLANTED_THREAD, 0, planted)
    kernel(seed, _PREFIX, 0, 0, msg, np.empty(16, np.uint8))
    compiled = time.perf_counter() - _T0

    go = threading.Event()
    stop = threading.Event()
    done = threading.Barrier(nthreads + 1)
    again = threading.Barrier(nthreads + 1)
    counts = [0] * nthreads
    last = [None] * nthreads
    stacks = [None] * nthreads

    def worker(t):
        tag = np.empty(16, np.uint8)
        for c in range(calls):
            kernel(seed, _PREFIX, t, c % window, msg, tag)
        counts[t] = calls
        last[t] = [t, (calls - 1) % window, tag.tobytes().hex()]
        stacks[t] = my_stack_range()
        done.wait()
        go.wait()
        n = calls
        kernel(seed, _PREFIX, t, n % window, msg, tag)
        n += 1
        again.wait()
        while not stop.is_set():
            kernel(seed, _PREFIX, t, n % window, msg, tag)
            n += 1
        counts[t] = n

    threads = [threading.Thread(target=worker, args=(t,), daemon=True)
               for t in range(nthreads)]
    for th in threads:
        th.start()
    done.wait()
    report = {'state': 'after', 'pid': os.getpid(), 'mode': mode,
              'planted_addr': planted.ctypes.data, 'last': last,
              'stacks': stacks, 'tids': [th.native_id for th in threads],
              'status': status(), 'main_stack': my_stack_range(),
              'startup_seconds': compiled}
    print(json.dumps(report), flush=True)
    assert sys.stdin.readline().strip() == 'run'
    os.nice(10)          # busy threads must not starve gcore of the 2 CPUs
    go.set()
    again.wait()
    print(json.dumps({'state': 'during'}), flush=True)
    assert sys.stdin.readline().strip() == 'stop'
    stop.set()
    for th in threads:
        th.join()
    print(json.dumps({'state': 'stopped', 'calls': counts, 'status': status(),
                      'planted': int(planted.sum())}), flush=True)


if __name__ == '__main__':
    main()
