"""The examples run as scripts and show what they claim."""

import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples')


def _run(name):
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, name)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_custom_kernel_example():
    out = _run('custom_kernel.py')
    assert 'enabled() inside the kernel: True, in Python: False' in out
    assert 'insert_boundaries: boundaries_added=1' in out
    assert 'stosq' in out
    assert 'volatile memsets from wipe() in the IR: 1' in out


def test_demo_shows_the_evidence():
    r = subprocess.run([sys.executable, '-m', 'secretjit', 'demo'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'secret_jit left 0 secret words; every njit control leaked' in r.stdout
    rows = [l.split() for l in r.stdout.splitlines()
            if l.startswith(('stack ', 'registers ', 'heap ', 'dead store '))]
    assert len(rows) == 4
    for row in rows:
        assert int(row[-2]) > 0 and int(row[-1]) == 0, row


def test_sealed_box_example():
    out = _run('sealed_box.py')
    assert "opened: b'the session key must not outlive this call'" in out
    assert 'tampered box rejected' in out
