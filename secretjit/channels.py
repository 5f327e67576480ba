"""Fail closed: refuse, at compile time, channels the erasure does not cover.

A numba compiler pass (:class:`SecretChannelCheck`) runs after type inference
and before lowering on every function compiled for the secret target (kernels,
the secret twins of plain ``@njit`` helpers, ``@overload`` implementations).
It looks at the typed IR and refuses, with a :class:`SecretPolicyError`
naming the rule, the Python file and line of the offending expression and the
fix, every construct that moves data through memory the secret stack, the
secret arena and the register zeroing do not cover:

- ``static-exceptions``: ``raise E(x)`` with a runtime argument.  numba copies
  the arguments into a Python exception object built after the call returns;
  it is freed without a wipe.  (Static messages are fine.)
- ``no-typed-containers``: ``numba.typed.List``/``Dict`` (and ``{k: v}``
  literals, which are typed dicts): numba's C helpers (``_helperlib``) keep
  their items in libc ``malloc`` memory, never wiped.
- ``no-np-random``: ``np.random.*``, ``random.*`` and ``np.random.Generator``
  arguments: the generator state is C memory outside the arena, never wiped,
  and not a CSPRNG (use ``secretjit.random_bytes``).
- ``no-foreign-calls``: calls through ``ctypes``/``cffi`` function pointers
  and declared external C functions: their stack use is unknown to the bound
  and their heap is not the arena.
- ``no-function-arguments``: first-class functions (an ``@njit`` function,
  a ``cfunc`` or a function-typed value passed as an argument).

and, so that they name the line too, ``print()`` (``no-interpreter-calls``),
BLAS/LAPACK (``np.dot``, ``np.linalg``, ``@``: ``no-foreign-calls``, checked
while a call is typed, since numba types them only with SciPy) and the
global-value rules of :mod:`secretjit.policy` (``prange``, ``objmode``,
jitclass; :class:`SecretGlobalCheck`, on the untyped IR).

Opt-outs: ``secret_jit(allow=("typed-containers",))`` (a rule's name, with or
without its ``no-`` prefix) lets that rule's constructs compile; every waived
site is listed in ``pass_reports()``.  ``secret_jit(stack_allowance={name:
bytes})`` declares the stack need of an external C function the stack bound
does not list (otherwise a ``bounded-stack`` error), also reported there.
The rules themselves are in :mod:`secretjit.channel_rules`.  Only the rules in :data:`ALLOWABLE` can
be waived: the others guard the stack bound or the boundary itself, and
waiving them would not give a weaker contract but none.
"""

import contextlib
import threading
from dataclasses import dataclass, field

from numba.core import ir
from numba.core.compiler import Compiler
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.typed_passes import NopythonTypeInference
from numba.core.untyped_passes import IRProcessing

from .channel_rules import (_defer_to_caller, _located, check_callee,  # noqa: F401
                            check_function)
from .errors import SecretPolicyError
from .optnames import name_tuple
from .passes.report import PassReport
from .stack_bound.unknown import normalize_declared as normalize_stack_allowance  # noqa: F401

# rule -> what compiling it anyway gives up (the README states the same).
ALLOWABLE = {
    'static-exceptions': "exception arguments are copied into a Python "
                         "exception object that is freed without a wipe",
    'no-typed-containers': "the container's items live in libc malloc memory "
                           "(numba's _helperlib), never wiped",
}
# Rules that cannot be waived, and why (for the error message).
NOT_ALLOWABLE = {
    'no-parallel': "worker threads' stacks and registers are never scrubbed",
    'no-objmode': "Python code runs on the kernel's stack",
    'no-generators': "the generator state outlives the call in a Python object",
    'no-jitclass': "jitclass types cannot be typed for the secret target",
    'no-secret-from-plain': "the plain caller's frames would hold the secrets",
    'bounded-stack': "without a static bound the stack cannot be scrubbed",
    'no-interpreter-calls': "the interpreter's stack use has no bound",
    'no-foreign-calls': "the callee's stack use has no bound, so the scrub "
                        "would not cover it",
    'no-function-arguments': "first-class functions are not supported by the "
                             "secret target",
    'no-np-random': "numba's random-state getters seed the generator through "
                    "the interpreter, whose stack use has no bound; its state "
                    "is C memory outside the arena, never wiped, and not a CSPRNG",
}


