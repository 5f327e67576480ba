"""The examples run as scripts and show what they claim."""

import os
import sys

import pytest

from _child import run_python

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples')


def _run(name):
    r = run_python(os.path.join(EXAMPLES, name))
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_custom_kernel_example():
    out = _run('custom_kernel.py')
    assert 'enabled() inside the kernel: True, in Python: False' in out
    assert 'insert_boundaries: boundaries_added=1' in out
    assert 'stosq' in out
    assert 'volatile memsets from wipe() in the IR: 1' in out


@pytest.mark.parametrize('backing', ['auto', 'mlock'])
def test_demo_shows_the_evidence(backing):
    r = run_python('-m', 'secretjit', 'demo', env={'SECRETJIT_SECRET_MEMORY': backing})
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'secret_jit left 0 secret words; every njit control leaked' in r.stdout
    rows = [l.split() for l in r.stdout.splitlines()
            if l.startswith(('stack ', 'registers ', 'heap ', 'dead store '))]
    assert len(rows) == 4
    for row in rows:
        assert int(row[-2]) > 0 and int(row[-1]) == 0, row
    hardened = [l for l in r.stdout.splitlines()
                if l.strip().startswith(('secret stack', 'secret heap'))]
    assert len(hardened) == 2
    memfd = backing == 'auto' and _memfd_secret_works()
    fork = ('memfd_secret: unreadable to other processes, zero in forked children'
            if memfd else 'zero in forked children')
    for line in hardened:
        assert line.endswith('locked in RAM, not in core dumps, ' + fork), line


def _memfd_secret_works():
    r = run_python(code='import secretjit; print(secretjit.memory_status()["backing"])')
    return r.stdout.strip() == 'memfd_secret'


def test_sealed_box_example():
    out = _run('sealed_box.py')
    assert "opened: b'the session key must not outlive this call'" in out
    assert 'tampered box rejected' in out


def test_stream_encrypt_example(tmp_path):
    out = _run('stream_encrypt.py')
    assert '17 chunks' in out and 'round trip ok' in out
    assert 'truncated stream rejected' in out
    # reordering two chunks is detected as well
    sys.path.insert(0, EXAMPLES)
    import stream_encrypt as se
    from secretjit.kernels import InvalidTag
    src, enc, dec = tmp_path / 'p', tmp_path / 'e', tmp_path / 'd'
    src.write_bytes(bytes(range(256)) * 600)          # 150 KiB: 3 chunks
    key = bytes(range(32))
    assert se.encrypt_file(key, src, enc) == 3
    data = enc.read_bytes()
    size = se.CHUNK + se.TAG
    c0, c1 = data[16:16 + size], data[16 + size:16 + 2 * size]
    enc.write_bytes(data[:16] + c1 + c0 + data[16 + 2 * size:])
    import pytest
    with pytest.raises(InvalidTag, match='chunk 0'):
        se.decrypt_file(key, enc, dec)
    with pytest.raises(ValueError, match='key must be 32 bytes'):
        se.encrypt_file(b'short', src, enc)
