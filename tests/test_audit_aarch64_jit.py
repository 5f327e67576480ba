"""The AArch64 JIT audit of every vetted kernel, on cross JIT objects (any host).

Compiling the vetted kernels under qemu-aarch64 costs about 7 minutes of CPU,
so their AArch64 JIT objects are built on this host (:mod:`secretjit.audit.cross`:
numba's IR, the secret pipeline and an AArch64 TargetMachine made as numba's
JIT makes it) for two CPUs: the qemu JIT's (``generic`` with SVE: p0-p15 are
required) and the same without SVE.  Every boundary must pass; each path's
audit must catch a dropped register zeroing and a scrub 16 bytes short of the
depth the audit computes, and pass the scrub cut to exactly that depth.
``tests/test_aarch64.py::test_cross_jit_object_agrees_with_the_qemu_jit``
shows, under qemu, that the cross object and the JIT's own agree on what the
audit checks.  The kernels are those of ``tests/_ctcheck_cases.py``.
"""

import os
import shutil

import pytest

pytest.importorskip('capstone')
pytest.importorskip('elftools')

from secretjit import audit  # noqa: E402
from secretjit.audit import cross  # noqa: E402

import _a64_mutate as mutate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, '_ctcheck_cases.py')

pytestmark = pytest.mark.skipif(shutil.which('aarch64-linux-gnu-as') is None,
                                reason='aarch64-linux-gnu-as not found: apt-get '
                                       'install gcc-aarch64-linux-gnu')


@pytest.fixture(scope='module')
def objects():
    return cross.cross_objects(CASES)


def _audit(row, data=None):
    _, _, obj, allow, bounds = row
    return audit.audit_object(data or obj, allowances=allow, stack_bounds=bounds)


def _vetted():
    import _ctcheck_cases
    return sorted(k.py_func.__qualname__ for k, _ in _ctcheck_cases.ctcheck_cases()
                  if k.__module__.startswith('secretjit.kernels'))


def test_every_vetted_kernel_passes_for_both_cpus(objects):
    names = [t[0] for t in cross.TARGETS]
    assert sorted((k, t) for k, t, *_ in objects) == sorted(
        (k, t) for k in _vetted() for t in names)
    assert len(objects) == 2 * len(_vetted()) >= 2 * 14
    for row in objects:
        results = _audit(row)
        assert results and all(r.ok and r.arch == 'aarch64' for r in results), (row[:2], results)
        for r in results:
            assert r.depth_scrubbed == r.stack_bound_depth >= r.depth_required > 0, r


def test_sve_cpu_requires_the_predicates_and_the_other_does_not(objects):
    """Where the code uses SVE the boundary must zero p0-p15: dropping one
    ``pfalse`` fails on the SVE object; the no-SVE object has none to drop."""
    summaries = {}
    for k, t, obj, allow, bounds in objects:
        if k != 'x25519_kernel':
            continue
        (summaries[t],) = cross.summary(obj, allow, bounds).values()
        if t == cross.QEMU_JIT[0]:
            (res,) = _audit((k, t, obj, allow, bounds), mutate.nop_in_boundary(obj, 'p3.b'))
            assert res.registers_missing == ['p3'] and not res.ok, res
        else:
            (base, insns), = mutate.boundary_insns(obj)
            assert not any(i.mnemonic == 'pfalse' for i in insns)
    # what the qemu agreement test compares tells the two CPUs apart
    sve, plain = summaries[cross.QEMU_JIT[0]], summaries[cross.NO_SVE[0]]
    assert set(sve['required']) - set(plain['required']) == {'p%d' % i for i in range(16)}


@pytest.mark.parametrize('kernel', ['chacha20_xor', 'aead_open_kernel', 'x25519_kernel'])
def test_mutations_are_caught_on_the_cross_path(objects, kernel):
    rows = [r for r in objects if r[0] == kernel]
    assert len(rows) == 2
    for row in rows:
        (clean,) = _audit(row)
        assert clean.ok
        (res,) = _audit(row, mutate.nop_in_boundary(row[2], 'x11, #0'))
        assert res.registers_missing == ['x11'] and not res.ok, res
        need = clean.depth_required
        exact, n = mutate.set_depth(row[2], clean.depth_scrubbed, need)
        assert n == 2                     # secret stack and in-place fallback
        (res,) = _audit(row, exact)
        assert res.ok and res.depth_scrubbed == need, res       # must not fire
        short, _ = mutate.set_depth(row[2], clean.depth_scrubbed, need - 16)
        (res,) = _audit(row, short)
        assert not res.scrub_ok and not res.ok
        assert any('needs %d' % need in p for p in res.scrub_problems), res.scrub_problems
