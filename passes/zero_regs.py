"""Make functions of a secret module zero the registers they return with.

Adds LLVM's ``zero-call-used-regs`` function attribute::

    define internal i32 @"__secretjit.boundary.K"(...) noinline nounwind {   (already "all")
    define i32 @K(...) #3 {                  ==>  define i32 @K(...) #3 "zero-call-used-regs"="used" {
    define ptr @cpython.K(...) {             ==>  unchanged (a wrapper, outside the secret call)

Every function of the secret call tree zeroes the call-clobbered registers it
used before it returns ("used"); boundaries zero all of them ("all"), because
"used" does not cover registers dirtied by callees.  Declarations, wrappers
named in ``skip`` and functions that already carry the attribute are left
alone.
"""

import re

from .boundary import BOUNDARY_PREFIX
from .report import PassReport
from .textir import add_function_attribute, text_pass

ATTR = '"zero-call-used-regs"'
_GROUP_DEF = re.compile(r'^attributes (#\d+) = \{(.*)\}\s*$', re.M)
_GROUP_REF = re.compile(r'(#\d+)')


@text_pass
def zero_call_used_regs(mod, skip=()):
    """Add ``"zero-call-used-regs"`` to every definition not in ``skip``."""
    report = PassReport('zero_call_used_regs')
    groups = dict(_GROUP_DEF.findall(
        '\n'.join(line for _, line in mod.top_level()
                  if line.startswith('attributes #'))))
    skip = set(skip)
    for fn in mod.defined():
        if fn.name in skip:
            report.count('skipped_wrapper')
            continue
        if ATTR in fn.header or any(ATTR in groups.get(g, '')
                                    for g in _GROUP_REF.findall(fn.header)):
            report.count('already_set')
            continue
        mode = 'all' if fn.name.startswith(BOUNDARY_PREFIX) else 'used'
        fn.header = add_function_attribute(fn.header, '%s="%s"' % (ATTR, mode))
        report.count('set_' + mode)
    return mod, report
