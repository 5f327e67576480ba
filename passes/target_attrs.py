"""Drop host CPU tuning (and, for control builds, register zeroing) from attributes.

numba compiled the kernels for the host process; an AOT library is compiled
for its target's baseline CPU, so the host's ``"target-cpu"`` and
``"target-features"`` come out of every attribute group::

    attributes #2 = { nounwind "target-cpu"="skylake-avx512" "target-features"="+avx,..." }
    ==>
    attributes #2 = { nounwind }

With ``zero_regs=False`` (the AOT control build that must leak) every
``"zero-call-used-regs"`` goes too, in groups, headers and call sites.  LLVM
rejects an empty group (``attributes #4 = { }``), so a group left empty gets
the inert string attribute ``"secretjit-emptied"``.
"""

import re

from .report import PassReport
from .textir import text_pass

_ZCUR = re.compile(r'\s*"zero-call-used-regs"="\w+"')
_TARGET_ATTRS = re.compile(r'\s*"target-(?:cpu|features)"="[^"]*"')
_EMPTY_GROUP = re.compile(r'^(attributes #\d+ = \{)\s*\}')
EMPTIED = '"secretjit-emptied"'


@text_pass
def strip_target_attributes(mod, zero_regs=True):
    """Remove target-cpu/features; ``zero_regs=False`` also zero-call-used-regs."""
    report = PassReport('strip_target_attributes')
    for i, line in mod.top_level():
        if not line.startswith('attributes #'):
            continue
        new, n = _TARGET_ATTRS.subn('', line)
        report.count('target_attributes_dropped', n)
        if not zero_regs:
            new, n = _ZCUR.subn('', new)
            report.count('zero_regs_dropped', n)
        new, n = _EMPTY_GROUP.subn(r'\1 %s }' % EMPTIED, new)
        report.count('groups_emptied', n)
        mod.lines[i] = new
    if not zero_regs:
        for fn in mod.defined():
            fn.header, n = _ZCUR.subn('', fn.header)
            report.count('zero_regs_dropped', n)
            for j, line in enumerate(fn.body):
                if 'zero-call-used-regs' in line:
                    fn.body[j], n = _ZCUR.subn('', line)
                    report.count('zero_regs_dropped', n)
    return mod, report
