"""Stack bounds of C code from a shared object's machine code (issue 15).

The secret runtime's own C entries (``secretjit/csrc``, built into
``_secretmem*.so``) and numba's C destructor path (``_nrt_python*.so``) run on
the kernel's stack.  Instead of measured allowances with headroom, their
depth is read from the object itself: ``objdump -d`` prints its machine code,
:func:`disassemble` rewrites that into the assembly text LLVM prints (one
function per symbol, its ``.cold`` part appended, branch targets as local
labels, PLT calls by name, PIC jump tables marked as such) and
:func:`~.core.compute_bounds` bounds it with the same x86-64 frame parser the
kernels get.  Exact where the call graph is closed; the C library functions
the object calls keep measured allowances (:data:`.allowances.RUNTIME_LIBC_ALLOWANCE`),
an unknown one is an error, and a call through a pointer counts the caller's
``indirect_allowance``.

x86-64 only: the AArch64 build keeps the allowances of
:data:`.allowances.EXTERNAL_ALLOWANCE` (``None`` from :func:`so_bounds`).

Marked calls (issue 15): :func:`marking_problems` proves that every C library
call below the runtime's kernel-path entries is made by a wrapper that sets
the thread's ``secretjit__inexact`` first (``secretjit/csrc/marked.h``); the
entries' depths are then :class:`~.core.MarkedDepth`, and a tree whose only
externals are such depths (:func:`markable`) may take the exact secret entry,
which checks the frame window whenever a marked call ran.
"""

import functools
import os
import re
import shutil
import subprocess

from .core import MarkedDepth, compute_bounds

_FUNC = re.compile(r'^([0-9a-f]+) <(.+)>:$')
_INSN = re.compile(r'^\s+([0-9a-f]+):\s+(\S.*)$')
_TARGET = re.compile(r'^([0-9a-f]+) <(.+?)(?:\+0x([0-9a-f]+))?>$')
_IMM = re.compile(r'\$0x([0-9a-f]{16})\b')
_PREFIXES = ('lock', 'rep', 'repz', 'repe', 'repnz', 'repne', 'notrack', 'bnd',
             'data16', 'cs', 'ds')


def _objdump(path):
    tool = shutil.which('objdump')
    if tool is None:
        return None
    out = subprocess.run([tool, '-d', '--no-show-raw-insn', '-M', 'suffix', path],
                         capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def _functions(dump):
    """{function: [(address, instruction text)]}, ``.cold`` parts merged in."""
    funcs, cur = {}, None
    for line in dump.splitlines():
        m = _FUNC.match(line)
        if m:
            name = m.group(2).split('.cold')[0]
            cur = funcs.setdefault(name, [])
            continue
        m = _INSN.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2).split('#')[0].strip()))
    return funcs


def _signed(m):
    value = int(m.group(1), 16)
    return '$%d' % (value - (1 << 64) if value >= 1 << 63 else value)


def _instruction(text, here, local, prev):
    """One objdump instruction as LLVM prints it (``here``: the function's
    addresses; ``local``: the branch targets inside it, filled in)."""
    parts = text.split()
    while len(parts) > 1 and parts[0] in _PREFIXES:
        parts = parts[1:]
    mnem, rest = parts[0], ' '.join(parts[1:])
    rest = _IMM.sub(_signed, rest)
    m = _TARGET.match(rest)
    if m and (mnem.startswith(('j', 'call'))):
        addr = int(m.group(1), 16)
        if addr in here:
            local.add(addr)
            rest = '.L%x' % addr
        elif m.group(3) is None:
            rest = m.group(2).split('@')[0]
        else:                 # into another function: no callee to bound
            rest = '"%s+0x%s"' % (m.group(2), m.group(3))
    elif mnem.startswith('jmp') and re.fullmatch(r'\*%r\w+', rest) and \
            prev[-2:] == ['movslq', 'addq']:
        rest = '*.LJTI(,%s,8)' % rest[1:]        # a PIC jump table (a switch)
    ops = rest.replace(',', ', ')
    # objdump's "add $-n, %rsp" is a decrement: say so
    if mnem in ('add', 'addq', 'sub', 'subq') and ops.endswith('%rsp') and \
            ops.startswith('$-'):
        mnem = 'subq' if mnem.startswith('add') else 'addq'
        ops = '$' + ops[2:]
    return mnem, ops


