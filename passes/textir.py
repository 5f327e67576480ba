"""Read and rewrite LLVM's textual IR one function definition at a time.

llvmlite's binding layer cannot add string attributes or new functions to a
parsed module, so secretjit's passes work on the text LLVM prints
(``str(module)``) and parse the result back.  This module holds the small,
strict parser they share: it understands exactly the layout LLVM's printer
emits (``define`` header on one line, body up to a line holding ``}``).
A stage of the pipeline (``secretjit.pipeline``) parses its module once into a
:class:`Module` and hands that one object from pass to pass
(:func:`text_pass`); only the stage's end turns it back into text for LLVM.
"""

import functools
import re
from dataclasses import dataclass, field

_NAME = r'(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)'
_DEFINE_NAME = re.compile(r'@(' + _NAME + r')\(')


def unquote(name):
    """Return a global's name without LLVM's quotes."""
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1]
    return name


def called_names(line):
    """The globals ``line`` names as ``@name(`` (calls and definitions),
    without their quotes."""
    return [unquote(m.group(1)) for m in _DEFINE_NAME.finditer(line)]


def quote(name):
    """Return ``name`` spelled as an LLVM global reference (``@"..."``)."""
    return '@"%s"' % name


def _skip_quoted(text, i):
    """Index just past the quoted string that starts at ``text[i]``."""
    j = i + 1
    while text[j] != '"':
        j += 2 if text[j] == '\\' else 1
    return j + 1


def _match_close(text, start):
    """Index of the bracket closing the one at ``text[start]``."""
    pairs = {'(': ')', '{': '}', '[': ']', '<': '>'}
    stack = []
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _skip_quoted(text, i)
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif stack and c == stack[-1]:
            stack.pop()
            if not stack:
                return i
        i += 1
    raise ValueError("unbalanced brackets in IR: %r" % text[start:start + 80])


def split_top_level(text, sep=','):
    """Split ``text`` at ``sep`` where no bracket or quote is open."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if c == '"':
            j = _skip_quoted(text, i)
            cur.append(text[i:j])
            i = j
            continue
        if c in '({[<':
            depth += 1
        elif c in ')}]>':
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    tail = ''.join(cur).strip()
    if tail:
        parts.append(tail)
    return parts


def leading_type(arg):
    """The LLVM type at the start of a parameter such as ``ptr noalias %x``."""
    arg = arg.strip()
    if arg[0] in '{[<':
        end = _match_close(arg, 0)
        return arg[:end + 1]
    return arg.split()[0]


@dataclass
class Function:
    """One ``define`` of a module: its header line and body lines."""
    name: str            # unquoted
    header: str          # the ``define ... {`` line
    body: list           # lines after the header, up to and excluding ``}``
    start: int           # index of the header line in the module's lines
    end: int = -1        # index of its closing ``}`` line

    @property
    def linkage(self):
        words = self.header.split('@', 1)[0].split()
        for w in ('internal', 'private', 'linkonce_odr', 'linkonce',
                  'weak_odr', 'weak', 'available_externally'):
            if w in words:
                return w
        return 'external'

    @property
    def params(self):
        """Parameter texts as printed (type, attributes and name)."""
        m = _DEFINE_NAME.search(self.header)
        open_at = m.end() - 1
        close_at = _match_close(self.header, open_at)
        return split_top_level(self.header[open_at + 1:close_at])

    @property
    def return_type(self):
        m = _DEFINE_NAME.search(self.header)
        before = self.header[:m.start()].split()
        return before[-1]


@dataclass
class Module:
    """A module's text split into lines, with its function definitions."""
    lines: list
    functions: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, text):
        lines = text.splitlines()
        mod = cls(lines)
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith('define '):
                m = _DEFINE_NAME.search(line)
                if m is None or not line.rstrip().endswith('{'):
                    raise ValueError("unexpected define line: %r" % line)
                j = i + 1
                while lines[j] != '}':
                    j += 1
                name = unquote(m.group(1))
                mod.functions[name] = Function(name, line, lines[i + 1:j], i, j)
                i = j + 1
                continue
            i += 1
        return mod

    def defined(self):
        return list(self.functions.values())

    def copy(self):
        """A copy whose headers and bodies can be edited independently."""
        return Module(list(self.lines), {
            name: Function(f.name, f.header, list(f.body), f.start, f.end)
            for name, f in self.functions.items()})

    def top_level(self):
        """``(index, line)`` of the lines outside function definitions."""
        out, i = [], 0
        for f in sorted(self.functions.values(), key=lambda f: f.start):
            out.extend((k, self.lines[k]) for k in range(i, f.start))
            i = f.end + 1
        out.extend((k, self.lines[k]) for k in range(i, len(self.lines)))
        return out

    def append_text(self, text):
        """Add the declarations and definitions of ``text`` at the module's end."""
        sub = Module.parse(text)
        offset = len(self.lines)
        self.lines.extend(sub.lines)
        for name, f in sub.functions.items():
            f.start += offset
            f.end += offset
            self.functions[name] = f

    def text(self):
        """Reassemble the module, with any edited headers and bodies."""
        out = []
        by_start = {f.start: f for f in self.functions.values()}
        i = 0
        while i < len(self.lines):
            f = by_start.get(i)
            if f is None:
                out.append(self.lines[i])
                i += 1
                continue
            out.append(f.header)
            out.extend(f.body)
            out.append('}')
            i += 1
            while self.lines[i] != '}':
                i += 1
            i += 1
        return '\n'.join(out) + '\n'


