"""Constant-time policy of secret kernels: ``secret=``, the check, the backend.

- :func:`attach` validates ``secret_jit(secret=..., constant_time=...)`` and
  records the policy on the dispatcher; :func:`compiling` makes it visible
  to code generation while the dispatcher compiles.
- :func:`check_module` (called by ``SecretCodeLibrary`` after -O3) runs
  :func:`passes.find_ct_violations` over the library's optimized module,
  raises ``SecretPolicyError('constant-time')`` (or warns with
  :class:`~secretjit.errors.ConstantTimeWarning`), checks the machine code
  of functions that divide a secret by a constant, and strips the line
  tables the check read.
- :class:`SecretTargetOptions` compiles secret code with line tables only
  (numba's ``debug`` in "directives only" mode: no variables, no
  ``noinline``, no bounds checks), which is where the check's Python lines
  come from.
- :func:`hardened_backend` and :func:`harden_features`: LLVM settings that
  keep the backend from turning constant-time IR into secret branches
  (x86 cmov-to-branch conversion, CodeGenPrepare's select-to-branch, the
  64-/32-bit division bypass), for secret code generation only.
"""

import contextlib
import inspect
import os
import threading
import warnings

import llvmlite.binding as ll
from numba.core.compiler_lock import global_compiler_lock
from numba.core.cpu import CPUTargetOptions
from numba.core.errors import NumbaDebugInfoWarning

from . import passes
from .errors import ConstantTimeWarning, SecretPolicyError
from .optnames import name_tuple

MODES = ('error', 'warn', 'off')


class Policy:
    """The secret parameters of one kernel and what a finding does."""

    def __init__(self, secret, mode):
        self.secret = tuple(secret)
        self.mode = mode

    def __repr__(self):
        return 'Policy(secret=%r, mode=%r)' % (self.secret, self.mode)


def pop_options(kws):
    """Take ``secret`` and ``constant_time`` out of ``secret_jit``'s options."""
    secret = kws.pop('secret', None)
    mode = kws.pop('constant_time', 'error')
    if mode is True:
        mode = 'error'
    if mode is False:
        mode = 'off'
    if mode not in MODES:
        raise ValueError("secret_jit(constant_time=%r): expected one of %s"
                         % (mode, ', '.join(repr(m) for m in MODES)))
    if secret is None:
        return None
    return Policy(name_tuple(secret, 'secret_jit', 'secret', 'parameter names',
                             "secret=('key', 'msg')"), mode)


def _configure(disp, policy):
    # NUMBA_DISABLE_JIT=1: numba hands back the Python function itself
    func = getattr(disp, 'py_func', disp)
    params = list(inspect.signature(func).parameters)
    unknown = [n for n in policy.secret if n not in params]
    if unknown:
        raise TypeError(
            "secret_jit(secret=%r): %s %s not a parameter of %s(%s); secret= "
            "names the kernel's parameters whose contents are secret"
            % (policy.secret, ', '.join(repr(n) for n in unknown),
               'is' if len(unknown) == 1 else 'are',
               func.__qualname__, ', '.join(params)))
    if func is not disp:
        disp._ct_policy = policy
    return disp


def attach(jitted, policy):
    """Record ``policy`` on what ``numba.jit`` returned (dispatcher or decorator)."""
    if policy is None:
        return jitted
    if hasattr(jitted, 'py_func'):
        return _configure(jitted, policy)

    def wrapper(func):
        return _configure(jitted(func), policy)
    return wrapper


_state = threading.local()


@contextlib.contextmanager
def compiling(dispatcher):
    """Make ``dispatcher``'s policy the current one while it compiles."""
    stack = _state.__dict__.setdefault('stack', [])
    stack.append(getattr(dispatcher, '_ct_policy', None))
    try:
        if len(stack) > 1:
            yield
            return
        with warnings.catch_warnings():
            # The line tables are secretjit's, not asked for by the user:
            # numba's warning about functions without source (lambdas,
            # exec'd code) does not apply.
            warnings.filterwarnings('ignore', category=NumbaDebugInfoWarning)
            yield
    finally:
        stack.pop()


def current_policy():
    stack = getattr(_state, 'stack', None)
    return stack[-1] if stack else None


class SecretTargetOptions(CPUTargetOptions):
    """numba's CPU options, with line tables on unless ``debug`` is given."""

    def finalize(self, flags, options):
        if not flags.is_set('debuginfo') and line_tables_enabled():
            flags.debuginfo = True
            flags.dbg_directives_only = True
            if not flags.is_set('boundscheck'):
                flags.boundscheck = False
            if not flags.is_set('dbg_extend_lifetimes'):
                flags.dbg_extend_lifetimes = False
        super().finalize(flags, options)


def line_tables_enabled():
    """False when ``SECRETJIT_LINE_TABLES=0`` (used to prove they change nothing)."""
    return os.environ.get('SECRETJIT_LINE_TABLES', '1') != '0'


# -- the check -------------------------------------------------------------

