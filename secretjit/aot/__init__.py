"""Ahead-of-time compilation of secret kernels into C shared libraries.

Declare, then build (the shape of cffi's builder)::

    # kernels_mod.py
    from secretjit.aot import export

    @export("toy_mix", "int64(uint8[::1], uint8[::1])")
    def toy_mix(key, out):
        ...

    # build: python -m secretjit aot kernels_mod.py --target aarch64-linux-gnu -o out/
    #   -> out/libkernels_mod.so and out/kernels_mod.h
    from secretjit.aot import build
    so_path, header_path = build("kernels_mod.py", target="x86_64-linux-gnu", outdir="out")

C ABI of every exported function (the generated header documents it too):

- returns ``int32_t`` status: ``SECRETJIT_OK`` (0), ``SECRETJIT_ERAISED`` (1,
  the kernel raised an exception: it never unwinds into C) or
  ``SECRETJIT_EINVAL`` (2, a NULL pointer with a positive length, a negative
  length or a NULL result pointer);
- a 1-D C-contiguous array parameter ``x`` becomes ``(T *x, int64_t x_len)``;
- a scalar parameter becomes the C type of the same width (``int8_t`` ..
  ``uint64_t``, ``float``, ``double``, ``bool``);
- a non-void result is written through a trailing ``RET *ret``.

Every export keeps the JIT's erasure contract, stated once in the README
(README.md, "## The contract"; the AOT specifics under "## Ahead of time"):
it reaches its kernel through the same boundary and the same passes
(:func:`secretjit.pipeline.aot_module`), and also clears the vector state the
CPU has beyond what baseline-CPU code zeroes (x86-64: upper ymm/zmm bits,
zmm16-31, k0-k7; AArch64 with SVE: p0-p15 and FFR).  The library needs only
libc (and libm); its runtime (``secretjit/csrc``: arena, secret stack, the NRT
pieces in ``nrt_aot.c``) is compiled by the target's C compiler, and the
runtime's LLVM IR (``secretjit.arena_nrt``, ``standalone=True``) by the
target's TargetMachine.  Only the exports are visible in the library's
dynamic symbol table.

Targets: ``x86_64-linux-gnu`` (host ``cc``) and ``aarch64-linux-gnu``
(``aarch64-linux-gnu-gcc`` from Debian's ``gcc-aarch64-linux-gnu``).
Code is compiled for the architecture's baseline CPU (x86-64 without AVX,
ARMv8-A without SVE), so a library runs on any CPU of its architecture,
unless ``cpu`` (``--cpu``) names a feature set (:mod:`secretjit.aot.cpu`):
then the library checks at load that the CPU has it, and its functions
return ``SECRETJIT_ECPU`` (3) on a CPU that lacks it.
"""

import inspect
import os
import re
import sys
from dataclasses import dataclass, field

__all__ = ['AotError', 'Export', 'TARGETS', 'build', 'export', 'exports_of',
           'host_target']

# target name -> (architecture, LLVM triple, LLVM CPU, C compiler when cross,
#                 Debian package of that compiler)
TARGETS = {
    'x86_64-linux-gnu': ('x86_64', 'x86_64-unknown-linux-gnu', 'x86-64',
                         'x86_64-linux-gnu-gcc', 'gcc-x86-64-linux-gnu'),
    'aarch64-linux-gnu': ('aarch64', 'aarch64-unknown-linux-gnu', 'generic',
                          'aarch64-linux-gnu-gcc', 'gcc-aarch64-linux-gnu'),
}
_ALIASES = {'x86_64': 'x86_64-linux-gnu', 'x86-64': 'x86_64-linux-gnu',
            'amd64': 'x86_64-linux-gnu', 'aarch64': 'aarch64-linux-gnu',
            'arm64': 'aarch64-linux-gnu'}

# Status codes of every exported function (also #defined in the header).
STATUS = (('SECRETJIT_OK', 0, 'success'),
          ('SECRETJIT_ERAISED', 1, 'the kernel raised an exception (bad input '
           'sizes, failed check, out of memory); outputs are unspecified'),
          ('SECRETJIT_EINVAL', 2, 'invalid argument: NULL data with a positive '
           'length, a negative length, or a NULL result pointer'),
          ('SECRETJIT_ECPU', 3, 'the library was built (--cpu) for CPU '
           'features this CPU lacks (named on stderr at load); nothing ran'))

