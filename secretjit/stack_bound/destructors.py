"""Which destructors ``NRT_MemInfo_call_dtor`` may run, for the depth bound.

A destructor is never called directly: its address is handed to numba's
runtime (``NRT_MemInfo_new_varsize_dtor``, ``NRT_MemInfo_alloc_dtor``) and
numba's C code calls it when the MemInfo dies.  The model: a call to
``NRT_MemInfo_call_dtor`` may run every destructor the module defines and
references (numba names them ``.dtor.list.*``, ``.dtor.set.*``,
``_numba_*_dtor``), one nesting level deep; deeper nesting (a list of lists
of lists ...) is data-dependent and left to the runtime's below-depth
detection (``secretjit/csrc/secretstack.c``).
"""

import re

# numba's C entry that runs a MemInfo's destructor.
CALL_DTOR = 'NRT_MemInfo_call_dtor'
_DTOR_NAME = re.compile(r'(^|\.)dtor\.|_dtor$')


def destructors(asm, functions):
    """The module's functions that ``NRT_MemInfo_call_dtor`` may run."""
    out = set()
    for name in functions:
        if not _DTOR_NAME.search(name):
            continue
        quoted = '"%s"' % name if re.search(r'[^\w.$]', name) else name
        # referenced somewhere besides its own definition (label, .type, .size)
        if asm.count(quoted) > 3 + asm.count(quoted + '-') + asm.count('-' + quoted):
            out.add(name)
    return out


def with_destructors(allowance, dtor_depths):
    """Depth of NRT_MemInfo_call_dtor: its own frames, then the deepest destructor."""
    ext = {CALL_DTOR: allowance}
    deepest, path = 0, []
    for d, p, e in dtor_depths:
        ext.update(e)
        if d > deepest:
            deepest, path = d, p
    total = allowance + deepest
    return total, [(CALL_DTOR, total)] + path, ext
