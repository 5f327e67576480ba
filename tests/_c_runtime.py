"""Build a C test program with the secret runtime's sources and run it:
natively, or for AArch64 under qemu-user (skipped where the tools are missing).
Used by the C-level secret stack tests (tests/c/*.c)."""

import os
import shutil
import subprocess

import pytest

from secretjit import _csrc

HERE = os.path.dirname(os.path.abspath(__file__))


def run_c_test(tmp_path, target, name):
    """Build ``tests/c/<name>.c`` for ``target`` ('native' or 'aarch64'),
    run it and return ``{key: value}`` of its ``key=value`` output."""
    if target == 'native':
        cc, run = shutil.which('gcc') or shutil.which('cc'), []
    else:
        cc, qemu = shutil.which('aarch64-linux-gnu-gcc'), shutil.which('qemu-aarch64')
        if not qemu:
            pytest.skip('no qemu-aarch64')
        run = [qemu, '-cpu', 'max,sve512=on']
    if not cc:
        pytest.skip('no C compiler for %s' % target)
    exe = tmp_path / name
    subprocess.run([cc, '-O2', '-std=gnu11', '-Wall', '-Werror', '-I', _csrc.CSRC,
                    '-I', os.path.join(HERE, 'c'),
                    *(['-static'] if target == 'aarch64' else []), '-o', str(exe),
                    os.path.join(HERE, 'c', name + '.c'), *_csrc.paths(), '-lpthread'],
                   check=True)
    r = subprocess.run(run + [str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dict(kv.split('=') for kv in r.stdout.split())
