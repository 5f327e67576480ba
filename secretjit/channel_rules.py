"""The channel rules of :mod:`secretjit.channels`: which typed-IR constructs
move data outside the secret stack, the secret arena and the registers.

:func:`check_function` looks at one typed function and refuses (or, under an
``allow=`` opt-out, records) each construct with the rule's name, the Python
file and line and the fix; :func:`check_callee` refuses BLAS/LAPACK while a
call is typed.  The rules and what they guard are described in
:mod:`secretjit.channels` and the README's channel table.
"""

import linecache
import operator
import random as _pyrandom

import numpy as np
from numba.core import ir, types

from .errors import SecretPolicyError

_RANDOM_FIX = "use secretjit.random_bytes(out) (the OS CSPRNG) inside the kernel"
_NOT_CSPRNG = ("C memory outside the secret arena, never wiped, and it is not "
               "a CSPRNG")


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
    if loc is not None and loc.line is not None and loc.filename:
        # '' when the source is not available (exec'd code, a deleted file)
        line = linecache.getline(loc.filename, loc.line).strip()
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
    error.  There, a ``types.Function`` argument (a helper such as
    ``np.percentile``'s ``check_q``) is a compile-time constant numba
    specializes on, not a first-class function.  Exceptions are checked last, so that a container is reported as
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
            _check_assign(inst, ty, loc, allow, waived, internal)
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


def _check_assign(inst, ty, loc, allow, waived, internal=False):
    """The rules for one typed assignment ``inst`` (its target typed ``ty``)."""
    def refuse(rule, problem, fix):
        _refuse(rule, problem, fix, loc, allow, waived)
    value = inst.value
    static_function = internal and isinstance(ty, types.Function)
    if isinstance(value, ir.Expr) and value.op in ('binop', 'inplace_binop') \
            and _is_blas(value.fn):
        refuse('no-foreign-calls',
               "the @ operator calls BLAS: numba reaches it through SciPy's "
               "function pointers, whose stack use is unknown to the stack "
               "bound", "write the product as loops in the kernel")
    if isinstance(value, ir.Arg) and not static_function and (
            isinstance(ty, (types.Dispatcher, types.FunctionType,
                            types.WrapperAddressProtocol))
            or isinstance(ty, types.BaseFunction)
            and not isinstance(ty, types.ExternalFunctionPointer)):
        refuse('no-function-arguments',
               "argument %r is a function (%s): first-class functions are not "
               "supported by the secret target" % (value.name, ty),
               "refer to the function as a global of the kernel (numba "
               "resolves the call at compile time), or pass a flag and choose "
               "among global functions with if/else")
    _check_members(_name_of(inst), ty, refuse)
    _check_callable(_name_of(inst), ty, refuse)


def _check_members(name, ty, refuse):
    """Typed containers and random generators in ``ty`` or nested in it."""
    for t in _members(ty):
        if _typed_container(t):
            refuse('no-typed-containers',
                   "%s is a numba typed container (%s): numba's C helpers keep "
                   "its items in libc malloc memory, never wiped" % (name, t),
                   "use NumPy arrays (np.empty/np.zeros, wiped on free) or a "
                   "reflected list built inside the kernel; note that {k: v} "
                   "literals are typed dicts")
            return
        if isinstance(t, _RANDOM_TYPES):
            refuse('no-np-random',
                   "%s is a NumPy random generator (%s): its state is %s"
                   % (name, t, _NOT_CSPRNG), _RANDOM_FIX)
            return


def _check_callable(name, ty, refuse):
    """Modules and functions a kernel may not call: random, print, BLAS, C."""
    if isinstance(ty, types.Module) and getattr(ty.pymod, '__name__', '') \
            in ('numpy.random', 'random'):
        refuse('no-np-random',
               "%s uses the %s module: numba's generator state is %s"
               % (name, ty.pymod.__name__, _NOT_CSPRNG), _RANDOM_FIX)
    elif isinstance(ty, types.Function) and not isinstance(
            ty, types.ExternalFunction) and _is_random_callable(ty.typing_key):
        refuse('no-np-random',
               "%s is a random-number function (%s): numba's generator state "
               "is %s" % (name, _key_name(ty.typing_key), _NOT_CSPRNG),
               _RANDOM_FIX)
    elif isinstance(ty, types.Function) and ty.typing_key is print:
        refuse('no-interpreter-calls',
               "print() in a secret kernel calls the Python interpreter (its "
               "stack use has no bound and its objects are not wiped)",
               "return the values and print them outside the kernel")
    elif isinstance(ty, types.Function) and _is_blas(ty.typing_key):
        refuse('no-foreign-calls',
               "%s calls BLAS/LAPACK (%s): numba reaches them through SciPy's "
               "function pointers, whose stack use is unknown to the stack "
               "bound and whose workspace is not the secret arena"
               % (name, _key_name(ty.typing_key)),
               "write the linear algebra as loops over arrays in the kernel "
               "(numba compiles them), or do it outside the secret kernel")
    elif isinstance(ty, (types.ExternalFunctionPointer, types.ExternalFunction)):
        refuse('no-foreign-calls',
               "%s is a foreign C function (%s): its stack use is unknown to "
               "the stack bound and its heap is not the secret arena"
               % (name, ty),
               "write the callee in numba (@njit), or call it from Python "
               "before or after the secret kernel")


def _key_name(key):
    mod = getattr(key, '__module__', None) or ''
    name = getattr(key, '__name__', None) or str(key)
    return '%s.%s' % (mod, name) if mod else name


def _is_blas(key):
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
