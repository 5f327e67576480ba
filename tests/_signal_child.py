"""Child process of tests/test_signal_scrub.py: writes below a call's depth.

Each scenario runs twice, once with the runtime's scrub of writes found below
the computed depth (the default) and once without it
(``secretmem.test_deep_scrub(False)``, the control), and reports how many
key-derived words are left on the secret stack afterwards (scanned directly,
zeroed again between runs) and how often the runtime detected and scrubbed.
Printed as one JSON object: {scenario: {"on": [...], "off": [...]}}, each
list [key words left, non-zero words left, detections, run's own count].
"""
import ctypes
import json
import operator
import os
import signal
import sys
import threading
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from secretjit import secret_jit, secretmem  # noqa: E402
from secretjit.testing import probes  # noqa: E402

from _kernels import derived_words, mix, stack_kernel  # noqa: E402

KEY = np.array([0x0123456789ABCDEF, 0x1122334455667788,
                0x99AABBCCDDEEFF00, 0x0F1E2D3C4B5A6978], dtype=np.uint64)
KEY2 = KEY ^ np.uint64(0x5555AAAA5555AAAA)
SIGNAL_CALLS = int(os.environ.get('SIGNAL_CALLS', '60'))


def register_kernel(key, n):
    """Eight key-derived words held in registers through a long loop."""
    w0, w1, w2, w3 = mix(key, 0), mix(key, 1), mix(key, 2), mix(key, 3)
    w4, w5, w6, w7 = mix(key, 4), mix(key, 5), mix(key, 6), mix(key, 7)
    a = np.uint64(1)
    for i in range(n):
        a = (a * (w0 | np.uint64(1))) ^ w1
        a = (a + w2) ^ (a >> np.uint64(7)) ^ w3
        a = (a - w4) ^ (a << np.uint64(3)) ^ w5
        a = (a ^ w6) + w7
    return a


def scan(words):
    lo, hi = secretmem.stack_range()
    return probes.count_words(ctypes.string_at(lo, hi - lo), words)


def nonzero_words():
    """Non-zero words on the secret stack: after a call, what was left."""
    lo, hi = secretmem.stack_range()
    a = np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64)
    return int(np.count_nonzero(a))


def zero_stack():
    lo, hi = secretmem.stack_range()
    ctypes.memset(lo, 0, hi - lo)


def scrubs():
    return secretmem.memory_status().get('signal_scrubs', 0)


def set_deep_scrub(on):
    # Absent from a runtime without the deep scrub (the code before it).
    if hasattr(secretmem, 'test_deep_scrub'):
        secretmem.test_deep_scrub(on)


def measure(run, words):
    """[key words left, non-zero words left, detections, what run returned]
    with the deep scrub on, then off."""
    out = {}
    for mode in ('on', 'off'):
        zero_stack()
        set_deep_scrub(mode == 'on')
        before = scrubs()
        try:
            extra = run()
        finally:
            set_deep_scrub(True)
        out[mode] = [scan(words), nonzero_words(), scrubs() - before, extra]
        zero_stack()
    return out


handled = {'n': 0}


def on_signal(signum, frame):
    handled['n'] += 1


def timer_run(kernel, which, n):
    def run():
        handled['n'] = 0
        signal.setitimer(which, 0.0002, 0.0002)
        try:
            for _ in range(SIGNAL_CALLS):
                kernel(KEY, n)
        finally:
            signal.setitimer(which, 0)
        return handled['n']
    return run


def pthread_kill_run(kernel, n):
    def run():
        handled['n'] = 0
        main = threading.get_ident()
        stop = threading.Event()

        def killer():
            while not stop.is_set():
                signal.pthread_kill(main, signal.SIGUSR1)
                time.sleep(0.0003)
        t = threading.Thread(target=killer)
        t.start()
        try:
            for _ in range(SIGNAL_CALLS):
                kernel(KEY, n)
        finally:
            stop.set()
            t.join()
        return handled['n']
    return run


# -- nested secret call: a secret call whose callee calls back into Python ----
# A secret kernel can no longer call a ctypes pointer (no-foreign-calls), so
# the outer secret call is made through the C runtime's entry itself: its
# callee is a ctypes callback into Python that calls a second kernel while
# the thread's secret stack is in use, as a C program using a secret cfunc
# from a callback would.

CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
OUTER_SCRUB = 16384         # the outer call's own depth: far above the inner one
inner = {'f': None}


def _deeper(n):
    # C-level recursion (operator.call is a C function), so that the
    # interpreter's frames reach well below the outer kernel's depth.
    if n == 0:
        return int(inner['f'](KEY2))
    return operator.call(_deeper, n - 1)


def _callback(arg):
    _deeper(40)


callback = CALLBACK(_callback)


def outer(_x):
    lib = secretmem.lib()
    lib.secretjit_secret_call.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_size_t]
    lib.secretjit_secret_call.restype = ctypes.c_int
    assert lib.secretjit_secret_call(
        ctypes.cast(callback, ctypes.c_void_p), None, OUTER_SCRUB) == 0


# -- a deep destructor chain -----------------------------------------------------

def chain_kernel(depth):
    """A list nested ``depth`` deep, torn down while eight key words are live."""
    src = ["def chain(key):"]
    src += ["    w%d = mix(key, %d)" % (i, i) for i in range(8)]
    src += ["    l = [np.uint64(1)]"]
    src += ["    l = [l]"] * depth
    src += ["    t = np.uint64(len(l))"]
    src += ["    return t ^ " + " ^ ".join("w%d" % i for i in range(8))]
    ns = {'mix': mix, 'np': np}
    exec("\n".join(src), ns)
    return ns['chain']


def main():
    for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGUSR1):
        signal.signal(s, on_signal)
    results = {}
    words8 = derived_words(KEY, 8)

    kernel = secret_jit(nogil=True)(register_kernel)
    n = 200000
    kernel(KEY, n)                      # compile; sets up the secret stack
    results['setitimer ITIMER_REAL'] = measure(
        timer_run(kernel, signal.ITIMER_REAL, n), words8)
    results['setitimer ITIMER_PROF'] = measure(
        timer_run(kernel, signal.ITIMER_PROF, n), words8)
    results['pthread_kill'] = measure(pthread_kill_run(kernel, n), words8)

    words2 = derived_words(KEY2)
    for name, f in (('nested secret_jit', secret_jit(stack_kernel)),
                    ('nested njit (control)', njit(stack_kernel))):
        f(KEY2)
        inner['f'] = f
        outer(np.uint64(3))

        def run():
            before = secretmem.memory_status().get('nested_calls', 0)
            outer(np.uint64(3))
            return secretmem.memory_status().get('nested_calls', 0) - before
        results[name] = measure(run, words2)

    sys.setrecursionlimit(5000)     # numba types a list nested 200 deep recursively
    for depth in (150, 200):
        k = secret_jit(chain_kernel(depth))
        k(KEY)
        results['list nested %d deep' % depth] = measure(
            lambda: int(k.stack_bound(k.signatures[0]).depth and k(KEY) * 0),
            words8)
    results['rseq'] = secretmem.memory_status().get('rseq', -1)
    print(json.dumps(results))


if __name__ == '__main__':
    main()
