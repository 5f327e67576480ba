"""What the audit reads: a JIT dispatcher's object code, or an AOT library."""

from .elf import AuditError


def audit_dispatcher(kernel):
    """Audit every compiled signature of a ``secret_jit`` dispatcher (JIT object code).

    numba keeps a library's object code only when it caches it: compile the
    kernel with ``cache=True``, or audit :func:`fresh_copy` of it.
    """
    from . import audit_object
    results = []
    for sig in kernel.signatures:
        lib = kernel.overloads[sig].library
        try:
            data = lib._get_compiled_object()
        except RuntimeError:
            raise AuditError("numba kept no object code for %s%s: compile it with "
                             "cache=True, or audit secretjit.audit.fresh_copy(kernel)"
                             % (kernel.py_func.__qualname__, sig)) from None
        allow = dict(getattr(lib.codegen, 'runtime_depths', {}) or {})
        results += audit_object(data, allowances=allow,
                                stack_bounds=getattr(lib, 'stack_bounds', None))
    return results


def fresh_copy(kernel, signatures=None):
    """``kernel`` compiled again with ``cache=True`` into a temporary cache folder.

    The copy's libraries keep the object code the JIT loads, which the audit
    reads.  ``signatures`` default to the kernel's compiled ones.
    """
    import tempfile

    import numba.core.config as config

    from ..decorators import secret_jit
    opts = {k: v for k, v in kernel.targetoptions.items() if k != 'cache'}
    saved = config.CACHE_DIR
    config.CACHE_DIR = tempfile.mkdtemp(prefix='secretjit-audit-')
    try:
        copy = secret_jit(cache=True, **opts)(kernel.py_func)
        for sig in signatures or kernel.signatures:
            copy.compile(sig)
    finally:
        config.CACHE_DIR = saved
    return copy


def audit_library(path):
    """Audit an AOT shared library (x86-64 or AArch64)."""
    from . import audit_object
    with open(path, 'rb') as fh:
        data = fh.read()
    from ..aot import _build
    return audit_object(data, allowances=getattr(_build, '_c_allowances', dict)())