def disassemble(dump):
    """``(asm, functions)``: objdump's x86-64 output as LLVM-style assembly."""
    out, names = [], set()
    for n, (name, insns) in enumerate(sorted(_functions(dump).items())):
        here = {a for a, _ in insns}
        local, body, prev = set(), [], []
        for addr, text in insns:
            body.append((addr, _instruction(text, here, local, prev)))
            prev.append(body[-1][1][0])
        names.add(name)
        out.append('%s:' % (('"%s"' % name) if re.search(r'[^\w.$]', name) else name))
        for addr, (mnem, ops) in body:
            if addr in local:
                out.append('.L%x:' % addr)
            out.append('\t%s\t%s' % (mnem, ops))
        out.append('.Lfunc_end%d:' % n)
    return '\n'.join(out) + '\n', names


@functools.lru_cache(maxsize=8)
def _dump(path, mtime):
    """objdump's text of ``path`` (one run per file and version)."""
    return _objdump(path)


_REF = re.compile(r'<([^<>+]+)(?:\+0x[0-9a-f]+)?>')


def _reachable(dump, roots):
    """``dump`` cut to the functions ``roots`` reach: every function named
    in an instruction (a call, a jump, an address taken) of one reached,
    under its own name and the one :func:`_instruction` calls it by (a PLT
    stub ``f@plt`` is a call to ``f``), ``.cold`` parts with their function.
    The names a bound can follow come from the same instruction text
    (:func:`_functions`), so the bounds of ``roots`` are those of the whole
    dump, without parsing the rest."""
    funcs = _functions(dump)
    seen, todo = set(), [r for r in roots if r in funcs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for _, text in funcs[name]:
            for m in _REF.finditer(text):
                ref = m.group(1).split('.cold')[0]
                todo.extend(n for n in (ref, ref.split('@')[0])
                            if n in funcs and n not in seen)
    out, keep = [], False
    for line in dump.splitlines():
        m = _FUNC.match(line)
        if m:
            keep = m.group(2).split('.cold')[0] in seen
        if keep:
            out.append(line)
    return '\n'.join(out) + '\n'


@functools.lru_cache(maxsize=16)
def _parsed(path, mtime, roots=None):
    """``(asm, functions)`` of ``path``'s machine code; with ``roots`` (a
    tuple), of the functions they reach only (:func:`_reachable`)."""
    dump = _dump(path, mtime)
    if dump is None:
        return None
    return disassemble(dump if roots is None else _reachable(dump, roots))


def so_bounds(path, roots, arch, allowances, indirect_allowance=None):
    """``{root: StackBound}`` for the functions ``roots`` of the shared object
    ``path``, or None where its machine code cannot be read here (not x86-64,
    no objdump): the caller keeps its allowances then.  Each bound's ``hot``
    depth counts the marking functions (:func:`hot_cut`) as their return
    address."""
    if arch != 'x86_64' or not path or not os.path.exists(path):
        return None
    parsed = _parsed(path, os.stat(path).st_mtime_ns, tuple(roots))
    if parsed is None:
        return None
    asm, funcs = parsed
    if not all(r in funcs for r in roots):
        return None
    return compute_bounds(asm, funcs, roots, arch, extra_allowance=allowances,
                          indirect_allowance=indirect_allowance,
                          module_name=os.path.basename(path), cut=hot_cut(funcs))


def hot_cut(functions):
    """``{name: 8}`` for the marking functions among ``functions`` (the
    wrappers and the ``secretjit__cold_`` slow paths, :func:`is_marking`):
    what a call of one writes before its flag store is the return address
    (x86-64); its own frame and everything below come after the store, so
    the exact entry scrubs them with the marked slack."""
    return {n: 8 for n in functions if is_marking(n)}


# The secret runtime's entries on the kernel path (secretjit.arena_nrt calls
# them).  Their call graph is closed: no call through a pointer, and since
# issue 15 no pthread_setspecific or __tls_get_addr below them (a thread
# enrols when its secret stack is set up, csrc/secretstack_setup.c; the
# arena's cache is reached through an initial-exec pointer).
# The marking wrappers' names (csrc/marked.h; the section on marked calls
# below).
MARK_PREFIX = 'secretjit__m_'
# The marking wrappers of libc's memset, memcpy and memmove are entries too:
# a secret engine's own memset/memcpy/memmove (arena_nrt.LIBC_SHADOWED, the
# calls numba's code makes) call them.
MARKED_MEMORY = ('memset', 'memcpy', 'memmove')
MEMORY_WRAPPERS = tuple(MARK_PREFIX + n for n in MARKED_MEMORY)
RUNTIME_ENTRIES = ('secretjit_slab_alloc', 'secretjit_slab_free',
                   'secretjit_slab_realloc') + MEMORY_WRAPPERS


@functools.lru_cache(maxsize=4)
def runtime_bounds(arch):
    """``{entry: depth}`` of :data:`RUNTIME_ENTRIES` from ``_secretmem``'s
    machine code, the C library calls they make counted with
    :data:`.allowances.RUNTIME_LIBC_ALLOWANCE`; ``{}`` where it cannot be
    read here (AArch64, no objdump, an unlisted call): the measured
    allowances of :data:`.allowances.EXTERNAL_ALLOWANCE` stay then.  An
    entry whose every C library call is marked (:func:`marking_problems`
    finds nothing) gets a :class:`~.core.MarkedDepth` whose ``hot`` part
    leaves out everything below its marking functions (:func:`hot_cut`);
    then the runtime is told the slack to add when a marked call ran
    (:func:`marked_slack`, ``secretjit_set_marked_slack``), before any tree
    is given a hot depth."""
    from .. import secretmem
    from ..errors import SecretPolicyError
    from .allowances import RUNTIME_LIBC_ALLOWANCE
    path = secretmem.library_path()
    try:
        bounds = so_bounds(path, RUNTIME_ENTRIES, arch, RUNTIME_LIBC_ALLOWANCE)
    except SecretPolicyError:
        return {}
    if bounds is None:
        return {}
    out = {n: MarkedDepth(b.depth, b.hot) if not marking_problems(path, [n]) else b.depth
           for n, b in bounds.items()}
    slack = marked_slack(out)
    if slack is not None:
        secretmem.set_marked_slack(slack)
    return out


def marked_slack(depths):
    """Bytes an exact call must scrub below a hot depth when a marked call
    ran: the most any :class:`~.core.MarkedDepth` of ``depths`` (the
    runtime's entries) goes below its hot part, plus 16 for the rounding of
    the depths built on them; None when none is marked.  A tree reaches at
    most one runtime entry per path (their call graph is closed), so no
    tree's depth exceeds its hot depth by more."""
    marked = [d for d in depths.values() if isinstance(d, MarkedDepth)]
    if not marked:
        return None
    return max(int(d) - d.hot for d in marked) + 16


# -- marked C library calls (issue 15; secretjit/csrc/marked.h) ------------------
#
# The runtime's C library calls below RUNTIME_ENTRIES are all made by
# wrappers ``secretjit__m_NAME`` that set the calling thread's
# ``secretjit__inexact`` before they call; secretjit_secret_call_exact clears
# it before the call and checks the frame window below the depth (as the
# plain entry does) when it finds it set.  marking_problems proves the first
# half from the machine code; the second is secretstack.c's (tested in
# tests/test_semiexact.py).  (MARK_PREFIX: above, with RUNTIME_ENTRIES.)
# the heap's own slow paths, marked like the wrappers (csrc/slab.c)
COLD_PREFIX = 'secretjit__cold_'
MARK_FLAG = 'secretjit__inexact'


def is_marking(name):
    """Whether ``name`` is one of the runtime's marking functions (a
    wrapper or a cold path), which must set :data:`MARK_FLAG` first."""
    return name.startswith((MARK_PREFIX, COLD_PREFIX))
_TLS_SYMBOL = re.compile(r'^([0-9a-f]+)\s.*\s\.t(?:bss|data)\s+[0-9a-f]+\s+(\S+)$')
_TPOFF = re.compile(r'^([0-9a-f]+)\s+R_X86_64_TPOFF64\s+(\S+?)(?:\+0x([0-9a-f]+))?$')
_RIP_LOAD = re.compile(r'^movq (-?0x[0-9a-f]+)\(%rip\),(%r\w+)$')
_FLAG_STORE = re.compile(r'^movl \$0x1,%fs:(?:0x0)?\((%r\w+)\)$')
_REGISTER = re.compile(r'%\w+')
_TRANSFERS = ('j', 'call', 'ret', 'loop', 'syscall', 'int', 'ud2', 'hlt', 'sysenter')


@functools.lru_cache(maxsize=8)
def _flag_slots(path, mtime):
    """GOT addresses whose TLS offset (``R_X86_64_TPOFF64``) is
    :data:`MARK_FLAG`'s, read with ``objdump -t -R`` (once per file and
    version); empty if none."""
    tool = shutil.which('objdump')
    out = subprocess.run([tool, '-t', '-R', path], capture_output=True,
                         text=True).stdout if tool else ''
    tls = {}
    for line in out.splitlines():
        m = _TLS_SYMBOL.match(line.strip())
        if m:
            tls[m.group(2)] = int(m.group(1), 16)
    if MARK_FLAG not in tls:
        return frozenset()
    slots = set()
    for line in out.splitlines():
        m = _TPOFF.match(line.strip())
        if not m:
            continue
        base = 0 if m.group(2) == '*ABS*' else tls.get(m.group(2))
        if base is not None and base + int(m.group(3) or '0', 16) == tls[MARK_FLAG]:
            slots.add(int(m.group(1), 16))
    return frozenset(slots)


@functools.lru_cache(maxsize=8)
def _entry_code(dump):
    """``{function: [(address, instruction)]}`` from each symbol's own entry
    (no ``.cold`` parts), whitespace normalised (once per dump)."""
    out, cur = {}, None
    for line in dump.splitlines():
        m = _FUNC.match(line)
        if m:
            cur = out.setdefault(m.group(2), [])
            continue
        m = _INSN.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), ' '.join(m.group(2).split('#')[0].split())))
    return out