_ATTACHMENTS = re.compile(r'((?:\s+!\w+\s+!\d+)*)\s*\{$')


def add_function_attribute(header, attr):
    """Return the ``define`` line ``header`` with ``attr`` added before ``{``.

    The attribute goes before any metadata attachments (``!dbg !4``), which
    LLVM's grammar puts last.
    """
    assert header.rstrip().endswith('{')
    m = _ATTACHMENTS.search(header.rstrip())
    head = header.rstrip()[:m.start()].rstrip()
    return head + ' ' + attr + m.group(1) + ' {'


def set_linkage(header, linkage):
    """Return ``header`` with its linkage replaced by ``linkage``."""
    head, rest = header.split('@', 1)
    words = head.split()
    assert words[0] == 'define'
    kept = [w for w in words[1:] if w not in (
        'internal', 'private', 'linkonce_odr', 'linkonce', 'weak_odr',
        'weak', 'available_externally', 'dso_local', 'hidden', 'protected')]
    return ' '.join(['define', linkage] + kept) + ' @' + rest


_GROUP_DEF = re.compile(r'^attributes (#\d+) = \{(.*)\}\s*$')
_GROUP_REF = re.compile(r' (#\d+)(?=[ ,]|$)')


def attribute_groups(mod):
    """``{'#3': 'nounwind "target-cpu"="..."', ...}`` of a :class:`Module`."""
    groups = {}
    for _, line in mod.top_level():
        m = _GROUP_DEF.match(line)
        if m:
            groups[m.group(1)] = m.group(2).strip()
    return groups


def inline_attribute_groups(header, groups):
    """``header`` with each ``#N`` group reference spelled out in place."""
    return _GROUP_REF.sub(lambda m: ' ' + groups[m.group(1)], header)


def text_pass(run):
    """Let a pass over a :class:`Module` also take and return IR text.

    ``run(module, ...)`` edits the module in place and returns ``(module,
    report)``.  Called with a :class:`Module`, the wrapped pass does just
    that; called with text (the golden tests, one-off uses), it parses the
    text, runs, and returns ``(text, report)``.
    """
    @functools.wraps(run)
    def wrapper(ir, *args, **kwargs):
        if isinstance(ir, Module):
            return run(ir, *args, **kwargs)
        mod, report = run(Module.parse(ir), *args, **kwargs)
        return mod.text(), report
    return wrapper
