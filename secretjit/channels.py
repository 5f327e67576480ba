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
site is listed in ``pass_reports()``.  Only the rules in :data:`ALLOWABLE` can
be waived: the others guard the stack bound or the boundary itself, and
waiving them would not give a weaker contract but none.
"""

import contextlib
import random as _pyrandom
import threading
from dataclasses import dataclass, field

from numba.core import ir, types
from numba.core.compiler import Compiler
from numba.core.compiler_machinery import AnalysisPass, register_pass
from numba.core.typed_passes import NopythonTypeInference
from numba.core.untyped_passes import IRProcessing

from .errors import SecretPolicyError
from .passes.report import PassReport

# rule -> what compiling it anyway gives up (the README states the same).
ALLOWABLE = {
    'static-exceptions': "exception arguments are copied into a Python "
                         "exception object that is freed without a wipe",
    'no-typed-containers': "the container's items live in libc malloc memory "
                           "(numba's _helperlib), never wiped",
    'no-np-random': "numba's generator state is C memory outside the arena, "
                    "never wiped, and not a CSPRNG",
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
}


def normalize_allow(allow):
    """The validated set of rule names ``allow`` waives."""
    if allow is None:
        return frozenset()
    if isinstance(allow, str):
        allow = (allow,)
    try:
        names = list(allow)
    except TypeError:
        raise TypeError("secret_jit(allow=...) takes a tuple of rule names, "
                        "got %r" % (allow,)) from None
    out = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError("secret_jit(allow=...): rule names are strings, "
                            "got %r" % (name,))
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


def _where(loc):
    if loc is None or getattr(loc, 'filename', None) is None:
        return ''
    return '%s:%s' % (loc.filename, loc.line)


def _refuse(rule, problem, fix, loc, allow, waived):
    """Raise the rule's error at ``loc``, or record the waiver."""
    where = _where(loc)
    if rule in allow:
        entry = {'rule': rule, 'at': where, 'what': problem}
        if entry not in waived:
            waived.append(entry)
        return
    raise _located(rule, problem, fix, loc)


def _located(rule, problem, fix, loc):
    """A SecretPolicyError whose problem ends with ``(at file:line: source)``."""
    where = _where(loc)
    line = ''
    if loc is not None and loc.line is not None:
        try:
            line = loc.strget(loc.line).strip()
        except Exception:       # source not available
            line = ''
    text = '%s (at %s%s)' % (problem, where or 'an unknown line',
                             ': ' + line if line else '')
    err = SecretPolicyError(rule, text, fix)
    err.loc = loc
    return err


def _exc_name(cls):
    return getattr(cls, '__name__', 'an exception')


_RANDOM_TYPES = tuple(t for t in (getattr(types, 'NumPyRandomGeneratorType', None),
                                  getattr(types, 'NumPyRandomBitGeneratorType', None))
                      if t is not None)


def _is_random_callable(key):
    owner = getattr(key, '__self__', None)
    if isinstance(owner, _pyrandom.Random):
        return True
    if type(owner).__module__.startswith('numpy.random'):
        return True
    mod = getattr(key, '__module__', None) or ''
    return mod.startswith('numpy.random') or mod == 'random'


def _members(ty, depth=0):
    """``ty`` and the types nested in it (tuples, records of types, optionals)."""
    yield ty
    if depth > 4:
        return
    for attr in ('types', 'type', 'key_type', 'value_type', 'item_type'):
        inner = getattr(ty, attr, None)
        if isinstance(inner, types.Type):
            yield from _members(inner, depth + 1)
        elif isinstance(inner, (tuple, list)):
            for t in inner:
                if isinstance(t, types.Type):
                    yield from _members(t, depth + 1)


def _typed_container(ty):
    return isinstance(ty, (types.ListType, types.DictType)) or \
        type(ty).__module__.startswith('numba.typed')


def check_function(func_ir, typemap, allow=frozenset(), internal=False):
    """Refuse the channels of one typed function; returns the waived sites.

    ``internal``: numba's own implementation of a library function (an
    ``@overload`` in numba.typed, numpy.random, ...), compiled while the
    user's function is typed; numba's context adds the user's line to the
    error.  Exceptions are checked last, so that a container is reported as
    such rather than by the exceptions its implementation raises.
    """
    waived = []
    raises = []
    for block in func_ir.blocks.values():
        for inst in block.body:
            loc = getattr(inst, 'loc', None)
            if isinstance(inst, (ir.DynamicRaise, ir.DynamicTryRaise)) \
                    and inst.exc_args is not None \
                    and any(isinstance(a, ir.Var) for a in inst.exc_args):
                raises.append(inst)
            if not isinstance(inst, ir.Assign):
                continue
            ty = typemap.get(inst.target.name)
            if ty is None:
                continue
            _check_assign(inst, ty, loc, allow, waived)
    for inst in raises:
        _refuse('static-exceptions',
                "raise %s(...) with a runtime argument%s: numba copies the "
                "arguments into a Python exception object, freed without a wipe"
                % (_exc_name(inst.exc_class),
                   " (in numba's implementation of a function the kernel calls)"
                   if internal else ''),
                "raise with constant arguments only (a static message such as "
                "raise ValueError('bad key')) and return error details through "
                "an output array", inst.loc, allow, waived)
    return waived


