"""The ``secret`` numba target: a CPU target whose code forgets its secrets.

A short chain of numba subclasses, each there for one reason:

- :class:`Secret` (target token): a kind of CPU, so every CPU overload and
  lowering applies unchanged.
- :class:`SecretTypingContext`: re-targets plain ``@njit`` callees to secret
  twins (the whole call tree gets the passes) and enforces the typing rules of
  :mod:`secretjit.policy`.
- :class:`SecretContext`: lowers with :class:`~secretjit.codegen.SecretCodegen`
  and records which wrapper calls which kernel, for the boundary pass.
- :class:`SecretDispatcher` / :class:`SecretDispatcherType`: compile under
  the secret target; refuse to be called from plain numba code.
"""

import re
import threading
import weakref
from functools import cached_property

from numba.core import cgutils, externals, typing, types, utils
from numba.core.caching import FunctionCache
from numba.core.compiler_lock import global_compiler_lock
from numba.core.cpu import CPUContext
from numba.core.datamodel import models, register_default
from numba.core.descriptors import TargetDescriptor
from numba.core.dispatcher import Dispatcher
from numba.core.errors import TypingError
from numba.core.registry import cpu_target
from numba.core.runtime.context import NRTContext
from numba.core.target_extension import (CPU, dispatcher_registry,
                                         jit_registry, target_override,
                                         target_registry)

from . import (_firstline, channels, constant_time, frame_chunk, line_tables,
               mergesort, policy, secret_cache, secretmem, stage_times)
from .codegen import SecretCodegen
from .errors import SecretPolicyError

_firstline.install()       # one source parse per file for debug-info def lines
stage_times.install()      # SECRETJIT_PROFILE_PASSES=1: time numba's stages too

TARGET = 'secret'


class Secret(CPU):
    """Target token: secret kernels are CPU code with erasure."""


target_registry[TARGET] = Secret


class SecretTypingContext(typing.Context):
    """Typing for secret kernels: plain numba callees become secret twins."""

    def resolve_value_type(self, val):
        return super().resolve_value_type(_retarget(val))

    def resolve_function_type(self, func, args, kws):
        channels.check_callee(func)
        return super().resolve_function_type(func, args, kws)


def _arena_checked(name):
    unchecked = getattr(NRTContext, name + '_unchecked')

    def method(self, builder, *args):
        ptr = unchecked(self, builder, *args)
        cgutils.guard_memory_error(self._context, builder, ptr, msg=(
            "secret allocation failed: the secret arena (SECRETJIT_ARENA_SIZE "
            "= %d bytes) is exhausted or the request is larger than it; raise "
            "SECRETJIT_ARENA_SIZE (e.g. SECRETJIT_ARENA_SIZE=1G) before the "
            "process first uses secretjit" % secretmem.arena_size()))
        return ptr
    method.__name__ = name
    return method


class SecretNRTContext(NRTContext):
    """NRT lowering whose allocation failures name the secret arena's limit."""


for _name in ('allocate', 'meminfo_alloc', 'meminfo_alloc_dtor',
              'meminfo_alloc_aligned', 'meminfo_new_varsize',
              'meminfo_new_varsize_dtor', 'meminfo_varsize_alloc',
              'meminfo_varsize_realloc'):
    setattr(SecretNRTContext, _name, _arena_checked(_name))


class SecretContext(CPUContext):
    """CPU lowering with the secret codegen."""

    @property
    def nrt(self):
        return SecretNRTContext(self, self.enable_nrt)

    def __init__(self, typingctx, target=TARGET):
        super().__init__(typingctx, target)

    @global_compiler_lock
    def init(self):
        # numba's runtime library must be built by the CPU target: every
        # numba context links it in.
        cpu_target.target_context.refresh()
        self.is32bit = (utils.MACHINE_BITS == 32)
        self._internal_codegen = SecretCodegen('secretjit.exec')
        externals.c_math_functions.install(self)

    def create_cpython_wrapper(self, library, fndesc, env, call_helper,
                               release_gil=False):
        super().create_cpython_wrapper(library, fndesc, env, call_helper,
                                       release_gil=release_gil)
        if not _compiling_internal():
            library.add_secret_entry(fndesc.llvm_cpython_wrapper_name,
                                     fndesc.llvm_func_name)

    def create_cfunc_wrapper(self, library, fndesc, env, call_helper):
        super().create_cfunc_wrapper(library, fndesc, env, call_helper)
        if not _compiling_internal():
            library.add_secret_entry(fndesc.llvm_cfunc_wrapper_name,
                                     fndesc.llvm_func_name)