_C_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_C_KEYWORDS = frozenset('''auto break case char const continue default do double
    else enum extern float for goto if inline int long register restrict return
    short signed sizeof static struct switch typedef union unsigned void
    volatile while _Bool _Complex _Imaginary bool true false'''.split())
# Names of the runtime linked into every library.
_RESERVED_PREFIXES = ('NRT_', 'numba_', '__secretjit', 'secretjit__',
                      'secretjit_arena_', 'secretjit_stack_', 'secretjit_libc_',
                      'secretjit_aot_', 'secretjit_secret_')
_RESERVED_NAMES = frozenset(['secretjit_memstats', 'secretjit_alloc',
                             'secretjit_free', 'secretjit_realloc'])
SUPPORTED = ('1-D C-contiguous arrays (T[::1]) and scalars of int8..int64, '
             'uint8..uint64, float32, float64 and boolean; the result is void '
             'or such a scalar')


class AotError(Exception):
    """A build-time error: bad declaration, unknown target, missing toolchain,
    unresolved symbol, compiler failure."""


@dataclass
class Export:
    """One exported function: C name, numba signature, Python function."""
    c_name: str
    signature: str
    pyfunc: object                      # plain function (the kernel source)
    module: str                         # module that declared the export
    args: tuple = ()                    # numba types
    return_type: object = None
    param_names: tuple = ()
    c_params: list = field(default_factory=list)   # [(C type, C name)]
    c_ret: str = None                   # C type of *ret, or None for void
    ct_policy: object = None            # constant_time.Policy, or None


# module name -> [Export]
_REGISTRY = {}


def host_target():
    """The target name of the machine Python runs on."""
    from secretjit.pipeline import host_arch
    arch = host_arch()
    name = _ALIASES.get(arch)
    if name is None:
        raise AotError("no AOT target for host architecture %r; supported: %s"
                       % (arch, ', '.join(TARGETS)))
    return name


def resolve_target(target):
    """Normalise a target name (``None``: the host); AotError if unknown."""
    if target is None or target == 'host':
        return host_target()
    name = _ALIASES.get(target, target)
    if name not in TARGETS:
        raise AotError("unknown target %r; supported targets: %s"
                       % (target, ', '.join(TARGETS)))
    return name


def _c_type(ty, what):
    from numba.core import types
    if isinstance(ty, types.Boolean):
        return 'bool'
    if isinstance(ty, types.Integer):
        return '%sint%d_t' % ('' if ty.signed else 'u', ty.bitwidth)
    if isinstance(ty, types.Float):
        return {32: 'float', 64: 'double'}[ty.bitwidth]
    raise TypeError("%s has type %s, which an AOT export does not support; "
                    "supported: %s" % (what, ty, SUPPORTED))


