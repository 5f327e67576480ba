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
"""

import functools
import os
import re
import shutil
import subprocess

from .core import compute_bounds

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


@functools.lru_cache(maxsize=4)
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
    no objdump): the caller keeps its allowances then."""
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
                          module_name=os.path.basename(path))


# The secret runtime's entries on the kernel path (secretjit.arena_nrt calls
# them).  Their call graph is closed: no call through a pointer, and since
# issue 15 no pthread_setspecific or __tls_get_addr below them (a thread
# enrols when its secret stack is set up, csrc/secretstack_setup.c; the
# arena's cache is reached through an initial-exec pointer).
RUNTIME_ENTRIES = ('secretjit_slab_alloc', 'secretjit_slab_free',
                   'secretjit_slab_realloc')


@functools.lru_cache(maxsize=4)
def runtime_bounds(arch):
    """``{entry: depth}`` of :data:`RUNTIME_ENTRIES` from ``_secretmem``'s
    machine code, the C library calls they make counted with
    :data:`.allowances.RUNTIME_LIBC_ALLOWANCE`; ``{}`` where it cannot be
    read here (AArch64, no objdump, an unlisted call): the measured
    allowances of :data:`.allowances.EXTERNAL_ALLOWANCE` stay then."""
    from .. import secretmem
    from ..errors import SecretPolicyError
    from .allowances import RUNTIME_LIBC_ALLOWANCE
    try:
        bounds = so_bounds(secretmem.library_path(), RUNTIME_ENTRIES, arch,
                           RUNTIME_LIBC_ALLOWANCE)
    except SecretPolicyError:
        return {}
    return {} if bounds is None else {n: b.depth for n, b in bounds.items()}


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
