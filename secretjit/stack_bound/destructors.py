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

What ``NRT_MemInfo_call_dtor`` itself may reach depends on the MemInfos the
module makes (:func:`for_module`): a varsize MemInfo (list, set, string
payloads) is destroyed through ``secretjit_varsize_dtor``, which calls the
payload's destructor through a pointer (numba's destructor-path allowance
covers it); a module that names none of numba's varsize entries only makes
plain MemInfos (arrays, structrefs), destroyed by the arena's free, and gets
the shallower allowance :data:`CALL_DTOR_PLAIN`, which still covers a plain
MemInfo numba's C runtime made (its C destructor, then libc ``free``): such a
MemInfo can die inside a kernel when an argument hands the kernel its last
reference (a structref or jitclass field replaced, an item popped from a typed
container made by plain numba), which the module's text does not show.  On
x86-64 numba's own frames on that path come from its machine code
(:func:`.native.numba_dtor_frames`).
"""

import re

# numba's C entry that runs a MemInfo's destructor.
CALL_DTOR = 'NRT_MemInfo_call_dtor'
_DTOR_NAME = re.compile(r'(^|\.)dtor\.|_dtor$')


# The allowances' key for NRT_MemInfo_call_dtor in a module that makes no
# varsize MemInfo (secretjit.pipeline.arena_nrt_module sets both).
CALL_DTOR_PLAIN = CALL_DTOR + '.plain'
# numba's entries that make or resize a varsize MemInfo.
_VARSIZE = re.compile(r'\bNRT_MemInfo_\w*varsize')


# The allowances' key for NRT_MemInfo_call_dtor in a module that makes no
# varsize MemInfo and whose kernels take only arrays, scalars and tuples of
# them (:func:`closed_arguments`): every MemInfo that can die inside the call
# is one the secret arena made, freed by the arena's free.
CALL_DTOR_OWN = CALL_DTOR + '.own'
# The boundaries' names (secretjit.passes.boundary) and the numba-mangled
# argument types :func:`closed_arguments` accepts: scalars (ints, floats,
# bool), arrays of them, UniTuple/Tuple of those.
_BOUNDARY = re.compile(r'__secretjit\.boundary\.(_ZN\w+)')
_CLOSED_TOKEN = re.compile(
    r'[abhstijxyfd]|5ArrayI|5TupleI|8UniTupleI|Li\d+E|E|1[CAF]|7mutable'
    r'|8readonly|7aligned|9unaligned')


def _arguments(mangled):
    """The argument part of a numba-mangled ``_ZN<name>E<args>``, or None."""
    i = 3
    while i < len(mangled) and mangled[i] != 'E':
        if mangled[i] == 'B':
            i += 1
        digits = re.match(r'\d+', mangled[i:])
        if digits is None:
            return None
        i += len(digits.group()) + int(digits.group())
    return mangled[i + 1:] if i < len(mangled) else None


def closed_arguments(text):
    """Whether every boundary ``text`` names takes only arrays, scalars and
    tuples of them.  The wrapper (outside the boundary) holds a reference
    to each argument's MemInfo for the whole call, so none dies inside it;
    a structref, jitclass, typed container or list argument can hand the
    kernel the last reference to a MemInfo numba's C runtime made (a field
    replaced, an item popped), whose free is libc's.  No boundary: False."""
    kernels = set(_BOUNDARY.findall(text))
    for k in kernels:
        args = _arguments(k)
        if args is None or _CLOSED_TOKEN.sub('', args):
            return False
    return bool(kernels)


def for_module(allowances, names):
    """``allowances`` with ``NRT_MemInfo_call_dtor``'s bound for a module
    whose IR (or whose symbols) ``names``: the text or an iterable.

    Without :data:`CALL_DTOR_PLAIN` in ``allowances`` (AOT libraries, tests'
    own tables) they are returned unchanged; otherwise the plain bound is
    used unless ``names`` mention a varsize entry, and the own bound
    (:data:`CALL_DTOR_OWN`) where also :func:`closed_arguments`.
    """
    if not allowances or CALL_DTOR_PLAIN not in allowances:
        return allowances
    text = names if isinstance(names, str) else '\n'.join(n or '' for n in names)
    out = dict(allowances)
    plain = out.pop(CALL_DTOR_PLAIN)
    own = out.pop(CALL_DTOR_OWN, plain)
    if not _VARSIZE.search(text):
        out[CALL_DTOR] = own if closed_arguments(text) else plain
    return out


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
