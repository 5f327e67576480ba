"""Instruction-level reading of LLVM IR for the constant-time passes.

The taint analysis (:mod:`passes.ct_taint`) and the findings
(:mod:`passes.ct_findings`) see a function body as a list of :class:`Inst`::

    %p = getelementptr i8, ptr @sbox, i64 %i, !dbg !9
      -> Inst(result='%p', op='getelementptr',
              text='getelementptr i8, ptr @sbox, i64 %i', dbg='9',
              refs=['%i'])

and calls through :func:`call_parts` (callee, inline-asm template,
argument values).  The regular expressions at the end name the external
functions the analysis treats specially (bookkeeping, copies, memset,
sqrt, masked memory intrinsics).  Golden cases: ``tests/test_ct_golden.py``.
"""

import re
from dataclasses import dataclass, field

from .textir import split_top_level, unquote

REF = r'%(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)'
REF_RE = re.compile(REF)
_LABEL_REF = re.compile(r'label\s+' + REF)
_ASSIGN = re.compile(r'^\s*(' + REF + r')\s*=\s*(.*)$')
_DBG = re.compile(r',\s*!dbg\s+!(\d+)')
_CALLEE = re.compile(r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)\s*\(')

# Calls to these external functions are bookkeeping on pointers the kernel
# holds (reference counts, allocation, erasure, exceptions): their timing
# does not depend on the contents of the memory they are given.
BOOKKEEPING = re.compile(
    r'^(NRT_(incref|decref|MemInfo_call_dtor|MemInfo_alloc\w*|MemInfo_new\w*|'
    r'MemInfo_data\w*|MemInfo_varsize\w*|Free|Allocate\w*)|'
    r'secretjit_\w*wipe\w*|numba_gil_\w+|llvm\.(lifetime|assume|dbg|'
    r'experimental\.noalias|invariant|stacksave|stackrestore|trap|'
    r'donothing|prefetch)[.\w]*)$')
COPY = re.compile(r'^(llvm\.(memcpy|memmove)[.\w]*|memcpy|memmove)$')
SET = re.compile(r'^(llvm\.memset[.\w]*|memset)$')
SQRT = re.compile(r'^llvm\.sqrt\.')
MEMORY_INTRINSIC = re.compile(r'^llvm\.(masked|vp|experimental\.vp)\.'
                              r'(gather|scatter|load|store|expandload|'
                              r'compressstore)')


@dataclass
class Inst:
    result: str          # "%x" or ""
    op: str
    text: str            # the instruction without its result and !dbg
    dbg: str             # metadata id or ""
    refs: list = field(default_factory=list)


def parse_body(lines):
    """Instructions of a function body (switch cases joined to one line)."""
    insts, pending = [], None
    for raw in lines:
        line = raw.split(';', 1)[0] if ';' in raw and '"' not in raw else raw
        s = line.strip()
        if pending is not None:
            pending += ' ' + s
            if s.startswith(']'):
                insts.append(make_inst(pending))
                pending = None
            continue
        if not s or s.startswith('#dbg_') or s.endswith(':') or \
                re.match(r'^[-\w$.]+:(\s|$)', s) or re.match(r'^"[^"]*":', s):
            continue
        if s.startswith('switch ') and not s.rstrip().endswith(']') \
                and '[' in s:
            pending = s
            continue
        insts.append(make_inst(s))
    return insts


def make_inst(s):
    """One :class:`Inst` from an instruction's text."""
    m = _DBG.search(s)
    dbg = m.group(1) if m else ''
    s = _DBG.sub('', s)
    a = _ASSIGN.match(s)
    result, rest = (a.group(1), a.group(2)) if a else ('', s)
    words = rest.split()
    op = words[0] if words else ''
    if op in ('tail', 'musttail', 'notail'):
        op = words[1]
    refs = REF_RE.findall(_LABEL_REF.sub('', rest))
    return Inst(result, op, rest, dbg, refs)


def call_parts(text):
    """(callee name or None, asm template or None, [arg value texts])."""
    asm = None
    m = re.search(r'\basm\s+(?:sideeffect\s+)?(?:alignstack\s+)?'
                  r'(?:inteldialect\s+)?"((?:[^"\\]|\\.)*)"', text)
    if m:
        asm = m.group(1)
        open_at = text.index('(', m.end())
        callee = None
    else:
        cm = _CALLEE.search(text)
        if cm is None:                       # indirect call through a pointer
            idx = [i for i, c in enumerate(text) if c == '(']
            open_at = idx[-1] if idx else len(text)
            callee = None
        else:
            callee = unquote(cm.group(1))
            open_at = cm.end() - 1
    depth, close_at = 0, len(text)
    for i in range(open_at, len(text)):
        if text[i] in '([{<':
            depth += 1
        elif text[i] in ')]}>':
            depth -= 1
            if depth == 0:
                close_at = i
                break
    args = split_top_level(text[open_at + 1:close_at]) if open_at < len(text) else []
    return callee, asm, [a.split()[-1] if a.split() else '' for a in args]


def params(fn):
    """The value names of ``fn``'s parameters."""
    return [p.split()[-1] for p in fn.params]


def pointer_sources(op, text):
    """Operands whose points-to class the result shares."""
    parts = split_top_level(text.split(None, 1)[1]) if ' ' in text else []
    vals = [p.split()[-1] for p in parts if p.split()]
    if op == 'getelementptr':
        # getelementptr [inbounds] <ty>, ptr <base>, <indices>
        return vals[1:2]
    if 'ptr' not in text:
        return []
    if op == 'select':
        return [v for p, v in zip(parts[1:3], vals[1:3]) if 'ptr' in p]
    if op == 'phi':
        if 'ptr' not in text.split('[', 1)[0]:
            return []
        return re.findall(r'\[\s*([%@][^,\s]+)\s*,', text)
    if op in ('bitcast', 'addrspacecast', 'freeze', 'extractvalue',
              'extractelement', 'shufflevector'):
        return vals[:1] if op != 'shufflevector' else vals[:2]
    if op in ('insertvalue', 'insertelement'):
        return vals[:2]
    return []


def store_operands(text):
    """(stored value, address) of a ``store``."""
    parts = split_top_level(text[len('store'):].replace('volatile ', '', 1)
                            .replace('atomic ', '', 1))
    if len(parts) < 2:
        return '', None
    return parts[0].split()[-1], parts[1].split()[-1]


def loads_pointer(text):
    """Whether a ``load`` reads a pointer."""
    words = [w for w in text.split()[1:3] if w not in ('volatile', 'atomic')]
    return bool(words) and words[0].rstrip(',') == 'ptr'


def load_address(text):
    """The address of ``load <ty>, ptr <addr>[, align N]``."""
    parts = split_top_level(text[len('load'):].replace('volatile ', '', 1)
                            .replace('atomic ', '', 1))
    for p in parts[1:]:
        w = p.split()
        if len(w) >= 2 and w[0] == 'ptr':
            return w[-1]
    return None
