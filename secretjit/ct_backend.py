"""The backend half of the constant-time policy: hardening and the division check.

- :func:`harden_features` and :func:`hardened_backend`: target features and
  LLVM options that keep the backend from turning constant-time IR into
  secret branches, for secret code generation only (the JIT's secret target
  machine and every AOT target machine):

  ========  ===================================================================
  x86-64    ``-x86-cmov-converter=false`` (the cmov-to-branch conversion:
            clangover, CVE-2024-58262), ``-disable-cgp-select2branch``
            (CodeGenPrepare's select-to-branch for selects fed by loads),
            features ``-idivq-to-divl,-idivl-to-divb`` (no run-time branch on
            whether a division's operands fit in 32 / 8 bits)
  AArch64   no cmov converter and no division bypass in LLVM; the two passes
            that can make a ``csel`` a branch are off: ``-aarch64-select-opt=
            false`` (SelectOptimize, run at -O3 for CPUs tuned with
            ``enable-select-opt``) and ``-disable-cgp-select2branch``, and
            the tuning features ``-enable-select-opt,
            -predictable-select-expensive`` go from the target machine
  ========  ===================================================================

- :func:`division_instructions` / :func:`machine_divisions`: a function
  whose IR divides a secret (by a constant the backend should have turned
  into a multiplication, or in ``warn`` mode by a variable) must not
  contain ``div``/``idiv`` (x86-64) or ``udiv``/``sdiv`` (AArch64, whose
  dividers stop early on small operands); read with capstone from the ELF
  object the JIT or the AOT build emits.
"""

import contextlib
import io
import os

import llvmlite.binding as ll
from numba.core.compiler_lock import global_compiler_lock

from . import passes

DIV_MNEMONICS = {'x86_64': ('div', 'idiv'), 'aarch64': ('udiv', 'sdiv')}
# (option, value for secret code, LLVM's default restored after it)
_HARDENED = {'x86_64': [('-x86-cmov-converter', 'false', 'true'),
                        ('-disable-cgp-select2branch', 'true', 'false')],
             'aarch64': [('-aarch64-select-opt', 'false', 'true'),
                         ('-disable-cgp-select2branch', 'true', 'false')]}
_FEATURES = {'x86_64': ('-idivq-to-divl', '-idivl-to-divb'),
             'aarch64': ('-enable-select-opt', '-predictable-select-expensive')}


def hardening_enabled():
    """False when ``SECRETJIT_CT_HARDENING=0`` (to measure what it costs)."""
    return os.environ.get('SECRETJIT_CT_HARDENING', '1') != '0'


def harden_features(features, arch):
    """``features`` (a target-feature string) with the hardening features."""
    if not hardening_enabled():
        return features
    words = [w for w in features.split(',') if w]
    for feat in _FEATURES.get(arch, ()):
        words = [w for w in words if w[1:] != feat[1:]] + [feat]
    return ','.join(words)


@contextlib.contextmanager
def hardened_backend(arch):
    """Hardened LLVM codegen options while the block generates secret code.

    ``llvm.set_option`` is process-global: the options are set and reset
    under numba's compiler lock, which every numba code generation holds.
    """
    options = _HARDENED.get(arch, ()) if hardening_enabled() else ()
    if not options:
        yield
        return
    with global_compiler_lock:
        if not _depth[0]:
            for name, on, _ in options:
                ll.set_option('', '%s=%s' % (name, on))
        _depth[0] += 1
        try:
            yield
        finally:
            _depth[0] -= 1
            if not _depth[0]:
                for name, _, off in options:
                    ll.set_option('', '%s=%s' % (name, off))


_depth = [0]        # nesting of hardened_backend (under the compiler lock)


def disassembler(arch):
    """A capstone disassembler for ``arch``."""
    import capstone
    if arch == 'x86_64':
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)


def function_code(obj, functions):
    """{name: machine code bytes} of the named functions of an ELF object or library."""
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(obj))
    out = {}
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym['st_info']['type'] != 'STT_FUNC' or not sym['st_size'] or \
                sym.name not in functions:
            continue
        sec = elf.get_section(sym['st_shndx'])
        start = sym['st_value'] - sec['sh_addr']    # 0 in an object file
        out[sym.name] = sec.data()[start:start + sym['st_size']]
    return out


def division_instructions(obj, arch, functions):
    """{function: [mnemonic, ...]} of divisions in an ELF object's functions."""
    md = disassembler(arch)
    wanted = DIV_MNEMONICS[arch]
    out = {}
    for name, code in function_code(obj, functions).items():
        found = [i.mnemonic for i in md.disasm(code, 0) if i.mnemonic in wanted]
        if found:
            out[name] = found
    return out


def machine_divisions(obj, arch, findings):
    """``machine-division`` findings: IR divisions on secrets left in ``obj``."""
    divs = [f for f in findings if f.kind in ('constant-division', 'division')]
    if not divs or arch not in DIV_MNEMONICS:
        return []
    found = division_instructions(obj, arch, {f.function for f in divs})
    return [passes.Finding(
        'machine-division', f.function, f.location, f.inlined_at,
        'the machine code of this function contains %s although its IR '
        'divides a secret (%s)' % ('/'.join(sorted(set(found[f.function]))),
                                   f.detail))
        for f in divs if f.function in found]
