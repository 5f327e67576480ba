"""``python -m secretjit ctcheck``: one valgrind run over the vetted kernels.

``tests/_ctcheck_cases.py`` holds every vetted entry kernel and two leaky
kernels (the must-fire control: a secret early exit and a secret table
index, compiled with the static check off).  The leaks must be reported at
their marked lines and nothing else in secret code.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, '_ctcheck_cases.py')

pytestmark = [
    pytest.mark.skipif(shutil.which('valgrind') is None, reason='needs valgrind'),
    pytest.mark.skipif(__import__('platform').machine() != 'x86_64',
                       reason='valgrind run on x86-64'),
]


def _marks():
    out = []
    for no, line in enumerate(open(CASES).read().splitlines(), 1):
        m = re.search(r'# CTCHECK: ([\w-]+)', line)
        if m:
            out.append('%s:%d: %s' % (CASES, no, m.group(1)))
    return out


def test_ctcheck_reports_the_leaks_and_nothing_in_the_vetted_kernels():
    res = subprocess.run([sys.executable, '-m', 'secretjit', 'ctcheck', CASES],
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 1, res.stderr[-3000:] + res.stdout[-3000:]
    lines = [ln for ln in res.stdout.splitlines() if '(valgrind memcheck)' in ln]
    expected = _marks()
    assert len(expected) == 2
    for mark in expected:
        assert any(ln.startswith(mark) for ln in lines), (mark, res.stdout)
    # everything reported is in the leaky kernels, at their marked lines
    others = [ln for ln in lines if not any(ln.startswith(m.rsplit(' ', 1)[0])
                                            for m in expected)]
    assert not others, '\n'.join(others)


def test_ctcheck_without_cases_is_a_clear_error(tmp_path):
    mod = tmp_path / 'nocases.py'
    mod.write_text('x = 1\n')
    res = subprocess.run([sys.executable, '-m', 'secretjit', 'ctcheck', str(mod)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 2
    assert 'defines no ctcheck_cases()' in res.stderr


_XML = '''<valgrindoutput><error><kind>UninitCondition</kind>
<what>Conditional jump or move depends on uninitialised value(s)</what><stack>
%s<frame><ip>0x1010</ip></frame></stack></error></valgrindoutput>'''
_RUNTIME_FRAME = ('<frame><ip>0x9000</ip><obj>/x/secretjit/_secretmem.cpython-311-x86_64-'
                  'linux-gnu.so</obj><fn>scrub_after</fn><file>%s</file></frame>')


@pytest.mark.parametrize('top,reported', [
    ('', True),                                       # the kernel's own branch
    (_RUNTIME_FRAME % 'slab.c', True),                # other runtime code: named
    (_RUNTIME_FRAME % 'secretstack.c', False),        # the stack's after-call check
])
def test_the_secret_stacks_own_window_check_is_not_a_kernel_finding(tmp_path, top, reported):
    """The runtime's after-call window check reads memory below the scrub
    depth that memcheck marks undefined when frames pop: an error whose
    innermost frame is secretstack.c in the runtime is skipped (must not
    fire); the same error from the kernel itself or other runtime code is
    reported at the first JIT frame (must fire)."""
    from secretjit import ctcheck
    xml = tmp_path / 'm.xml'
    xml.write_text(_XML % top)
    found = ctcheck._findings(str(xml), {'kernel': [0x1000, 0x1100]}, {})
    assert [(f['function'], f['offset']) for f in found] == \
        ([('kernel', 0x10)] if reported else [])
