"""Machine-code audit of secret kernels that does not trust the passes.

It reads the object code that actually runs (the ELF object numba's JIT
loaded for a kernel, or an AOT ``.so``), disassembles it with capstone and
checks, for every boundary ``__secretjit.boundary.*``:

- ``registers``: on every path from the boundary's entry to each ``ret``,
  after the last call, every call-clobbered register the contract names
  (:mod:`secretjit.contract`; README, "The contract") is zeroed and not
  written again.  x86-64: rcx, rdx, rsi, rdi, r8-r11, xmm/ymm/zmm 0-15 or
  0-31, k0-k7 with AVX-512, the x87 stack.  AArch64: x1-x18, v0-v7 and
  v16-v31, p0-p15 where the code uses SVE, and the high halves of v8-v15 in
  every function of the tree (see :mod:`.aarch64`);
- ``scrub``: on every path, each call into the kernel's tree (through
  ``secretjit_secret_call`` or in place) is followed by a scrub at least as
  deep as the tree's depth, which the audit computes itself from the frames
  of every function it reaches (return address, pushes, stack-pointer
  decrements, realignment; the red zone for x86-64 leaves; the contract's
  allowance for each allowed C function) and compares with ``stack_bound``'s
  result;
- ``calls``: every call leaving the analysed code goes to an allow-listed C
  function (``stack_bound.EXTERNAL_ALLOWANCE``, libm, the secret runtime's
  entries) and no call is through a pointer the audit cannot resolve.

Layout: :mod:`.elf` (reading the object), :mod:`.core` (call trees, depths,
blocks, the path analysis), :mod:`.x86_64` and :mod:`.aarch64` (each
machine's instructions), :mod:`.targets` (JIT dispatchers, AOT libraries),
:mod:`.report` (table, JSON, ``python -m secretjit audit``).
"""

from .. import stack_bound
from ..passes.exact_call import exact_depth
from ..stack_bound.destructors import for_module
from . import aarch64, x86_64  # noqa: F401  (register the architectures)
from .core import (BOUNDARY, SECRET_CALL, SECRET_CALL_EXACT, SECRET_CALLS, BoundaryAudit,
                   check_boundary, depth, reachable)
from .core import allowed as _allowed
from .elf import AuditError, ObjectCode
from .report import main, report, table
from .targets import audit_dispatcher, audit_library, fresh_copy

__all__ = ['AuditError', 'BOUNDARY', 'BoundaryAudit', 'SECRET_CALL', 'audit_dispatcher',
           'audit_library', 'audit_object', 'fresh_copy', 'main', 'report', 'table']


def _dtor_allowance(obj):
    """An AOT library links numba's C destructor path in: the contract's
    allowance around the callbacks it runs, whose depth the audit computes.
    A JIT object's allowance depends on whether it names a varsize entry
    (:func:`stack_bound.destructors.for_module`)."""
    obj.allowances = for_module(
        obj.allowances, sorted(obj.undefined) + sorted(set(obj.relocs.values()))
        + sorted(obj.functions))
    dtor = stack_bound.CALL_DTOR
    if dtor in obj.functions and dtor not in obj.allowances:
        from .. import arena_nrt
        from ..pipeline import NUMBA_DTOR_ALLOWANCE
        obj.allowances[dtor] = NUMBA_DTOR_ALLOWANCE + max(
            [depth(obj, cb, {}) for cb in arena_nrt.CALLBACKS if cb in obj.functions]
            or [stack_bound.external_allowance('malloc')])


def _calls(obj, name):
    """(externals, unlisted) of the boundary ``name``'s call tree."""
    reach = reachable(obj, name)
    externals = sorted(n for n in reach if n not in obj.functions or _allowed(obj, n))
    unlisted = sorted(n for n in externals if not _allowed(obj, n))
    for g in sorted(reach):
        if g in obj.functions and not _allowed(obj, g):
            unlisted += ['indirect call in %s at 0x%x' % (stack_bound.readable(g), a)
                         for a, t in obj.fn(g).calls if t is None]
    return externals, unlisted


def _needed(obj, f, memo):
    """The depth the boundary must pass its secret call: the deepest tree it
    runs on the secret stack (an exact call's at its hot depth,
    :func:`core.depth`), or, with no secret call, the tree it calls in place.
    (An in-place call's own scrub is checked against the whole depth by
    :func:`core.check_boundary`.)"""
    calls = dict(f.calls)
    needs = [depth(obj, tree, memo, hot=calls[ins.address] == SECRET_CALL_EXACT)
             for ins in f.insns if calls.get(ins.address) in SECRET_CALLS
             for tree in [obj.arch.secret_call_tree(obj, f, ins)] if tree]
    if needs:
        return max(needs)
    tree = next((t for _, t in f.calls if t and t not in SECRET_CALLS and not _allowed(obj, t)
                 and not getattr(obj.fn(t), 'scrub_arg', None)), None)
    return depth(obj, tree, memo) if tree else 0


def _audit_boundary(obj, f, required, memo, stack_bounds):
    checked = check_boundary(obj, f, required - obj.arch.optional(obj, f), memo)
    if checked is None:
        return None
    rets, missing, problems = checked
    missing = missing + obj.arch.tree_problems(obj, f.name)
    externals, unlisted = _calls(obj, f.name)
    need = _needed(obj, f, memo)
    sb = (stack_bounds or {}).get(f.name[len(BOUNDARY):])
    scrubbed = obj.arch.passed_depth(f)
    # the bound the compiler passed: an exact call's is the hot depth,
    # rounded up to the fast path's step (passes.exact_depth)
    exact = SECRET_CALL_EXACT in dict(f.calls).values()
    return BoundaryAudit(
        name=f.name, registers_ok=not missing and rets > 0,
        registers_missing=missing, rets=rets,
        scrub_ok=not problems and scrubbed is not None and scrubbed >= need,
        scrub_problems=problems, depth_required=need, depth_scrubbed=scrubbed or 0,
        stack_bound_depth=-1 if sb is None else (
            exact_depth(sb.hot, obj.arch.name) if exact else sb.depth),
        calls_ok=not unlisted, externals=externals, unlisted=unlisted,
        arch=obj.arch.name)


def audit_object(data, allowances=None, stack_bounds=None, avx512=None):
    """Audit every boundary of one ELF object or library; a list of :class:`BoundaryAudit`.

    ``avx512`` (x86-64) forces whether zmm16-31 and k0-k7 are required; by
    default they are when the boundaries use them.
    """
    obj = ObjectCode(data, allowances)
    _dtor_allowance(obj)
    memo = {}
    boundaries = [obj.fn(n) for n in sorted(obj.functions) if n.startswith(BOUNDARY)]
    required = obj.arch.required(obj, boundaries, avx512)
    out = [_audit_boundary(obj, f, required, memo, stack_bounds) for f in boundaries]
    return [r for r in out if r is not None]
