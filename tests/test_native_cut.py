"""The machine-code reader parses only what its roots reach (compile time, issue 15).

``stack_bound.native`` runs objdump once per shared object and converts and
parses only the functions the bounded roots reach (``native._reachable``):
a third of ``_secretmem``'s functions, five of ``_nrt_python``'s.  Checked:
for every root set the library bounds (the kernel path, the public arena
entries, numba's destructor path), the cut gives the same bounds (depth,
deepest path, externals) as the whole dump, and the same errors; the
control: a cut that keeps the roots but drops what they call (a callee
reached only through a PLT stub of the library's own symbol) changes the
answer, so the comparison can see a missed function.
"""
import platform
import re
import shutil

import pytest

from secretjit import secretmem
from secretjit.errors import SecretPolicyError
from secretjit.stack_bound import native
from secretjit.stack_bound.allowances import RUNTIME_LIBC_ALLOWANCE

pytestmark = pytest.mark.skipif(
    platform.machine() != 'x86_64' or not shutil.which('objdump'),
    reason='the machine-code reader is x86-64 only and needs objdump')

PUBLIC = ('secretjit_arena_alloc', 'secretjit_arena_free', 'secretjit_arena_realloc')


def _bounds(asm, funcs, roots, allowances, indirect=None):
    """``{root: (depth, path, externals)}`` or the error text."""
    try:
        out = native.compute_bounds(asm, funcs, roots, 'x86_64',
                                    extra_allowance=allowances,
                                    indirect_allowance=indirect, module_name='so')
    except SecretPolicyError as e:
        return str(e)
    return {k: (b.depth, b.path, b.externals) for k, b in out.items()}


def _cases():
    libc_zero = {}      # every C library function the public entries reach: 0
    asm, funcs = native.disassemble(native._reachable(
        native._objdump(secretmem.library_path()), PUBLIC))
    for _ in range(64):
        got = _bounds(asm, funcs, PUBLIC, libc_zero)
        if not isinstance(got, str):
            break
        libc_zero[re.search(r'external function (\S+)', got).group(1)] = 0
    return [
        (secretmem.library_path(), native.RUNTIME_ENTRIES, RUNTIME_LIBC_ALLOWANCE, None),
        (secretmem.library_path(), native.RUNTIME_ENTRIES, {}, None),   # an error
        (secretmem.library_path(), PUBLIC, libc_zero, None),
        (native.numba_nrt_path(), native.NUMBA_DTOR_PATH, {}, 0),
    ]


def test_cut_dump_gives_the_whole_dumps_bounds():
    cut_sizes, errors = [], 0
    for path, roots, allowances, indirect in _cases():
        dump = native._objdump(path)
        whole = _bounds(*native.disassemble(dump), roots, allowances, indirect)
        errors += isinstance(whole, str)
        cut_asm, cut_funcs = native.disassemble(native._reachable(dump, roots))
        cut = _bounds(cut_asm, cut_funcs, roots, allowances, indirect)
        assert cut == whole, (path, roots)
        assert set(roots) <= cut_funcs < native.disassemble(dump)[1]
        cut_sizes.append(len(cut_funcs))
        # what so_bounds reads (the cached cut) is the same
        if not isinstance(whole, str):
            got = native.so_bounds(path, roots, 'x86_64', allowances, indirect)
            assert {k: (b.depth, b.path, b.externals) for k, b in got.items()} == whole
    assert errors == 1                  # the kernel path without its allowances
    print('functions kept:', cut_sizes)


def test_control_a_cut_without_the_callees_changes_the_answer():
    """The roots' own bodies without their callees: the comparison above
    would see the difference (here an error: a callee has no body)."""
    dump = native._objdump(secretmem.library_path())
    roots = native.RUNTIME_ENTRIES
    whole = _bounds(*native.disassemble(dump), roots, RUNTIME_LIBC_ALLOWANCE)
    assert not isinstance(whole, str)
    out, keep = [], False
    for line in dump.splitlines():
        m = native._FUNC.match(line)
        if m:
            keep = m.group(2) in roots
        if keep:
            out.append(line)
    shallow = _bounds(*native.disassemble('\n'.join(out) + '\n'), roots,
                      RUNTIME_LIBC_ALLOWANCE)
    assert shallow != whole
    # regression: secretjit_slab_free calls secretjit_arena_owns through the
    # library's own PLT stub (secretjit_arena_owns@plt); the cut follows it
    # under the name the reader gives the call
    assert 'secretjit_arena_owns' in native._functions(native._reachable(dump, roots))