def _check_assign(inst, ty, loc, allow, waived):
    value = inst.value
    if isinstance(value, ir.Expr) and value.op in ('binop', 'inplace_binop') \
            and _is_blas(value.fn):
        _refuse('no-foreign-calls',
                "the @ operator calls BLAS: numba reaches it through SciPy's "
                "function pointers, whose stack use is unknown to the stack "
                "bound", "write the product as loops in the kernel", loc,
                allow, waived)
    if isinstance(value, ir.Arg) and (
            isinstance(ty, (types.Dispatcher, types.FunctionType,
                            types.WrapperAddressProtocol))
            or isinstance(ty, types.BaseFunction)
            and not isinstance(ty, types.ExternalFunctionPointer)):
        _refuse('no-function-arguments',
                "argument %r is a function (%s): first-class functions are not "
                "supported by the secret target" % (value.name, ty),
                "refer to the function as a global of the kernel (numba "
                "resolves the call at compile time), or pass a flag and choose "
                "among global functions with if/else", loc, allow, waived)
    for t in _members(ty):
        if _typed_container(t):
            _refuse('no-typed-containers',
                    "%s is a numba typed container (%s): numba's C helpers keep "
                    "its items in libc malloc memory, never wiped"
                    % (_name_of(inst), t),
                    "use NumPy arrays (np.empty/np.zeros, wiped on free) or a "
                    "reflected list built inside the kernel; note that {k: v} "
                    "literals are typed dicts", loc, allow, waived)
            break
        if isinstance(t, _RANDOM_TYPES):
            _refuse('no-np-random',
                    "%s is a NumPy random generator (%s): its state is C memory "
                    "outside the secret arena, never wiped, and it is not a "
                    "CSPRNG" % (_name_of(inst), t),
                    "use secretjit.random_bytes(out) (the OS CSPRNG) inside the "
                    "kernel", loc, allow, waived)
            break
    if isinstance(ty, types.Module) and getattr(ty.pymod, '__name__', '') \
            in ('numpy.random', 'random'):
        _refuse('no-np-random',
                "%s uses the %s module: numba's generator state is C memory "
                "outside the secret arena, never wiped, and it is not a CSPRNG"
                % (_name_of(inst), ty.pymod.__name__),
                "use secretjit.random_bytes(out) (the OS CSPRNG) inside the "
                "kernel", loc, allow, waived)
    elif isinstance(ty, types.Function) and not isinstance(
            ty, types.ExternalFunction) and _is_random_callable(ty.typing_key):
        _refuse('no-np-random',
                "%s is a random-number function (%s): numba's generator state "
                "is C memory outside the secret arena, never wiped, and it is "
                "not a CSPRNG" % (_name_of(inst), _key_name(ty.typing_key)),
                "use secretjit.random_bytes(out) (the OS CSPRNG) inside the "
                "kernel", loc, allow, waived)
    elif isinstance(ty, types.Function) and ty.typing_key is print:
        _refuse('no-interpreter-calls',
                "print() in a secret kernel calls the Python interpreter (its "
                "stack use has no bound and its objects are not wiped)",
                "return the values and print them outside the kernel", loc,
                allow, waived)
    elif isinstance(ty, types.Function) and _is_blas(ty.typing_key):
        _refuse('no-foreign-calls',
                "%s calls BLAS/LAPACK (%s): numba reaches them through SciPy's "
                "function pointers, whose stack use is unknown to the stack "
                "bound and whose workspace is not the secret arena"
                % (_name_of(inst), _key_name(ty.typing_key)),
                "write the linear algebra as loops over arrays in the kernel "
                "(numba compiles them), or do it outside the secret kernel",
                loc, allow, waived)
    elif isinstance(ty, (types.ExternalFunctionPointer, types.ExternalFunction)):
        _refuse('no-foreign-calls',
                "%s is a foreign C function (%s): its stack use is unknown to "
                "the stack bound and its heap is not the secret arena"
                % (_name_of(inst), ty),
                "write the callee in numba (@njit), or call it from Python "
                "before or after the secret kernel", loc, allow, waived)


