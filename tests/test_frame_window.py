"""The plain secret entry's frame-window check, at every word and vector width.

After every plain ``secretjit_secret_call`` the runtime ORs the 1 KiB below
the scrub depth (``any_nonzero`` in ``secretjit/csrc/secretstack.c``); a
non-zero word there means some frame went deeper than the bound, and the
stack is scanned and zeroed from its deepest write.  The check has one body
per vector width (64-byte with AVX-512, 32 with AVX2, 16 otherwise), chosen
when the library loads.  ``tests/c/frame_window.c`` writes one word at each
of the window's 128 offsets in turn: each must be found and zeroed, and
with the deep scrub off (the control) each must be left.  Run natively and
under qemu-x86_64 as an SSE2-only CPU (Nehalem: an AVX2 instruction there
is an illegal-instruction fault, so passing shows the 16-byte body ran) and
as an AVX2 CPU (Haswell).
"""

import os
import platform
import shutil
import subprocess

import pytest

from secretjit import _csrc

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.skipif(platform.machine() != 'x86_64',
                                reason='x86-64 vector widths')


@pytest.fixture(scope='module')
def exe(tmp_path_factory):
    cc = shutil.which('gcc') or shutil.which('cc')
    if not cc:
        pytest.skip('no C compiler')
    out = tmp_path_factory.mktemp('frame_window') / 'frame_window'
    subprocess.run([cc, '-O2', '-std=gnu11', '-Wall', '-Werror', '-I', _csrc.CSRC,
                    '-I', os.path.join(HERE, 'c'), '-o', str(out),
                    os.path.join(HERE, 'c', 'frame_window.c'), *_csrc.paths(),
                    '-lpthread'], check=True)
    return str(out)


@pytest.mark.parametrize('cpu', ['native', 'Nehalem', 'Haswell'])
def test_every_window_word_is_found_and_zeroed(exe, cpu):
    if cpu == 'native':
        run = []
    else:
        qemu = shutil.which('qemu-x86_64')
        if not qemu:
            pytest.skip('no qemu-x86_64')
        run = [qemu, '-cpu', cpu]
    r = subprocess.run(run + [exe], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = dict(kv.split('=') for kv in r.stdout.split())
    assert got['setup'] == '0', r.stdout
    assert (got['words'], got['found'], got['left']) == ('128', '128', '0'), r.stdout
    # control: the same writes survive with the deep scrub off
    assert got['off_left'] == '128', r.stdout
