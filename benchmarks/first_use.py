"""First ``aead.seal`` in a fresh process after the documented install steps (issue 15).

The install steps are ``pip install secretjit`` then ``python -m secretjit
warm``.  Here the warm step fills an empty ``NUMBA_CACHE_DIR`` (only
``aead.seal``'s overloads, which are the entries the full warm stores for
it); then fresh processes time ``from secretjit.kernels import aead`` and
the first ``aead.seal`` (wall and CPU seconds).  The control is the same
process against an empty cache (a fresh install without the warm step).
"""

import os
import statistics
import subprocess
import sys
import tempfile

TARGET_SECONDS = 2.0        # import + first seal, after the install steps

CHILD = r'''
import time
t0, c0 = time.perf_counter(), time.process_time()
from secretjit.kernels import aead
t1 = time.perf_counter()
aead.seal(bytes(32), bytes(12), b'first message')
t2, c2 = time.perf_counter(), time.process_time()
print(t2 - t0, c2 - c0, t2 - t1)
'''


def _run(args, env):
    r = subprocess.run([sys.executable] + args, capture_output=True, text=True,
                       env=env)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return r.stdout


def collect(runs=3):
    """``{'warm_*': median seconds, 'cold_*': ...}``: import + first seal."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, 'warm'))
        _run(['-m', 'secretjit', 'warm', 'aead.seal'], env)
        warm = [list(map(float, _run(['-c', CHILD], env).split()))
                for _ in range(runs)]
        cold_env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(tmp, 'cold'))
        cold = list(map(float, _run(['-c', CHILD], cold_env).split()))
    for i, name in enumerate(('wall', 'cpu', 'seal_wall')):
        out['warm_' + name] = statistics.median(w[i] for w in warm)
        out['cold_' + name] = cold[i]
    print('first aead.seal: after warm %.2f s wall (%.2f s CPU; the call %.3f s), '
          'without warm %.2f s wall (%.2f s CPU)' % (
              out['warm_wall'], out['warm_cpu'], out['warm_seal_wall'],
              out['cold_wall'], out['cold_cpu']), flush=True)
    return out


def check_targets(data):
    return [('first aead.seal after install + warm <= %.0f s (import + call)'
             % TARGET_SECONDS, '%.2f s' % data['warm_wall'],
             data['warm_wall'] <= TARGET_SECONDS)]


def markdown(data):
    return ['', '## First use (fresh process: import + first `aead.seal`)', '',
            'After `python -m secretjit warm` (the install step) and, as the '
            'control, with an empty numba cache; medians of fresh processes.', '',
            '| install | wall | CPU | the seal call |', '|---|---:|---:|---:|',
            '| pip install + warm | %.2f s | %.2f s | %.3f s |' % (
                data['warm_wall'], data['warm_cpu'], data['warm_seal_wall']),
            '| pip install only | %.2f s | %.2f s | %.3f s |' % (
                data['cold_wall'], data['cold_cpu'], data['cold_seal_wall'])]
