"""Child process of tests/test_channels.py: every erased channel, then wait to be dumped.

    python tests/_channel_child.py MODE CALLS SEED_HEX

MODE ``secret`` compiles every kernel of ``_channel_kernels.ERASED`` with
``secret_jit``, ``control`` with plain ``njit`` (same options).  Kernel ``i``
is called CALLS times, on a thread of its own, with call numbers
0..CALLS-1, so its key words are
``expected_keys(seed, i, c)``; exceptions the kernel is meant to raise are
caught, returned arrays dropped.  Then one JSON line (pid, per-kernel
results) and a wait for any line on stdin.
"""

import gc
import json
import os
import sys
import threading
import time

_T0 = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import _channel_kernels as ck  # noqa: E402
from _core_child import allow_ptrace  # noqa: E402


DEPTH = 24


def deep(n, kernel, args):
    """Call ``kernel(*args)`` below ``n`` C-level frames (map() calling back into
    Python), so that the thread waiting afterwards, at a shallower depth, does
    not overwrite what the call left on the stack (the control's leftovers)."""
    if n == 0:
        return kernel(*args)
    return list(map(lambda _: deep(n - 1, kernel, args), (0,)))[0]


def main():
    allow_ptrace()
    mode, calls = sys.argv[1], int(sys.argv[2])
    seed = np.frombuffer(bytes.fromhex(sys.argv[3]), np.uint64).copy()
    if mode == 'secret':
        from secretjit import secret_jit as decorate
    else:
        decorate = njit
    # Each kernel runs on a thread of its own that stays alive until the dump:
    # its stack and its malloc arena are not reused by the next kernel, so
    # what the control leaves behind survives to the dump.
    results = [None] * len(ck.ERASED)
    done = threading.Barrier(len(ck.ERASED) + 1)
    release = threading.Event()

    def run(kid, name, fn, build, options, exc, *secret):
        try:
            kernel = decorate(**options)(fn)
            raised = []
            for c in range(calls):
                args = build(seed, kid, c)
                try:
                    deep(DEPTH, kernel, args)
                except Exception as e:          # noqa: BLE001 (compared by the parent)
                    raised.append(type(e).__name__)
                del args
            results[kid] = {'name': name, 'raised': sorted(set(raised)),
                            'raised_all': len(raised) == calls}
        except BaseException as e:              # noqa: BLE001 (reported to the parent)
            results[kid] = {'name': name, 'error': '%s: %s' % (type(e).__name__, e)}
        done.wait()
        release.wait()

    threads = [threading.Thread(target=run, args=(kid,) + entry, daemon=True)
               for kid, entry in enumerate(ck.ERASED)]
    for th in threads:      # one at a time: compilation is not faster in parallel
        th.start()
        while results[threads.index(th)] is None:
            time.sleep(0.01)
    done.wait()
    gc.collect()
    print(json.dumps({'pid': os.getpid(), 'mode': mode, 'results': results,
                      'seconds': time.perf_counter() - _T0}), flush=True)
    sys.stdin.readline()
    release.set()


if __name__ == '__main__':
    main()