# Which dispatchers are being compiled on this thread, innermost last.  Twins
# of plain helpers and @overload implementations only ever run inside a secret
# kernel, under its boundary: their own libraries get no boundary (and so no
# second code generation for the stack analysis); the kernel that links them
# in analyses their frames as part of its call tree.
_compiling = threading.local()


def _compiling_internal():
    stack = getattr(_compiling, 'stack', None)
    return bool(stack) and stack[-1]


class SecretTarget(TargetDescriptor):
    options = constant_time.SecretTargetOptions     # line tables for the check

    @cached_property
    def _toplevel_target_context(self):
        return SecretContext(self.typing_context, self._target_name)

    @cached_property
    def _toplevel_typing_context(self):
        return SecretTypingContext()

    @property
    def target_context(self):
        return self._toplevel_target_context

    @property
    def typing_context(self):
        return self._toplevel_typing_context


secret_target = SecretTarget(TARGET)


class SecretDispatcherType(types.Dispatcher):
    """Type of a secret kernel: callable from secret kernels only."""

    def get_call_type(self, context, args, kws):
        if not isinstance(context, SecretTypingContext):
            raise SecretPolicyError(
                'no-secret-from-plain',
                "plain numba code calls the secret kernel %r; the caller's "
                "frames and registers would hold its secrets unprotected"
                % self.dispatcher.py_func.__qualname__,
                "decorate the caller with @secret_jit too, or call the kernel "
                "from Python")
        return super().get_call_type(context, args, kws)


register_default(SecretDispatcherType)(models.OpaqueModel)


class SecretDispatcher(Dispatcher):
    """Dispatcher compiling for the secret target."""

    targetdescr = secret_target

    def __init__(self, py_func, locals=None, targetoptions=None, twin=False,
                 **kws):
        policy.check_options(targetoptions or {}, py_func)
        # A generator kernel runs inside secret kernels only (no-generators):
        # its state then lives in the caller's frame.
        self._generator = policy.is_generator(py_func)
        kws['pipeline_class'] = channels.pipeline_class(kws.get('pipeline_class'))
        super().__init__(py_func, locals=locals, targetoptions=targetoptions,
                         **kws)

    def _compile_for_args(self, *args, **kws):
        # numba's entry for calls from Python with no compiled match.
        if self._generator:
            policy.check_generator(self.py_func)
        return super()._compile_for_args(*args, **kws)

    # Line tables on demand: a retry compiles into a table of its own.
    overloads = property(line_tables.overloads_of,
                         lambda self, v: self.__dict__.update(_plain_overloads=v))

    def add_overload(self, cres):
        if line_tables.forcing():
            # a retry for line tables: Python calls keep the first entries
            self.overloads[tuple(cres.signature.args)] = cres
            return
        if not self._generator:
            return super().add_overload(cres)
        # Keep a generator's compiled entry out of the table Python calls
        # dispatch through, so every call from Python reaches
        # _compile_for_args and is refused.
        self.overloads[tuple(cres.signature.args)] = cres

    # Set on twins and @overload implementations: no boundary of their own.
    _secret_internal = False

    def compile(self, sig):
        # numba's compiler on a frame-stack chunk of its own (frame_chunk)
        return frame_chunk.call_in_roomy_chunk(self._compile_tracked, sig)

    def _compile_tracked(self, sig):
        stack = _compiling.__dict__.setdefault('stack', [])
        stack.append(self._secret_internal)
        try:
            pipeline = self._compiler.pipeline_class
            with channels.compiling(channels.allow_of(pipeline),
                                    channels.stack_allowance_of(pipeline)), \
                    constant_time.compiling(self):
                return line_tables.compile_on_demand(self, sig,
                                                     self._compile_secret)
        finally:
            stack.pop()

    def _compile_secret(self, sig):
        with target_override(TARGET):
            try:
                return super().compile(sig)
            except TypingError as exc:
                policy_error = _find_policy_error(exc)
                if policy_error is None or policy_error is exc:
                    raise
                # numba wraps errors from nested compilations in a generic
                # TypingError; surface the policy violation itself.
                raise policy_error.with_context(exc) from exc

    def enable_caching(self):
        self._cache = secret_cache.SecretFunctionCache(self.py_func)

    @property
    def _numba_type_(self):
        return SecretDispatcherType(self)

    def stack_bound(self, signature=None):
        """The computed stack-scrub bound (a ``StackBound``) per signature.

        With ``signature`` given, the bound of that overload; otherwise a
        dict keyed by signature, like :meth:`inspect_llvm`.
        """
        if signature is not None:
            return self._bound_of(self.overloads[signature])
        return {sig: self._bound_of(cres) for sig, cres in self.overloads.items()}

    @staticmethod
    def _bound_of(cres):
        return cres.library.stack_bounds.get(cres.fndesc.llvm_func_name)

    def pass_reports(self, signature=None):
        """What each secret pass changed, per signature."""
        if signature is not None:
            cres = self.overloads[signature]
            return list(cres.library.pass_reports) + channels.reports(cres)
        return {sig: list(cres.library.pass_reports) + channels.reports(cres)
                for sig, cres in self.overloads.items()}