def normalize_allow(allow):
    """The validated set of rule names ``allow`` waives."""
    if allow is None:
        return frozenset()
    names = name_tuple(allow, 'secret_jit', 'allow', 'rule names',
                       "allow=('typed-containers',)")
    out = set()
    for name in names:
        rule = name if name in ALLOWABLE or name in NOT_ALLOWABLE else 'no-' + name
        if rule in NOT_ALLOWABLE:
            raise ValueError(
                "secret_jit(allow=...): rule %r cannot be waived (%s); rules "
                "that can: %s" % (name, NOT_ALLOWABLE[rule],
                                  ', '.join(sorted(ALLOWABLE))))
        if rule not in ALLOWABLE:
            raise ValueError(
                "secret_jit(allow=...): unknown rule %r; rules that can be "
                "waived: %s" % (name, ', '.join(sorted(ALLOWABLE))))
        out.add(rule)
    return frozenset(out)

def _callee_waivers(typemap):
    """Waived sites of the secret functions this one calls (already compiled)."""
    out = []
    for ty in typemap.values():
        disp = getattr(ty, 'dispatcher', None)
        if disp is None or not hasattr(disp, 'overloads'):
            continue
        for cres in list(disp.overloads.values()):
            for entry in (getattr(cres, 'metadata', None) or {}).get(
                    'secretjit_waived', ()):
                if entry not in out:
                    out.append(entry)
    return out


@register_pass(mutates_CFG=False, analysis_only=True)
class SecretChannelCheck(AnalysisPass):
    """Refuse constructs whose data the erasure does not cover."""

    _name = 'secretjit_channel_check'

    def __init__(self):
        AnalysisPass.__init__(self)

    def run_pass(self, state):
        allow = state.get('secret_allow', frozenset()) if hasattr(state, 'get') \
            else frozenset()
        modname = getattr(state.func_id, 'modname', '') or ''
        internal = modname == 'numba' or modname.startswith('numba.')
        if internal and _defer_to_caller(state.args, allow):
            waived = []
        else:
            waived = check_function(state.func_ir, state.typemap, allow, internal)
        for entry in _callee_waivers(state.typemap):
            if entry not in waived:
                waived.append(entry)
        if state.metadata is not None:
            state.metadata['secretjit_waived'] = waived
            state.metadata['secretjit_allow'] = sorted(allow)
            state.metadata['secretjit_stack_allowance'] = dict(
                state.get('secret_stack_allowance', ()) if hasattr(state, 'get')
                else ())
        return False


@register_pass(mutates_CFG=False, analysis_only=True)
class SecretGlobalCheck(AnalysisPass):
    """The global-value rules of :mod:`secretjit.policy` (prange, objmode,
    jitclass), checked on the untyped IR so that the error names the line
    (numba's type inference reports them without one)."""

    _name = 'secretjit_global_check'

    def __init__(self):
        AnalysisPass.__init__(self)

    def run_pass(self, state):
        from . import policy
        for block in state.func_ir.blocks.values():
            for inst in block.body:
                if isinstance(inst, ir.Assign) and isinstance(
                        inst.value, (ir.Global, ir.FreeVar)):
                    try:
                        policy.check_value(inst.value.value)
                    except SecretPolicyError as e:
                        raise _located(e.rule, e.problem, e.fix, inst.loc) from None
        return False


_pipelines = {}


