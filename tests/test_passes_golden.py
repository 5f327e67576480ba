"""Golden tests for the LLVM passes: input IR -> expected IR, plus counters.

Cases live in ``tests/golden/cases.json``; inputs are ``<input>.input.ll``
and expected outputs ``<case>.expected.ll``.  Cases where a pass must not
fire expect the input back unchanged.  Regenerate expected files with
``SECRETJIT_REGOLD=1 pytest tests/test_passes_golden.py`` and review the diff.
"""

import json
import os
import pathlib

import llvmlite.binding as ll
import pytest

from secretjit import passes

GOLDEN = pathlib.Path(__file__).parent / 'golden'
CASES = json.loads((GOLDEN / 'cases.json').read_text())


def _canonical(text):
    """LLVM's own printing of ``text``: ignores formatting, checks validity."""
    mod = ll.parse_assembly(text)
    mod.verify()
    return str(mod)


@pytest.mark.parametrize('case', CASES, ids=[c['case'] for c in CASES])
def test_pass_golden(case):
    source = (GOLDEN / (case['input'] + '.input.ll')).read_text()
    run = getattr(passes, case['pass'])
    out, report = run(_canonical(source), **case['kwargs'])
    assert dict(report.counters) == case['counters']
    expected_file = GOLDEN / (case['case'] + '.expected.ll')
    if os.environ.get('SECRETJIT_REGOLD'):
        expected_file.write_text(_canonical(out))
    assert _canonical(out) == expected_file.read_text()


def test_write_depths_refuses_missing_depth():
    source = _canonical((GOLDEN / 'depths.input.ll').read_text())
    with pytest.raises(ValueError, match='no stack depth computed.*kernel'):
        passes.write_depths(source, {})


def test_boundary_rejects_unknown_arch():
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    with pytest.raises(NotImplementedError, match='riscv64'):
        passes.insert_boundaries(source, [('cpython.kernel', 'kernel')], 'riscv64')


def test_boundary_is_idempotent():
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    once, _ = passes.insert_boundaries(source, [('cpython.kernel', 'kernel')], 'x86_64')
    twice, report = passes.insert_boundaries(_canonical(once),
                                             [('cpython.kernel', 'kernel')], 'x86_64')
    assert report['boundaries_added'] == 0
    assert _canonical(twice) == _canonical(once)