def marks_first(code, slots):
    """Whether ``code`` (a function's instructions from its entry) stores 1
    to the flag before any branch, call or return: a ``movq`` from one of
    the GOT ``slots`` (the flag's TLS offset) into a register, then
    ``movl $1, %fs:(that register)`` with the register not touched between.
    Anything else that names the register forgets it (fail closed)."""
    from .x86_64 import _GPR64
    holds = set()
    for k, (addr, text) in enumerate(code):
        mnem = text.split()[0]
        if mnem.startswith(_TRANSFERS) or k + 1 == len(code):
            return False
        m = _RIP_LOAD.match(text)
        if m:
            reg = m.group(2)
            holds.discard(reg)
            if code[k + 1][0] + int(m.group(1), 16) in slots:
                holds.add(reg)
            continue
        m = _FLAG_STORE.match(text)
        if m and m.group(1) in holds:
            return True
        if any(_GPR64.get(r, r) in holds for r in _REGISTER.findall(text)) or \
                mnem.startswith(('rep', 'xchg', 'cmpxchg', 'xadd', 'pop', 'mul',
                                 'div', 'idiv', 'cpuid', 'rdtsc', 'cqto', 'cltq')):
            holds = set()
    return False


@functools.lru_cache(maxsize=16)
def _frame_infos(path, mtime, roots, arch):
    """The frame parser's facts of the functions ``roots`` reach in
    ``path`` (the dump cut to them, :func:`_reachable`: the walk below
    visits no other), or None where objdump cannot read it."""
    from .core import ARCHES
    parsed = _parsed(path, mtime, roots)
    return None if parsed is None else ARCHES[arch].parse(*parsed)


