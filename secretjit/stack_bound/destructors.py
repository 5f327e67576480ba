"""Which destructors ``NRT_MemInfo_call_dtor`` may run, for the depth bound.

A destructor is never called directly: its address is handed to numba's
runtime (``NRT_MemInfo_new_varsize_dtor``, ``NRT_MemInfo_alloc_dtor``) and
numba's C code calls it when the MemInfo dies.  The model: a call to
``NRT_MemInfo_call_dtor`` may run every destructor of the module, found two
ways: every module function the IR passes to one of numba's ``*_dtor``
allocation entries (:func:`passed_destructors`; this finds the structref
destructors ``_Dtor.*`` that numba's naming does not announce), and, for
modules whose IR is not at hand, numba's names (``.dtor.list.*``,
``.dtor.set.*``, ``_numba_*_dtor``) of referenced functions.  Each
destructor's own call tree is analysed like any function, one nesting level
deep: inside a destructor, a nested ``NRT_MemInfo_call_dtor`` counts its
allowance only.  Deeper nesting (a list of lists of lists ...) is
data-dependent; it is left to the runtime's below-depth detection and scrub
(``secretjit/csrc/secretstack.c``), which ``tests/test_signal_scrub.py``
checks with lists nested 150 and 200 deep torn down while key words are live.
"""

import re

# numba's C entry that runs a MemInfo's destructor.
CALL_DTOR = 'NRT_MemInfo_call_dtor'
_DTOR_NAME = re.compile(r'(^|\.)dtor\.|_dtor$')


# A call to one of numba's allocation entries that store a destructor.
_ALLOC_DTOR = re.compile(r'\bcall [^\n]*?@"?NRT_MemInfo_\w*dtor\w*"?\(([^\n]*)')
_IR_SYMBOL = re.compile(r'@(?:"((?:[^"\\]|\\.)*)"|([\w.$-]+))')


def passed_destructors(ir_text, functions):
    """Module functions the IR ``ir_text`` hands to an ``NRT_MemInfo_*dtor*`` entry."""
    out = set()
    for args in _ALLOC_DTOR.findall(ir_text):
        for quoted, plain in _IR_SYMBOL.findall(args):
            name = plain or re.sub(r'\\([0-9A-Fa-f]{2})',
                                   lambda m: chr(int(m.group(1), 16)), quoted)
            if name in functions:
                out.add(name)
    return out


def destructors(asm, functions, ir_text=None):
    """The module's functions that ``NRT_MemInfo_call_dtor`` may run: by
    numba's naming, plus those the IR passes as destructors."""
    out = passed_destructors(ir_text, functions) if ir_text else set()
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
