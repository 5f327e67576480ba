"""``secretjit.declassify``'s marker asm, and the pass that lowers it.

The JIT emits ``declassify(x)`` as an empty inline asm the constant-time
taint (:mod:`passes.ct_taint`) recognises by its template::

    %pub = call i8 asm "${:comment} secretjit.declassify", "=r,0"(i8 %zb)

:func:`lower_declassify` turns it into the same value without asm, for
builds that cannot assemble inline asm (AOT cross builds)::

    %pub = freeze i8 %zb

(after -O3 the operand may carry attributes, ``(i8 range(i8 0, 2) %zb)``:
they go with the asm).  Golden cases: ``tests/test_ct_golden.py::test_lower_declassify_*``.
"""

import re

from .ct_ir import REF
from .report import PassReport

# The inline-asm template of secretjit.declassify: an assembler comment,
# no instruction.  ``${:comment}`` is the target's comment leader.
DECLASSIFY_ASM = '${:comment} secretjit.declassify'

_DECLASSIFY_CALL = re.compile(
    r'^(\s*' + REF + r') = (?:tail |notail )?call (i\d+) asm "'
    + re.escape(DECLASSIFY_ASM) + r'", "=r,0"\(i\d+ [^%]*?(' + REF + r')\)(.*)$',
    re.M)


def lower_declassify(text):
    """Replace each ``declassify`` marker asm by a ``freeze`` of its operand.

    After the constant-time check (which reads the marker): the value is
    the same, and no instruction either way.  Returns ``(text, report)``.
    """
    report = PassReport('lower_declassify')

    def sub(m):
        report.count('lowered')
        rest = re.sub(r'^\s*#\d+', '', m.group(4))      # call-site attributes
        return '%s = freeze %s %s%s' % (m.group(1), m.group(2), m.group(3), rest)
    return _DECLASSIFY_CALL.sub(sub, text), report
