"""The AOT build: numba IR of the exports -> target object -> lib<stem>.so + header.

Runs in a fresh interpreter (``python -m secretjit.aot._build REQUEST``, see
:func:`secretjit.aot.build`) whose environment makes numba compile for the
baseline CPU, without SHA extensions and without an object cache, so that the
IR it produces can be compiled for any target.

Per library: compile every export with the secret target and take its final
module *before* the JIT's passes (:func:`_compile`); check each export against
its kernel's signature (:func:`wrapper_spec`); run
:func:`secretjit.pipeline.aot_module` (the kernels, the runtime and one C ABI
wrapper per export linked, retargeted, then the JIT's own passes, -O3 and the
stack bound for the target's TargetMachine); emit an object file, compile the
C runtime (``secretjit/csrc``) with the target's C compiler, link
``-shared`` against libc and libm only, write the header.
"""

import json
import os
import re
import shutil
import sys
import traceback

from . import AotError, TARGETS, ct
from ._link import header_text, link_library

ERROR_MARK = 'SECRETJIT-AOT-ERROR '
ERROR_KINDS = {'AotError': AotError, 'TypeError': TypeError,
               'ValueError': ValueError}
# Symbols the C runtime defines for the kernels (nrt_aot.c, arena.c,
# secretstack.c) and stack allowances for those the call tree reaches.
C_RUNTIME_SYMBOLS = frozenset([
    'NRT_MemInfo_call_dtor', 'secretjit_libc_getrandom',
    'secretjit_libc_errno_location', 'secretjit_arena_alloc',
    'secretjit_arena_free', 'secretjit_arena_realloc', 'secretjit_arena_owns',
    'secretjit_slab_alloc', 'secretjit_slab_free', 'secretjit_slab_realloc',
    'secretjit_secret_call', 'secretjit_secret_call_exact', 'secretjit_stack_range', 'secretjit_aot_scrub',
    'secretjit_aot_clear_vregs'])
# Each export zeroes the registers the CPU has beyond what baseline-CPU code
# zeroes (nrt_aot.c): x86-64 ymm/zmm upper bits, zmm16-31, k0-k7; AArch64
# SVE predicates and FFR.
CLEAR_VREGS = 'secretjit_aot_clear_vregs'
# A --cpu build's C wrappers: CPU_PREFIX + export name (secretjit.aot.cpu).
CPU_PREFIX = 'secretjit__cpu_'
# libc/libm functions numba code may call (the library links both).
LIBC = frozenset('''memset memcpy memmove memcmp bcmp strlen malloc free calloc
    realloc getrandom __errno_location abort'''.split())