def _validate(c_name, signature, pyfunc):
    """Parse and check a declaration; returns the filled-in Export fields."""
    from numba.core import sigutils, types
    if not isinstance(c_name, str) or not _C_NAME.match(c_name) \
            or c_name in _C_KEYWORDS:
        raise ValueError("export name %r is not a C identifier" % (c_name,))
    if c_name.startswith(_RESERVED_PREFIXES) or c_name in _RESERVED_NAMES:
        raise ValueError("export name %r uses a prefix reserved for the "
                         "secretjit runtime" % c_name)
    if not isinstance(signature, str):
        raise TypeError("export %s: the signature must be a string such as "
                        "'int64(uint8[::1], uint8[::1])', got %r"
                        % (c_name, signature))
    try:
        args, ret = sigutils.normalize_signature(signature)
    except Exception as exc:
        raise TypeError("export %s: cannot parse signature %r: %s"
                        % (c_name, signature, exc)) from None
    if ret is None:
        raise TypeError("export %s: the signature %r needs a return type "
                        "(void or a scalar)" % (c_name, signature))
    try:
        params = list(inspect.signature(pyfunc).parameters.values())
    except (TypeError, ValueError):
        params = []
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
           for p in params):
        raise TypeError("export %s: %s must take plain positional parameters"
                        % (c_name, getattr(pyfunc, '__qualname__', pyfunc)))
    names = [p.name for p in params]
    if len(names) != len(args):
        raise TypeError("export %s: the signature has %d parameters, %s has %d"
                        % (c_name, len(args), pyfunc.__qualname__, len(names)))
    used = set()

    def cname(base):
        n = base
        while n in used or n in _C_KEYWORDS:
            n += '_'
        used.add(n)
        return n
    c_params = []
    for name, ty in zip(names, args):
        what = "export %s: parameter %r" % (c_name, name)
        if isinstance(ty, types.Array):
            if ty.ndim != 1 or ty.layout != 'C':
                raise TypeError("%s has type %s; arrays must be 1-D and "
                                "C-contiguous (write T[::1]); supported: %s"
                                % (what, ty, SUPPORTED))
            c_params.append((_c_type(ty.dtype, what) + ' *', cname(name)))
            c_params.append(('int64_t', cname(name + '_len')))
        else:
            c_params.append((_c_type(ty, what), cname(name)))
    if ret is types.none:
        c_ret = None
    else:
        c_ret = _c_type(ret, "export %s: the result" % c_name)
        c_params.append((c_ret + ' *', cname('ret')))
    return dict(args=tuple(args), return_type=ret, param_names=tuple(names),
                c_params=c_params, c_ret=c_ret)


def export(c_name, signature, *, secret=None, constant_time=None):
    """Declare ``func`` as the C function ``c_name`` with the numba ``signature``.

    Use on a plain Python function (compiled like ``secret_jit`` would) or on a
    ``secret_jit`` / ``njit`` dispatcher (its Python source is compiled again
    for the AOT target).  Returns the function unchanged, so the module stays
    usable from Python.  Unsupported types raise ``TypeError`` naming the
    parameter; a name that is not a C identifier raises ``ValueError``.
    ``secret``/``constant_time`` are ``secret_jit``'s (README, "Constant
    time"); a ``secret_jit`` dispatcher's own apply when not given.  The
    build checks such an export on the target's optimized code and object
    (:mod:`secretjit.aot.ct`): a finding fails it with
    :class:`~secretjit.aot.ct.AotPolicyError` (a ``SecretPolicyError`` with
    rule ``constant-time`` and an ``AotError``).
    """
    module = sys._getframe(1).f_globals.get('__name__', '__main__')

    def decorate(func):
        pyfunc = getattr(func, 'py_func', func)
        if not callable(pyfunc) or not hasattr(pyfunc, '__code__'):
            raise TypeError("export %s: expected a Python function or a numba "
                            "dispatcher, got %r" % (c_name, func))
        fields = _validate(c_name, signature, pyfunc)
        from .ct import export_policy
        fields['ct_policy'] = export_policy(func, pyfunc, secret,
                                            constant_time, c_name)
        exports = _REGISTRY.setdefault(module, [])
        for e in exports:
            if e.c_name == c_name:
                raise ValueError("export %s declared twice in %s"
                                 % (c_name, module))
        exports.append(Export(c_name, signature, pyfunc, module, **fields))
        return func
    return decorate


def exports_of(module_name):
    """The exports a module declared (in declaration order)."""
    return list(_REGISTRY.get(module_name, ()))


