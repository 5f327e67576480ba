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
  ``noinline``, no bounds checks) when :mod:`secretjit.line_tables` wants
  them: on a retry after a finding, which is where the check's Python lines
  come from.
- :func:`hardened_backend` and :func:`harden_features` (from
  :mod:`secretjit.ct_backend`, which also holds the machine-code division
  check): LLVM settings that keep the backend from turning constant-time IR
  into secret branches, for secret code generation only.
- The AOT build runs the same check and hardening: :mod:`secretjit.aot.ct`.
"""

import contextlib
import inspect
import os
import threading
import warnings

import llvmlite.binding as ll
from numba.core.cpu import CPUTargetOptions
from numba.core.errors import NumbaDebugInfoWarning

from . import line_tables, passes
from .ct_backend import (DIV_MNEMONICS, division_instructions, harden_features,  # noqa: F401
                         hardened_backend, hardening_enabled,
                         machine_divisions)
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
    """numba's CPU options, with line tables when wanted (unless ``debug`` is given)."""

    def finalize(self, flags, options):
        if not flags.is_set('debuginfo') and line_tables.wanted():
            flags.debuginfo = True
            flags.dbg_directives_only = True
            if not flags.is_set('boundscheck'):
                flags.boundscheck = False
            if not flags.is_set('dbg_extend_lifetimes'):
                flags.dbg_extend_lifetimes = False
        super().finalize(flags, options)




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
        if findings:
            line_tables.request()       # to name their lines (no-op if here)
        library.ct_findings = findings
        report_findings(findings, policy)
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


def report_findings(findings, policy):
    """Raise ``SecretPolicyError('constant-time')`` or warn, per ``policy.mode``."""
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


def _machine_code_divisions(library, text, findings):
    """A division on a secret in the IR must not be a divide instruction."""
    arch = library._codegen.arch
    if arch not in DIV_MNEMONICS or not any(
            f.kind in ('constant-division', 'division') for f in findings):
        return []
    mod = ll.parse_assembly(passes.strip_debug_info(text)[0])
    with hardened_backend(arch):
        obj = library._codegen._tm.emit_object(mod)
    return machine_divisions(obj, arch, findings)
