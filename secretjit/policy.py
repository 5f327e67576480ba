"""The rules a secret kernel must follow, checked at compile time.

Each rule exists because the erasure contract could not hold without it:

- ``no-parallel``: ``parallel=True`` and ``prange`` run the call tree on
  worker threads whose stacks and registers the boundary never scrubs.
- ``no-objmode``: object mode runs arbitrary Python on the kernel's stack and
  keeps values in Python objects the secret allocator never sees.
- ``no-generators``: a generator called from Python keeps its state
  between ``next()`` calls in a Python object; consumed inside a secret
  kernel, its state lives in the kernel's frame and is fine.
- ``no-jitclass``: jitclass types are registered with numba's CPU target only.
- ``no-secret-from-plain``: plain numba code calling a secret kernel would
  hold its secrets in unprotected frames (checked in ``secretjit.target``).
- ``bounded-stack`` / ``no-interpreter-calls``: the stack scrub needs a static
  bound (checked on the machine code, ``secretjit.stack_bound``).
"""

from numba.core.dispatcher import LiftedWith
from numba.core.withcontexts import _ObjModeContextType

from .errors import SecretPolicyError


def check_options(options, py_func=None):
    """Reject target options that break the erasure contract."""
    where = ' (in %s)' % py_func.__qualname__ if py_func is not None else ''
    if options.get('parallel'):
        raise SecretPolicyError(
            'no-parallel',
            "parallel=True%s runs the kernel on numba's worker threads, whose "
            "stacks and registers are never scrubbed" % where,
            "drop parallel=True; run independent secret calls on your own "
            "threads with nogil=True instead")
    if options.get('forceobj') or options.get('nopython') is False:
        raise SecretPolicyError(
            'no-objmode',
            "object mode%s keeps values in Python objects and runs Python "
            "code on the kernel's stack" % where,
            "secret kernels compile in nopython mode only; drop forceobj")


def is_generator(py_func):
    """Whether ``py_func`` is a generator function (``no-generators``)."""
    import inspect
    return inspect.isgeneratorfunction(py_func)


def check_generator(py_func):
    """Reject a call from Python to a secret generator function."""
    if is_generator(py_func):
        raise SecretPolicyError(
            'no-generators',
            "%s (at %s:%d) is a generator called from Python: between next() "
            "calls its state would live in a Python generator object that the "
            "boundary never scrubs and the secret allocator never wipes"
            % (py_func.__qualname__, py_func.__code__.co_filename,
               py_func.__code__.co_firstlineno),
            "consume the generator inside a secret kernel (for x in gen(...) "
            "in a @secret_jit function), or return an array of results")


def check_value(val):
    """Reject globals a secret kernel must not use."""
    import numba
    from numba.experimental.jitclass.base import JitClassType
    if val is numba.prange:
        raise SecretPolicyError(
            'no-parallel',
            "prange asks for parallel loops, which run on worker threads whose "
            "stacks and registers are never scrubbed",
            "use range; run independent secret calls on your own threads")
    if isinstance(val, JitClassType):
        raise SecretPolicyError(
            'no-jitclass',
            "jitclass %s is registered with numba's CPU target only, so secret "
            "kernels cannot type it (secretjit does not support jitclass yet)"
            % val.class_type.class_name,
            "pass the fields as arrays or scalars, or use a structured array")
    if isinstance(val, (_ObjModeContextType, LiftedWith)):
        raise SecretPolicyError(
            'no-objmode',
            "an objmode block runs Python code on the kernel's stack and "
            "keeps values in Python objects",
            "move the Python part out of the secret kernel and pass its "
            "results in as arguments")