def build(module, target=None, outdir='.', *, exports=None, python=None,
          cpu=None):
    """Build ``lib<stem>.so`` and ``<stem>.h`` in ``outdir`` from ``module``.

    ``module`` is a path to a ``.py`` file or an imported module object (its
    file is used).  ``target`` is ``'x86_64-linux-gnu'``, ``'aarch64-linux-gnu'``
    or ``None`` for the host.  The kernels are compiled in a fresh Python
    process (so they are compiled for the target's baseline CPU, without the
    host's SHA extensions or caches).  ``exports`` limits the build to those
    C names (an unknown or undecorated name is an error); ``python`` is the
    interpreter that compiles (default: this one).  Returns ``(library path,
    header path)``.  Raises :class:`AotError` for build failures (unknown
    target, missing C compiler, a kernel that needs the Python runtime, a
    compiler or linker error) and ``TypeError`` / ``ValueError`` for bad
    declarations.  ``SECRETJIT_AOT_CC`` overrides the C compiler driver
    (e.g. ``"clang --target=aarch64-linux-gnu -fuse-ld=lld"``).
    ``cpu`` (:mod:`secretjit.aot.cpu`): the CPU features the code may use,
    ``None`` for the baseline, ``'host'``, ``'x86-64-v3'``, ``'x86-64-v4'``
    or such a name with ``+feature`` words; an unknown name is an AotError.
    """
    info = _run_worker(module, _variant(dict(target=target, outdir=outdir,
                                             cpu=cpu)),
                       exports=exports, python=python)
    return info['library'], info['header']


def _build_variants(module, variants, exports=None, python=None, wait=True):
    """Tests: compile once, build several (target, outdir, secret, cpu) variants.

    ``secret=False`` in a variant builds the same exports without the secret
    passes (no boundaries, no register zeroing) and with malloc/free without
    wiping in place of the secret arena: the control that must leak.  Not
    part of the public API: users cannot build a library without erasure.

    Returns the worker's info dict per variant (library, header, depths...);
    with ``wait=False`` a function that waits for the build and returns them.
    """
    variants = [_variant(v) for v in variants]
    return _run_worker(module, variants, exports=exports, python=python,
                       wait=wait)


def _variant(v):
    """A build request's (target, outdir, secret, cpu), checked."""
    from .cpu import resolve_cpu
    target = resolve_target(v.get('target'))
    cpu = resolve_cpu(TARGETS[target][0], v.get('cpu'))
    return dict(target=target, outdir=os.path.abspath(v['outdir']),
                secret=bool(v.get('secret', True)),
                cpu=None if cpu.baseline else cpu.name)


def _run_worker(module, request_variant, exports=None, python=None,
                keep=False, wait=True):
    """Run the compiling interpreter (see :func:`build`)."""
    import json
    import subprocess
    import tempfile

    path = getattr(module, '__file__', module)
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        raise AotError("no such module file: %r" % (path,))
    path = os.path.abspath(path)
    if not str(path).endswith('.py'):
        raise AotError("%s is not a Python source file (.py)" % path)
    from . import _build, _link
    many = isinstance(request_variant, list)
    variants = request_variant if many else [request_variant]
    for v in variants:
        _link.toolchain(v['target'])  # fail fast, before compiling anything
    tmp = tempfile.TemporaryDirectory(prefix='secretjit-aot-')
    env = dict(os.environ)
    env.update(_build.worker_env(variants, tmp.name))
    request = dict(module=str(path), keep=bool(keep),
                   only=list(exports or ()))
    if many:
        request['variants'] = variants
    else:
        request.update(request_variant)
    proc = subprocess.Popen(
        [python or sys.executable, '-m', 'secretjit.aot._build',
         json.dumps(request)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish():
        try:
            stdout, stderr = proc.communicate()
        finally:
            tmp.cleanup()
        return _worker_result(path, proc.returncode, stdout, stderr)
    return finish() if wait else finish


def _worker_result(path, returncode, stdout, stderr):
    import json
    from . import _build
    if returncode != 0:
        msg = stderr.strip()
        last = _build.error_line(msg)
        if last[0] == 'SecretPolicyError':
            from .ct import AotPolicyError
            raise AotPolicyError(*last[1])
        kind = _build.ERROR_KINDS.get(last[0], AotError)
        if not last[1] or last[1].startswith('internal error'):
            raise AotError('AOT build of %s failed:\n%s' % (path, msg))
        raise kind(last[1])
    result = json.loads(stdout.strip().splitlines()[-1])
    for info in result if isinstance(result, list) else [result]:
        if info.get('constant_time'):
            import warnings
            from secretjit.errors import ConstantTimeWarning
            warnings.warn(ConstantTimeWarning(
                "secretjit constant-time (AOT %s):\n  %s" % (
                    info['target'], '\n  '.join(info['constant_time']))),
                stacklevel=3)
    return result
