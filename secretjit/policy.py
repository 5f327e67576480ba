"""The rules a secret kernel must follow, checked at compile time.

Each rule exists because the erasure contract could not hold without it:

- ``no-parallel``: ``parallel=True`` and ``prange`` run the call tree on
  worker threads whose stacks and registers the boundary never scrubs.
- ``no-objmode``: object mode runs arbitrary Python on the kernel's stack and
  keeps values in Python objects the secret allocator never sees.
- ``no-generators``: a generator's state outlives each call in a Python
  object.
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


def check_generator(py_func):
    """Reject a secret kernel that is a generator function."""
    import inspect
    if inspect.isgeneratorfunction(py_func):
        code = py_func.__code__
        raise SecretPolicyError(
            'no-generators',
            "%s (at %s:%d) is a generator: between next() calls its state lives "
            "in a Python generator object that the boundary never scrubs and the "
            "secret allocator never wipes"
            % (py_func.__qualname__, code.co_filename, code.co_firstlineno),
            "return an array of results instead; generators consumed inside a "
            "secret kernel (plain @njit helpers) are fine")


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