dispatcher_registry[target_registry[TARGET]] = SecretDispatcher

_POLICY_MESSAGE = re.compile(
    r'secretjit policy \[([\w-]+)\]: (.*?)\. Fix: (.*?)\.(?:\s|$)', re.S)
_ANSI = re.compile(r'\x1b\[[0-9;]*m')


def _find_policy_error(exc):
    """The SecretPolicyError behind ``exc``, if any.

    numba re-raises errors of nested compilations as new TypingErrors that
    keep only the message, so the message is read when the chain is lost.
    """
    seen = set()
    cur = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, SecretPolicyError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    m = _POLICY_MESSAGE.search(_ANSI.sub('', str(exc)))
    if m:
        return SecretPolicyError(*m.groups())
    return None


# Plain numba functions called from secret kernels are compiled again, for
# the secret target, once per function.
_twins = weakref.WeakKeyDictionary()


def secret_twin(disp):
    """The secret-target dispatcher for the plain dispatcher ``disp``.

    One twin per set of opt-outs (``allow``) of the kernel compiling it.
    """
    allow = channels.current_allow()
    twin = _twins.setdefault(disp, {}).get(allow)
    if twin is None:
        opts = dict(disp.targetoptions)
        twin = SecretDispatcher(disp.py_func, locals=dict(disp.locals),
                                targetoptions=opts, twin=True,
                                pipeline_class=channels.pipeline_class(
                                    disp._compiler.pipeline_class, allow))
        twin._secret_internal = True
        # numba's cache does not record opt-outs: a twin compiled under
        # allow= is never cached (a later kernel without it could load it)
        if isinstance(disp._cache, FunctionCache) and not allow:
            twin.enable_caching()
        _twins[disp][allow] = twin
    return twin


def _retarget(val):
    policy.check_value(val)
    val = mergesort.replace_recursive(val)      # kind='mergesort'/'stable'
    if isinstance(val, SecretDispatcher):
        return val
    if isinstance(val, Dispatcher) and val.targetdescr is cpu_target:
        return secret_twin(val)
    return val


def _overload_jit(*args, **kws):
    """Decorator numba uses to compile ``@overload`` implementations."""
    from .decorators import secret_jit
    kws.setdefault('allow', channels.current_allow())
    if kws['allow']:
        kws['cache'] = False        # opt-outs are not cached (see secret_jit)
    jitted = secret_jit(*args, **kws)
    if isinstance(jitted, SecretDispatcher):
        jitted._secret_internal = True
        return jitted

    def wrapper(func):
        disp = jitted(func)
        disp._secret_internal = True
        return disp
    return wrapper


jit_registry[target_registry[TARGET]] = _overload_jit
