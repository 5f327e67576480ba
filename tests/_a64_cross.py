"""The host's side of the cross JIT agreement test (tests/test_aarch64.py, under qemu)."""

import json
import os
import subprocess

_CROSS = """
import json, sys
from secretjit.audit import cross
(row,) = cross.cross_objects(sys.argv[1], targets=[('here', sys.argv[2], sys.argv[3])])
print(json.dumps(cross.summary(*row[2:])))
"""


def host_python():
    """The host's Python with secretjit (test.sh passes it; default: the repo's .venv)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = os.environ.get('SECRETJIT_HOST_PYTHON') or os.path.join(repo, '.venv', 'bin', 'python')
    assert os.path.exists(exe), ("no host Python with secretjit at %s: set "
                                 "SECRETJIT_HOST_PYTHON (tools/aarch64/test.sh does)" % exe)
    return exe


def cross_summary(cases, cpu, features):
    """``cross.summary`` of the cross JIT object of the one kernel of the
    ``ctcheck_cases()`` module ``cases``, built by the host's Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('PYTHON', 'NUMBA'))}
    proc = subprocess.run([host_python(), '-c', _CROSS, str(cases), cpu, features], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
