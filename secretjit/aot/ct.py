"""The constant-time check and the hardened backend for AOT builds.

An export declared with ``secret=`` (or made from a ``secret_jit``
dispatcher that has one) is checked like the JIT checks it, on the code the
library really contains: :func:`checker` runs :func:`passes.find_ct_violations`
over the module after the target's -O3 (kernels, runtime and C wrappers
linked, line tables and ``declassify`` markers still in), and
:func:`check_object` looks for divide instructions in the object file's
functions whose IR divides a secret.  Findings raise
``SecretPolicyError('constant-time')`` with the Python lines, or are
returned as warning lines with ``constant_time='warn'``.  Every secret
build compiles with :mod:`secretjit.ct_backend`'s hardening for the
target's architecture (:func:`target_features`, :func:`backend`).
"""

import contextlib

from .. import passes
from ..constant_time import Policy, pop_options, report_findings
from ..ct_backend import harden_features, hardened_backend, machine_divisions
from ..errors import SecretPolicyError
from . import AotError


class AotPolicyError(SecretPolicyError, AotError):
    """A policy violation an AOT build met compiling an export.

    Both a :class:`~secretjit.errors.SecretPolicyError` (``rule``,
    ``problem``, ``fix``: ``constant-time``, ``static-exceptions``, ...) and
    an :class:`~secretjit.aot.AotError` (a failed build).
    """


def export_policy(func, pyfunc, secret, constant_time, c_name):
    """The :class:`~secretjit.constant_time.Policy` of an export, or None.

    ``secret``/``constant_time`` given to ``export`` win; otherwise a
    ``secret_jit`` dispatcher's own policy applies.  Unknown parameter
    names are a ``TypeError``.
    """
    inherited = getattr(func, '_ct_policy', None)
    if secret is None and inherited is None:
        return None
    kws = {'secret': secret if secret is not None else inherited.secret,
           'constant_time': constant_time if constant_time is not None
           else (inherited.mode if inherited is not None else 'error')}
    policy = pop_options(kws)
    import inspect
    params = list(inspect.signature(pyfunc).parameters)
    unknown = [n for n in policy.secret if n not in params]
    if unknown:
        raise TypeError("export %s: secret=%r: %s not a parameter of %s(%s)"
                        % (c_name, policy.secret, ', '.join(map(repr, unknown)),
                           pyfunc.__qualname__, ', '.join(params)))
    return policy


def kernel_policies(exports, specs):
    """[(Policy, [kernel symbol, ...])] of the checked exports."""
    groups = {}
    for exp, spec in zip(exports, specs):
        policy = getattr(exp, 'ct_policy', None)
        if policy is None or policy.mode == 'off':
            continue
        key = (policy.secret, policy.mode)
        groups.setdefault(key, (policy, []))
        if spec.kernel not in groups[key][1]:
            groups[key][1].append(spec.kernel)
    return list(groups.values())


class Findings(list):
    """[(Policy, [Finding])] of one build, and the seconds the check took."""
    seconds = 0.0


def checker(groups, found, texts):
    """``check(text)`` for :func:`secretjit.pipeline.aot_module`.

    ``texts`` are the kernels' modules as numba emitted them (their
    complete parameter lists).  Appends ``(policy, findings)`` to ``found``
    (a :class:`Findings`); raises for errors in
    ``error`` mode before any code is generated.
    """
    def check(text):
        import time
        from ..passes.textir import Module
        t0 = time.perf_counter()
        mod = Module.parse(text)
        signatures = [Module.parse(t) for t in texts]
        for policy, kernels in groups:
            findings, _ = passes.find_ct_violations(
                mod, {k: policy.secret for k in kernels}, signatures)
            found.append((policy, findings))
            if policy.mode == 'error' and any(
                    f.severity == 'error' for f in findings):
                report_findings(findings, policy)
        found.seconds = time.perf_counter() - t0
    return check if groups else None


def check_object(obj, arch, found):
    """Machine-code division check of ``obj``; the warning lines to show.

    Raises ``SecretPolicyError`` for a ``machine-division`` in ``error``
    mode; returns every finding's line otherwise.
    """
    from ..constant_time import _readable
    lines = []
    for policy, findings in found:
        findings = findings + machine_divisions(obj, arch, findings)
        if policy.mode == 'error' and any(f.severity == 'error'
                                          for f in findings):
            report_findings(findings, policy)
        lines += ['secret=%r: %s' % (policy.secret, f.line(_readable))
                  for f in findings]
    return lines


def target_features(arch, secret, features=''):
    """The target-feature string of an AOT target machine: the build CPU's
    ``features`` (``--cpu``), hardened for a secret build."""
    return harden_features(features, arch) if secret else features


@contextlib.contextmanager
def backend(arch, secret):
    """The hardened LLVM options while a secret build generates code."""
    if not secret:
        yield
        return
    with hardened_backend(arch):
        yield


__all__ = ['AotPolicyError', 'Findings', 'Policy', 'backend', 'check_object', 'checker', 'export_policy',
           'kernel_policies', 'target_features']
