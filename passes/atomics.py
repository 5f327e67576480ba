"""Rewrite x86-only atomic intrinsics back to target-neutral IR (AOT builds).

On x86 LLVM folds "atomicrmw + compare with zero" into an intrinsic that
exists only there (numba optimizes helper libraries for the host before they
are linked).  The pass turns each use back into plain IR and drops the
declarations::

    %r = call i8 @llvm.x86.atomic.sub.cc.i64(ptr %p, i64 1, i32 4)
    ==>
    %__sj_atomic1.old = atomicrmw sub ptr %p, i64 1 seq_cst
    %__sj_atomic1.new = sub i64 %__sj_atomic1.old, 1
    %__sj_atomic1.test = icmp eq i64 %__sj_atomic1.new, 0
    %r = zext i1 %__sj_atomic1.test to i8

The condition operand is X86::CondCode on the result (4 eq, 5 ne, 8 slt,
9 sge); any other is a ValueError naming it.  Modules without the intrinsics
are left alone.
"""

import re

from .report import PassReport
from .textir import text_pass

_X86_ATOMIC_CC = re.compile(
    r'^(\s*)(%[-\w.]+) = (?:tail )?call i8 @llvm\.x86\.atomic\.(add|sub|and|or|xor)'
    r'\.cc\.(i\d+)\(ptr ([^,]+), (i\d+) ([^,]+), i32 (\d+)\)(.*)$')
_DECL = re.compile(r'^declare .*@llvm\.x86\.atomic\.\w+\.cc\.i\d+\(')
_CC_TEST = {4: 'eq', 5: 'ne', 8: 'slt', 9: 'sge'}


def _neutral(m, n):
    ind, res, op, ty, p, _, val, cc, _ = m.groups()
    cc = int(cc)
    if cc not in _CC_TEST:
        raise ValueError("cannot retarget llvm.x86.atomic.%s.cc with "
                         "condition %d" % (op, cc))
    p = p.split()[-1]                   # drop nonnull & co.
    base = '%%__sj_atomic%d' % n
    old, new, test = base + '.old', base + '.new', base + '.test'
    return ['%s%s = atomicrmw %s ptr %s, %s %s seq_cst' % (ind, old, op, p, ty, val),
            '%s%s = %s %s %s, %s' % (ind, new, op, ty, old, val),
            '%s%s = icmp %s %s %s, 0' % (ind, test, _CC_TEST[cc], ty, new),
            '%s%s = zext i1 %s to i8' % (ind, res, test)]


@text_pass
def neutral_atomics(mod):
    """Replace ``llvm.x86.atomic.*.cc`` calls by atomicrmw and a compare."""
    report = PassReport('neutral_atomics')
    for fn in mod.defined():
        if 'llvm.x86.atomic.' not in ''.join(fn.body):
            continue
        body = []
        for line in fn.body:
            m = _X86_ATOMIC_CC.match(line)
            if m is None:
                body.append(line)
                continue
            report.count('atomics_rewritten')
            body += _neutral(m, report['atomics_rewritten'])
        fn.body = body
    for i, line in mod.top_level():
        if _DECL.match(line):
            mod.lines[i] = ''
            report.count('declarations_dropped')
    return mod, report
