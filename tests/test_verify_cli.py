"""``python -m secretjit verify``: the table, the progress lines and the exit status."""

import os
import textwrap

from secretjit.__main__ import main

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples',
                       'verify_kernels.py')


def test_verify_example_kernel_passes_with_a_table(capsys):
    assert main(['verify', EXAMPLE + ':derive']) == 0
    out, err = capsys.readouterr()
    assert 'verify: derive sample 1: compiling' in err
    lines = [l.split() for l in out.splitlines()]
    stack = next(l for l in lines if l[:3] == ['derive', '1', 'stack'])
    assert int(stack[3]) > 100 and stack[4] == '0' and stack[5] == 'ok'
    assert 'every kernel erased its secrets' in out


def test_verify_fails_when_the_detectors_cannot_see_the_secret(tmp_path, capsys):
    mod = tmp_path / 'blind.py'
    mod.write_text(textwrap.dedent('''
        import numpy as np
        from secretjit import secret_jit
        from secretjit.testing import sample_args

        @secret_jit
        def add(key):
            return key[0] + key[1]

        sample_args(add, np.zeros(4, np.uint64))
    '''))
    assert main(['verify', str(mod)]) == 1
    out = capsys.readouterr().out
    assert "cannot see this kernel's secret" in out and 'FAILED' in out


def test_verify_bad_targets_exit_2(tmp_path, capsys):
    assert main(['verify', str(tmp_path / 'missing.py')]) == 2
    assert 'no such file' in capsys.readouterr().err
    assert main(['verify', EXAMPLE + ':nope']) == 2
    err = capsys.readouterr().err
    assert "no @secret_jit kernel named 'nope'" in err and 'derive' in err