def error_line(stderr):
    """(kind, message) of the worker's last error report, or ('', '')."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(ERROR_MARK):
            kind, _, msg = line[len(ERROR_MARK):].partition(' ')
            try:
                msg = json.loads(msg)
            except ValueError:
                pass
            return kind, msg
    return '', ''


def worker_env(variants, tmp):
    """Environment of the compiling interpreter.

    numba compiles for a generic CPU (the target machine adds the build's
    features); the SHA-256 kernel uses SHA-NI only when every variant's
    CPU has it (the kernels are compiled once for all variants).
    """
    # SECRETJIT_LINE_TABLES=1: the AOT's constant-time check reads the
    # captured IR later (secretjit.aot.ct), so it needs line tables always.
    env = {'NUMBA_CPU_NAME': 'generic', 'NUMBA_CPU_FEATURES': '',
           'SECRETJIT_LINE_TABLES': '1',
           'NUMBA_CACHE_DIR': os.path.join(tmp, 'numba-cache')}
    cpus = [variant_cpu(v) for v in variants]
    if all(c.sha_ni for c in cpus):
        env['SECRETJIT_AOT_SHANI'] = 'avx' if all(c.vlevel for c in cpus) \
            else 'sse'
        # numba's own codegen of the kernels (never run) must select them
        common = set.intersection(*(set(c.features) for c in cpus))
        env['NUMBA_CPU_FEATURES'] = ','.join('+' + f for f in cpus[0].features
                                             if f in common)
    else:
        env['SECRETJIT_NO_SHANI'] = '1'
    return env


def variant_cpu(v):
    """The :class:`cpu.Cpu` of a build variant."""
    from .cpu import resolve_cpu
    return resolve_cpu(TARGETS[v['target']][0], v.get('cpu'))


# -- compiling the exports -------------------------------------------------

def _compile(exp):
    """(kernel symbol, module text, return LLVM type) for one export."""
    from numba.core import types
    from secretjit import secret_jit
    from secretjit.codegen import SecretCodeLibrary
    SecretCodeLibrary.keep_pre_secret_ir = True   # this child process only
    disp = secret_jit(nogil=True)(exp.pyfunc)     # fresh: never from a cache
    disp.compile(exp.return_type(*exp.args))
    cres = disp.overloads[tuple(exp.args)]
    if cres.signature.return_type != exp.return_type:
        raise TypeError("export %s: the kernel returns %s, the signature says "
                        "%s" % (exp.c_name, cres.signature.return_type,
                                exp.return_type))
    text = cres.library.pre_secret_ir
    if text is None:
        raise AotError("export %s: no IR captured for %s (compiled from a "
                       "cache?)" % (exp.c_name, exp.pyfunc.__qualname__))
    ret = None
    if exp.return_type is not types.none:
        dm = cres.target_context.data_model_manager[exp.return_type]
        ret = str(dm.get_return_type())
    return cres.fndesc.llvm_func_name, text, ret


# -- the C ABI wrappers -----------------------------------------------------

_ARRAY_FIELDS = ['ptr', 'ptr', 'i64', 'i64', 'ptr', 'i64', 'i64']
_SCALAR_LL = {'bool': 'i8', 'float': 'float', 'double': 'double'}


def _kernel_params(text, kernel):
    from secretjit.passes.textir import Module, leading_type
    fn = Module.parse(text).functions.get(kernel)
    if fn is None:
        raise AotError("kernel %s missing from its module" % kernel)
    return [leading_type(p) for p in fn.params]


def _ll_of_c(ctype):
    if ctype in _SCALAR_LL:
        return _SCALAR_LL[ctype]
    m = re.match(r'u?int(\d+)_t$', ctype)
    return 'i' + m.group(1)


def _param_spec(exp, kernel_rest):
    """The wrapper's parameter groups, checked against the kernel's types."""
    from numba.core import types
    params, k = [], 0
    for name, ty in zip(exp.param_names, exp.args):
        if isinstance(ty, types.Array):
            if kernel_rest[k:k + 7] != _ARRAY_FIELDS:
                raise AotError("export %s: unexpected array ABI %s for %r"
                               % (exp.c_name, kernel_rest[k:k + 7], name))
            item = 1 if isinstance(ty.dtype, types.Boolean) \
                else ty.dtype.bitwidth // 8
            params.append(('array', item, name))
            k += 7
            continue
        want = kernel_rest[k] if k < len(kernel_rest) else None
        cty = _ll_of_c(exp.c_params[sum(
            2 if p[0] == 'array' else 1 for p in params)][0])
        if want == cty:
            params.append(('scalar', cty, name))
        elif want == 'i1' and cty == 'i8':
            params.append(('bool', cty, name))
        else:
            raise AotError("export %s: parameter %r is %s in the kernel, "
                           "%s in C" % (exp.c_name, name, want, cty))
        k += 1
    if k != len(kernel_rest):
        raise AotError("export %s: the kernel takes %d values, the signature "
                       "gives %d" % (exp.c_name, len(kernel_rest), k))
    return params


def wrapper_spec(exp, kernel, kparams, ret_ll, clear=None, name=None):
    """The :class:`passes.c_wrapper.WrapperSpec` of export ``exp``."""
    from secretjit.passes.c_wrapper import WrapperSpec
    if kparams[:2] != ['ptr', 'ptr']:
        raise AotError("kernel %s does not use numba's calling convention"
                       % kernel)
    params = _param_spec(exp, kparams[2:])
    result = None
    if exp.c_ret is not None:
        cty = _ll_of_c(exp.c_ret)
        if not (ret_ll == cty or (cty == 'i8' and ret_ll.startswith('i'))):
            raise AotError("export %s: result is %s in the kernel, %s in C"
                           % (exp.c_name, ret_ll, cty))
        result = (ret_ll, cty)
    return WrapperSpec(name or exp.c_name, kernel, kparams, params, result,
                       clear)


# -- the secret passes on the target ---------------------------------------

def _target_machine(target, secret=True, cpu=None):
    import llvmlite.binding as ll
    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    arch, triple, _, _, _ = TARGETS[target]
    cpu = cpu or variant_cpu(dict(target=target))
    t = ll.Target.from_triple(triple)
    return t.create_target_machine(cpu=cpu.llvm_cpu, features=ct.target_features(
        arch, secret, cpu.feature_string()), opt=3, reloc='pic',
        codemodel='default')


def _optimize(mod, tm):
    from numba.core.codegen import create_pass_builder
    pb = create_pass_builder(tm, opt=3, loop_vectorize=True,
                             slp_vectorize=True)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)


def compile_exports(exports):
    """numba-compile every export once: [(kernel symbol, IR text, ret type)]."""
    compiled = {}
    kernels = []
    for exp in exports:
        key = (exp.pyfunc, exp.args, exp.return_type)
        if key not in compiled:
            compiled[key] = _compile(exp)
        kernels.append(compiled[key])
    return kernels


def build_ir(exports, kernels, target, secret=True, cpu=None):
    """Compile ``exports`` for ``target`` (and ``cpu``, a :class:`cpu.Cpu`):
    (object bytes, info dict)."""
    from secretjit import passes, pipeline
    arch, triple, _, _, _ = TARGETS[target]
    tm = _target_machine(target, secret, cpu)
    # a --cpu build's exports are ifuncs (cpu.check_source) that resolve to
    # these wrappers on a CPU with the build's features
    prefix = CPU_PREFIX if cpu is not None and not cpu.baseline else ''
    # an AVX-512 build's boundaries zero zmm0-31 and k0-k7 themselves, and
    # its ifuncs run it only on an AVX-512 CPU: nothing is left to clear
    clear = CLEAR_VREGS if secret and (cpu is None or cpu.vlevel < 2) else None
    specs = [wrapper_spec(exp, kernel, _kernel_params(text, kernel), ret_ll,
                          clear=clear, name=prefix + exp.c_name)
             for exp, (kernel, text, ret_ll) in zip(exports, kernels)]
    texts = list(dict((k, text) for k, text, _ in kernels).values())
    found = ct.Findings()
    # the control build (secret=False) inlines the kernels into the wrappers
    groups = ct.kernel_policies(exports, specs) if secret else []
    # the JIT's one-pass vector/x87 epilogue: a --cpu build with AVX, or
    # the SSE form where secretjit_aot_clear_vregs clears the upper bits after
    epilogue = passes.register_epilogue(arch, ct.target_features(
        arch, secret, (cpu or variant_cpu(dict(target=target))).feature_string()),
        sse=clear is not None) if secret else None
    with ct.backend(arch, secret):
        try:
            result = pipeline.aot_module(
                texts, specs, tm, arch, triple, secret=secret,
                optimize=_optimize, epilogue=epilogue,
                check=ct.checker(groups, found, texts),
                inline={s.kernel for s in specs} - {
                    k for _, kernels in groups for k in kernels})
        except ValueError as exc:       # a pass refusing the IR
            raise AotError(str(exc)) from None
        _check_symbols(result.module, {s.c_name for s in specs})
        obj = tm.emit_object(result.module)
    info = {'depths': {e.c_name: result.bounds[s.kernel].depth
                       for e, s in zip(exports, specs) if s.kernel in result.bounds},
            'reports': [str(r) for r in result.reports],
            'constant_time': ct.check_object(obj, arch, found),
            'seconds_constant_time': round(found.seconds, 2)}
    return obj, info


def _check_symbols(mod, wrappers):
    from secretjit.stack_bound import EXTERNAL_ALLOWANCE, LIBM
    missing = []
    for f in mod.functions:
        if not f.is_declaration or f.name.startswith('llvm.'):
            continue
        if f.name in C_RUNTIME_SYMBOLS or f.name in LIBC or f.name in LIBM \
                or f.name in EXTERNAL_ALLOWANCE:
            continue
        missing.append(f.name)
    for g in mod.global_variables:
        if g.is_declaration:
            missing.append(g.name)
    if missing:
        from secretjit.stack_bound import readable
        raise AotError(
            "the kernels need symbols an AOT library cannot provide (no Python "
            "or numba runtime at run time): %s. Keep Python objects, print(), "
            "exceptions with runtime arguments and typed containers out of "
            "exported kernels" % ', '.join(
                sorted('%s' % readable(m) for m in missing)))


def _load_exports(request):
    """(stem, exports) of the requested module, limited to ``only``."""
    import importlib.util
    from secretjit import aot
    path = request['module']
    stem = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[stem] = module
    spec.loader.exec_module(module)
    exports = aot.exports_of(stem)
    only = request.get('only')
    if only:
        known = {e.c_name: e for e in exports}
        for name in only:
            if name not in known:
                obj = getattr(module, name, None)
                if obj is not None and callable(obj):
                    raise AotError(
                        "%s is defined in %s but not exported; decorate it "
                        "with @secretjit.aot.export(c_name, signature)"
                        % (name, path))
                raise AotError("%s has no export named %s; its exports: %s"
                               % (path, name, ', '.join(known) or '(none)'))
        exports = [known[n] for n in only]
    if not exports:
        raise AotError("%s declares no exports (use @secretjit.aot.export)"
                       % path)
    return stem, exports


def _build_variant(stem, exports, kernels, v, keep=False):
    """Object code, library and header of one (target, outdir, secret)."""
    import tempfile
    outdir, secret = v['outdir'], v.get('secret', True)
    os.makedirs(outdir, exist_ok=True)
    lib = os.path.join(outdir, 'lib%s.so' % stem)
    header = os.path.join(outdir, '%s.h' % stem)
    cpu = variant_cpu(v)
    obj, info = build_ir(exports, kernels, v['target'], secret=secret, cpu=cpu)
    with tempfile.TemporaryDirectory(prefix='secretjit-aot-') as tmp:
        opath = os.path.join(tmp, '%s.o' % stem)
        with open(opath, 'wb') as f:
            f.write(obj)
        if keep:
            shutil.copy(opath, os.path.join(outdir, '%s.o' % stem))
        link_library(opath, exports, v['target'], lib, tmp, secret=secret,
                     cpu=cpu)
    with open(header, 'w') as f:
        f.write(header_text(stem, exports, v['target'], cpu))
    info.update(library=lib, header=header, target=v['target'], secret=secret,
                exports=[e.c_name for e in exports], cpu=cpu.describe(),
                cpu_features=list(cpu.features))
    return info


def main(request):
    import time
    import secretjit  # noqa: F401  (initializes LLVM)
    stem, exports = _load_exports(request)
    variants = request.get('variants') or [dict(
        target=request.get('target'), outdir=request.get('outdir'),
        secret=request.get('secret', True), cpu=request.get('cpu'))]
    t0 = time.perf_counter()
    kernels = compile_exports(exports)
    t1 = time.perf_counter()
    results = []
    for v in variants:
        t2 = time.perf_counter()
        info = _build_variant(stem, exports, kernels, v, request.get('keep'))
        info.update(seconds_numba=round(t1 - t0, 2),
                    seconds_target=round(time.perf_counter() - t2, 2))
        results.append(info)
    print(json.dumps(results if request.get('variants') else results[0]))


if __name__ == '__main__':
    try:
        main(json.loads(sys.argv[1]))
    except (AotError, TypeError, ValueError) as exc:
        traceback.print_exc()
        sys.stderr.write('%s%s %s\n' % (ERROR_MARK, type(exc).__name__,
                                        json.dumps(str(exc))))
        sys.exit(1)
    except Exception as exc:     # report the internal error with its type
        traceback.print_exc()
        from numba.core.errors import NumbaError
        from secretjit.errors import SecretPolicyError
        if isinstance(exc, SecretPolicyError):
            sys.stderr.write('%sSecretPolicyError %s\n' % (ERROR_MARK, json.dumps(
                [exc.rule, exc.problem, exc.fix])))
            sys.exit(1)
        if isinstance(exc, NumbaError):
            sys.stderr.write('%sAotError %s\n' % (ERROR_MARK, json.dumps(
                'an export does not compile: %s: %s'
                % (type(exc).__name__, exc))))
            sys.exit(1)
        sys.stderr.write('%sAotError %s\n' % (ERROR_MARK, json.dumps(
            'internal error: %s: %s' % (type(exc).__name__, exc))))
        sys.exit(1)