def pipeline_class(base=None, allow=None, stack_allowance=None):
    """A compiler class like ``base`` whose nopython pipeline checks channels.

    ``allow`` (validated rule names) and ``stack_allowance`` (validated
    ``{external: bytes}``) default to ``base``'s own when ``base`` is already
    such a class, else to none.
    """
    base = base or Compiler
    if getattr(base, '_secret_channel_checked', False):
        if allow is None and stack_allowance is None:
            return base
        allow = base.secret_allow if allow is None else allow
        if stack_allowance is None:
            stack_allowance = dict(base.secret_stack_allowance)
        base = base._secret_base
    allow = frozenset(allow or ())
    declared = tuple(sorted((stack_allowance or {}).items()))
    key = (base, allow, declared)
    cls = _pipelines.get(key)
    if cls is None:
        cls = _make_pipeline(base, allow, declared)
        _pipelines[key] = cls
    return cls


def _make_pipeline(base, allow, declared):
    def define_pipelines(self):
        self.state['secret_allow'] = allow
        self.state['secret_stack_allowance'] = dict(declared)
        pms = base.define_pipelines(self)
        for pm in pms:
            changed = False
            if any(p is IRProcessing for p, _ in pm.passes):
                pm.add_pass_after(SecretGlobalCheck, IRProcessing)
                changed = True
            if any(p is NopythonTypeInference for p, _ in pm.passes):
                pm.add_pass_after(SecretChannelCheck, NopythonTypeInference)
                changed = True
            if changed:
                pm.finalize()
        return pms
    return type('Secret' + base.__name__, (base,), {
        'define_pipelines': define_pipelines, '_secret_channel_checked': True,
        '_secret_base': base, 'secret_allow': allow,
        'secret_stack_allowance': declared})


_state = threading.local()


@contextlib.contextmanager
def compiling(allow, stack_allowance=None):
    """Mark ``allow`` and ``stack_allowance`` as the opt-outs of the function
    compiled on this thread."""
    stack = _state.__dict__.setdefault('stack', [])
    stack.append((allow, dict(stack_allowance or {})))
    try:
        yield
    finally:
        stack.pop()


def current_allow():
    """The opt-outs of the innermost secret function being compiled here."""
    stack = getattr(_state, 'stack', None)
    return stack[-1][0] if stack else frozenset()


def current_stack_allowance():
    """The declared ``{external: bytes}`` of the innermost secret function
    being compiled here (its stack bound counts them)."""
    stack = getattr(_state, 'stack', None)
    return dict(stack[-1][1]) if stack else {}


def allow_of(pipeline):
    """The rules a compiler class made by :func:`pipeline_class` waives."""
    return getattr(pipeline, 'secret_allow', frozenset())


def stack_allowance_of(pipeline):
    """The ``{external: bytes}`` a compiler class made by :func:`pipeline_class` declares."""
    return dict(getattr(pipeline, 'secret_stack_allowance', ()))


@dataclass
class OptOutReport(PassReport):
    """``pass_reports()`` entry of a kernel compiled with ``allow=`` or
    ``stack_allowance=``.

    ``allow``: the rules waived; ``waived``: each site that compiled only
    because of it (rule, ``file:line``, what), in the kernel and in the
    helpers it calls; ``counters``: sites per rule; ``stack_allowance``: the
    externals the kernel declared, with the bytes the bound counts for each.
    """
    allow: list = field(default_factory=list)
    waived: list = field(default_factory=list)
    stack_allowance: dict = field(default_factory=dict)

    def __str__(self):
        declared = ''.join('\n  stack_allowance %s: %d bytes' % kv
                           for kv in sorted(self.stack_allowance.items()))
        return '%s: allow=%s, %d waived site(s)%s%s' % (
            self.name, ','.join(self.allow) or '-', len(self.waived),
            ''.join('\n  %s at %s' % (w['rule'], w['at']) for w in self.waived),
            declared)


def reports(cres):
    """The opt-out entries of one overload for ``pass_reports()`` (none
    without ``allow`` or ``stack_allowance``)."""
    md = getattr(cres, 'metadata', None) or {}
    allow, waived = list(md.get('secretjit_allow', [])), list(md.get('secretjit_waived', []))
    declared = dict(md.get('secretjit_stack_allowance', {}))
    if not allow and not waived and not declared:
        return []
    rep = OptOutReport('policy_opt_outs', allow=allow, waived=waived,
                       stack_allowance=declared)
    for w in waived:
        rep.count(w['rule'])
    return [rep]