def check_module(library, text):
    """Check the kernels of ``library`` (optimized IR ``text``); strip line tables.

    Called after -O3, before the stack analysis generates code.  Returns the
    text the secret passes continue with: without line tables for a library
    with secret entries; unchanged for other libraries (helpers linked into
    kernels), which :func:`strip_for_codegen` strips after their passes.
    """
    entries = getattr(library, '_secret_entries', ())
    if not entries:
        return text
    if os.environ.get('SECRETJIT_CTCHECK') == '1':
        library._ct_debug_text = text       # for ctcheck's line maps
    policy = current_policy()
    library.ct_findings = []
    if policy is not None and policy.mode != 'off':
        kernels = {k: policy.secret for _, k in entries}
        findings, report = passes.find_ct_violations(text, kernels)
        library.pass_reports.append(report)
        findings += _machine_code_divisions(library, text, findings)
        library.ct_findings = findings
        _report(findings, policy)
    return passes.strip_debug_info(text)[0]


def strip_for_codegen(library, text):
    """``text`` without line tables; a helper library keeps them for linking.

    Called with the library's final text after all secret passes.  Kernels
    link helpers' modules (:func:`module_for_linking`) with the line tables
    their checks read; the helper's own machine code is generated without
    them, like every secret library's (LLVM's DWARF emission aborted on
    some of these modules).
    """
    if '!dbg' not in text:
        return text
    if not getattr(library, '_secret_entries', ()):
        library._ct_linking_text = text
    return passes.strip_debug_info(text)[0]


def module_for_linking(library, get_module):
    """``get_module()`` (numba's linking copy) made from the line-tabled module."""
    text = getattr(library, '_ct_linking_text', None)
    if text is None or library._shared_module is not None:
        return get_module()
    library._ensure_finalized()
    final = library._final_module
    mod = ll.parse_assembly(text)
    mod.name, mod.triple, mod.data_layout = final.name, final.triple, final.data_layout
    library._final_module = mod
    try:
        return get_module()
    finally:
        library._final_module = final
        library._ct_linking_text = None


def _readable(name):
    from .stack_bound import readable
    return readable(name)


def _report(findings, policy):
    errors = [f for f in findings if f.severity == 'error']
    warns = [f for f in findings if f.severity != 'error']
    lines = [f.line(_readable) for f in findings]
    if errors and policy.mode == 'error':
        err = SecretPolicyError(
            'constant-time',
            "%d constant-time violation%s in the optimized code of the call "
            "tree, with secret=%r"
            % (len(errors), 's' if len(errors) > 1 else '', policy.secret),
            "see each finding's fix below; a value that may be public can be "
            "branched on as secretjit.declassify(x); constant_time='warn' "
            "reports without failing:\n  " + '\n  '.join(lines))
        err.findings = findings
        raise err
    if errors or warns:
        warnings.warn(ConstantTimeWarning(
            "secretjit constant-time (secret=%r):\n  %s"
            % (policy.secret, '\n  '.join(lines))), stacklevel=2)


# -- machine code ----------------------------------------------------------

_DIV_MNEMONICS = {'x86_64': ('div', 'idiv'), 'aarch64': ('udiv', 'sdiv')}


def division_instructions(obj, arch, functions):
    """{function: [mnemonic, ...]} of divisions in an ELF object's functions."""
    import io

    import capstone
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(obj))
    if arch == 'x86_64':
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    wanted = _DIV_MNEMONICS[arch]
    out = {}
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym['st_info']['type'] != 'STT_FUNC' or not sym['st_size'] or \
                sym.name not in functions:
            continue
        sec = elf.get_section(sym['st_shndx'])
        code = sec.data()[sym['st_value']:sym['st_value'] + sym['st_size']]
        found = [i.mnemonic for i in md.disasm(code, 0)
                 if i.mnemonic in wanted]
        if found:
            out[sym.name] = found
    return out


def _machine_code_divisions(library, text, findings):
    """A division on a secret in the IR must not be a divide instruction."""
    divs = [f for f in findings if f.kind in ('constant-division', 'division')]
    if not divs:
        return []
    arch = library._codegen.arch
    if arch not in _DIV_MNEMONICS:
        return []
    mod = ll.parse_assembly(passes.strip_debug_info(text)[0])
    with hardened_backend(arch):
        obj = library._codegen._tm.emit_object(mod)
    found = division_instructions(obj, arch, {f.function for f in divs})
    out = []
    for f in divs:
        if f.function in found:
            out.append(passes.Finding(
                'machine-division', f.function, f.location, f.inlined_at,
                'the machine code of this function contains %s although its '
                'IR divides a secret (%s)' % ('/'.join(sorted(set(
                    found[f.function]))), f.detail)))
    return out


# -- backend ---------------------------------------------------------------

# LLVM options that make the x86 backend branch on a condition the IR
# computed with a select: the cmov-to-branch conversion (clangover,
# CVE-2024-58262) and CodeGenPrepare's select-to-branch for selects fed by
# loads.  Values for secret code generation, and LLVM's defaults restored
# after it.
_HARDENED = {'x86_64': [('-x86-cmov-converter', 'false', 'true'),
                        ('-disable-cgp-select2branch', 'true', 'false')],
             'aarch64': [('-disable-cgp-select2branch', 'true', 'false')]}
# Target features of the secret target machine: no run-time check of whether
# a 64-bit (32-bit) division's operands fit in 32 (8) bits.
_FEATURES = {'x86_64': ('-idivq-to-divl', '-idivl-to-divb')}


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