def _key_name(key):
    mod = getattr(key, '__module__', None) or ''
    name = getattr(key, '__name__', None) or str(key)
    return '%s.%s' % (mod, name) if mod else name


def _is_blas(key):
    import operator
    import numpy as np
    try:
        if key in (np.dot, np.vdot, np.matmul, operator.matmul, operator.imatmul):
            return True
    except TypeError:           # unhashable key
        return False
    mod = getattr(key, '__module__', None) or ''
    return mod.startswith('numpy.linalg')


def check_callee(func):
    """Refuse, while typing a call, callees whose typing would fail or run
    foreign code first: BLAS/LAPACK (``np.dot``, ``np.linalg.*``, ``@``),
    which numba types only with SciPy and runs through its function pointers.
    numba's type inference adds the user's line to the error."""
    key = getattr(func, 'typing_key', func)
    if _is_blas(key):
        raise SecretPolicyError(
            'no-foreign-calls',
            "%s calls BLAS/LAPACK, which numba reaches through SciPy's function "
            "pointers: their stack use is unknown to the stack bound and their "
            "workspace is not the secret arena" % _key_name(key),
            "write the linear algebra as loops over arrays in the kernel (numba "
            "compiles them), or do it outside the secret kernel")


def _defer_to_caller(argtypes, allow):
    """Whether numba's implementation works on a container or generator the
    caller passes in: the caller's own check refuses it, at the user's line
    (and this implementation's exceptions, such as ``KeyError(key)``, are
    part of the same refused construct).  With the rule waived, the
    implementation is checked like any function."""
    for ty in argtypes or ():
        for t in _members(ty):
            if _typed_container(t) and 'no-typed-containers' not in allow:
                return True
            if isinstance(t, _RANDOM_TYPES) and 'no-np-random' not in allow:
                return True
    return False


def _name_of(inst):
    name = inst.target.name
    if name.startswith('$'):
        return 'an expression'
    return repr(name.split('.')[0])


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


def pipeline_class(base=None, allow=None):
    """A compiler class like ``base`` whose nopython pipeline checks channels.

    ``allow`` (validated rule names) defaults to ``base``'s own when ``base``
    is already such a class, else to none.
    """
    base = base or Compiler
    if getattr(base, '_secret_channel_checked', False):
        if allow is None:
            return base
        base = base._secret_base
    allow = frozenset(allow or ())
    key = (base, allow)
    cls = _pipelines.get(key)
    if cls is None:
        def define_pipelines(self):
            self.state['secret_allow'] = allow
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
        cls = type('Secret' + base.__name__, (base,), {
            'define_pipelines': define_pipelines, '_secret_channel_checked': True,
            '_secret_base': base, 'secret_allow': allow})
        _pipelines[key] = cls
    return cls


_state = threading.local()


@contextlib.contextmanager
def compiling(allow):
    """Mark ``allow`` as the opt-outs of the function compiled on this thread."""
    stack = _state.__dict__.setdefault('stack', [])
    stack.append(allow)
    try:
        yield
    finally:
        stack.pop()


def current_allow():
    """The opt-outs of the innermost secret function being compiled here."""
    stack = getattr(_state, 'stack', None)
    return stack[-1] if stack else frozenset()


def allow_of(pipeline):
    """The rules a compiler class made by :func:`pipeline_class` waives."""
    return getattr(pipeline, 'secret_allow', frozenset())


@dataclass
class OptOutReport(PassReport):
    """``pass_reports()`` entry of a kernel compiled with ``allow=``.

    ``allow``: the rules waived; ``waived``: each site that compiled only
    because of it (rule, ``file:line``, what), in the kernel and in the
    helpers it calls; ``counters``: sites per rule.
    """
    allow: list = field(default_factory=list)
    waived: list = field(default_factory=list)

    def __str__(self):
        return '%s: allow=%s, %d waived site(s)%s' % (
            self.name, ','.join(self.allow) or '-', len(self.waived),
            ''.join('\n  %s at %s' % (w['rule'], w['at']) for w in self.waived))


def reports(cres):
    """The opt-out entries of one overload for ``pass_reports()`` (none without ``allow``)."""
    md = getattr(cres, 'metadata', None) or {}
    allow, waived = list(md.get('secretjit_allow', [])), list(md.get('secretjit_waived', []))
    if not allow and not waived:
        return []
    rep = OptOutReport('policy_opt_outs', allow=allow, waived=waived)
    for w in waived:
        rep.count(w['rule'])
    return [rep]