def marking_problems(path, roots, arch='x86_64'):
    """Why not every C library call below ``roots`` in the shared object
    ``path`` is marked (empty when each is): every function reached must
    be a marking wrapper (:data:`MARK_PREFIX`, whose code must store 1 to
    :data:`MARK_FLAG` first, :func:`marks_first`; what it calls then runs
    marked; a ``secretjit__cold_`` function likewise) or call only
    functions of the object, none through a pointer.
    Where the machine code cannot be read here, that is the problem."""
    if arch != 'x86_64' or not path or not os.path.exists(path):
        return ['no machine code of %s for %s here' % (path, arch)]
    mtime = os.stat(path).st_mtime_ns
    dump = _dump(path, mtime)
    infos = _frame_infos(path, mtime, tuple(sorted(set(roots))), arch)
    if dump is None or infos is None:
        return ['objdump cannot read %s' % path]
    code, slots = _entry_code(dump), _flag_slots(path, mtime)
    problems, seen, todo = [], set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        info = infos.get(name)
        if info is None:
            problems.append('%s is not a function of %s' % (name, path))
        elif is_marking(name):
            if not marks_first(code.get(name, []), slots):
                problems.append('%s does not set %s before its first branch or '
                                'call' % (name, MARK_FLAG))
        else:
            if info.indirect:
                problems.append('%s calls through a pointer' % name)
            for callee in sorted(info.callees):
                if callee in infos:
                    todo.append(callee)
                else:
                    problems.append('%s calls %s, not through a marking wrapper'
                                    % (name, callee))
    return sorted(problems)


# numba's C destructor path: NRT_MemInfo_call_dtor runs the MemInfo's
# destructor through a pointer, then NRT_dealloc, which frees through the
# MemInfo's external allocator (or numba's allocator) through a pointer.
NUMBA_DTOR_PATH = ('NRT_MemInfo_call_dtor', 'NRT_MemInfo_destroy', 'NRT_dealloc')


def numba_nrt_path():
    """The shared object holding numba's C runtime (``_nrt_python``)."""
    from numba.core.runtime import _nrt_python
    return getattr(_nrt_python, '__file__', None)


