"""``secret_jit``: numba's ``@njit`` for kernels whose secrets must not outlive them."""

from numba.core.decorators import jit

from . import channels, constant_time, policy
from .target import TARGET


def secret_jit(*args, **kws):
    """Compile a numba nopython kernel whose registers, stack and heap are erased.

    A drop-in for ``numba.njit``: ``@secret_jit``, ``@secret_jit(sig)``,
    ``@secret_jit([sig, ...], **options)`` with numba's options (``nogil``,
    ``cache``, ``fastmath``, ``boundscheck``, ``error_model``, ...).  The
    dispatcher it returns is numba's plus ``stack_bound()`` and
    ``pass_reports()``.

    In short: when a call from Python returns, the registers are zero, the
    stack its call tree wrote (on the thread's locked, undumped secret stack)
    is zero, and every buffer it allocated is wiped when freed.  Every channel
    through which nopython code can move data elsewhere is either erased or
    refused at compile time with :class:`~secretjit.SecretPolicyError` (a rule
    name, the Python line, the fix).  The exact contract, its limitations and
    the channel table are in README.md, section "The contract".

    ``allow=("typed-containers",)`` (rule names, with or without their
    ``no-`` prefix) waives the rules of :data:`secretjit.channels.ALLOWABLE`
    for this kernel and the helpers it compiles; ``pass_reports()`` lists each
    waived site.  ``stack_allowance={"c_function": nbytes}`` declares the
    stack need of an external C function the stack bound does not list
    (without it, a ``bounded-stack`` error).  The README says what each
    opt-out gives up.
    """
    policy.check_options(kws)
    allow = channels.normalize_allow(kws.pop('allow', None))
    declared = channels.normalize_stack_allowance(kws.pop('stack_allowance', None))
    for given, option in ((allow, 'allow'), (declared, 'stack_allowance')):
        if given and kws.get('cache'):
            raise ValueError(
                "secret_jit(%s=...) cannot be combined with cache=True: numba's "
                "cache does not record the opt-outs, so a cached kernel could be "
                "loaded later without them being checked; drop cache=True" % option)
    kws['pipeline_class'] = channels.pipeline_class(
        kws.get('pipeline_class'), allow, declared)
    ct_policy = constant_time.pop_options(kws)
    if kws.pop('_target', TARGET) != TARGET:
        raise TypeError("secret_jit always compiles for the secret target; "
                        "drop the _target option")
    return constant_time.attach(jit(*args, _target=TARGET, **kws), ct_policy)