@functools.lru_cache(maxsize=4)
def numba_dtor_frames(arch):
    """Bytes numba's C destructor path writes itself, around the calls it
    makes through pointers (the destructor, the allocator's free), read from
    ``_nrt_python``'s machine code; None where it cannot be read here."""
    from ..errors import SecretPolicyError
    try:
        bounds = so_bounds(numba_nrt_path(), NUMBA_DTOR_PATH, arch, {},
                           indirect_allowance=0)
    except SecretPolicyError:   # a call the model does not know (another numba)
        return None
    if bounds is None or _pointer_calls(arch) > _MODELLED_POINTER_CALLS:
        return None
    return max(b.depth for b in bounds.values())


def numba_dtor_closed(arch):
    """Whether numba's C destructor path calls nothing but through the
    pointers the model counts (:func:`numba_dtor_frames` reads it): no C
    library or other external call of its own."""
    from ..errors import SecretPolicyError
    if numba_dtor_frames(arch) is None:
        return False
    try:
        bounds = so_bounds(numba_nrt_path(), NUMBA_DTOR_PATH, arch, {},
                           indirect_allowance=0)
    except SecretPolicyError:
        return False
    return bounds is not None and all(
        set(b.externals) <= {'<indirect call>'} for b in bounds.values())


def markable():
    """The externals a kernel's tree may reach and still take the exact
    entry, when their depth is a :class:`~.core.MarkedDepth`: the runtime's
    kernel-path entries, the secret engine's NRT entries and callbacks
    (:mod:`secretjit.arena_nrt`) and numba's ``NRT_MemInfo_call_dtor``.
    The one list :func:`marked_depth`, ``passes.exact_kernels`` and the
    audit read."""
    from .. import arena_nrt
    from .destructors import CALL_DTOR
    return frozenset(RUNTIME_ENTRIES + arena_nrt.INTERPOSED + arena_nrt.CALLBACKS
                     + arena_nrt.LIBC_SHADOWED + (CALL_DTOR,))


def marked_depth(name, depth, externals, hot=None):
    """``depth`` as a :class:`~.core.MarkedDepth` (hot part ``hot``) when
    ``name`` is :func:`markable` and every external its bound counted
    (``externals``: ``{name: depth}``) is marked too (no indirect call, no
    allowance); otherwise a plain int."""
    if name in markable() and all(isinstance(d, MarkedDepth) for d in externals.values()):
        return MarkedDepth(depth, hot)
    return int(depth)


def dtor_own_depth(arch, frames, free):
    """The bound of ``NRT_MemInfo_call_dtor`` for a module whose kernels
    take only arrays, scalars and tuples and make no varsize MemInfo
    (:data:`.destructors.CALL_DTOR_OWN`): numba's own ``frames`` plus the
    arena's free (``free``, the depth of ``secretjit_ea_free``).

    Marked (:class:`~.core.MarkedDepth`) when ``free`` is and numba's path
    calls nothing but through its pointers (:func:`numba_dtor_closed`).
    Why those pointer calls stay exact: under
    :func:`.destructors.closed_arguments` every MemInfo that can die inside
    the call is one the secret engine's NRT entries made, so its
    destructor is NULL or a module function handed to
    ``NRT_MemInfo_alloc_dtor`` (counted, with its own externals, in the
    kernel's tree by :func:`.destructors.with_destructors`), and its
    external allocator is the arena's, whose free is ``secretjit_ea_free``
    (``free``); numba's own allocator's free is not reached (``NRT_dealloc``
    calls the external allocator when the MemInfo has one).  Where
    ``closed_arguments`` does not hold, :func:`.destructors.for_module`
    picks the plain bound, never marked."""
    depth = frames + free
    if isinstance(free, MarkedDepth) and numba_dtor_closed(arch):
        return MarkedDepth(depth, frames + free.hot)
    return depth


# The calls through pointers the model counts for the path: the destructor
# (NRT_MemInfo_call_dtor), the external allocator's free and numba's own
# allocator's free (NRT_dealloc).  More: a numba whose path the model does
# not describe; the allowance is kept then.
_MODELLED_POINTER_CALLS = 3


def _pointer_calls(arch):
    from .core import ARCHES
    path = numba_nrt_path()
    asm, funcs = _parsed(path, os.stat(path).st_mtime_ns, NUMBA_DTOR_PATH)
    infos = ARCHES[arch].parse(asm, set(NUMBA_DTOR_PATH) & funcs)
    return sum(infos[n].indirect for n in ('NRT_MemInfo_call_dtor', 'NRT_dealloc'))
