"""The AOT build: numba IR of the exports -> target object -> lib<stem>.so + header.

Runs in a fresh interpreter (``python -m secretjit.aot._build REQUEST``, see
:func:`secretjit.aot.build`) whose environment makes numba compile for the
baseline CPU, without SHA extensions and without an object cache, so that the
IR it produces can be compiled for any target.

Pipeline, per library:

1. compile every export with the secret target and take its final module
   *before* the JIT's passes (kernel, linked-in helpers, NRT declarations);
2. link them with the secret runtime's IR (``secretjit.runtime``) and one C ABI
   wrapper per export, retarget the module (triple, data layout), make every
   function but the wrappers internal, give host-tuned helpers generic bodies;
3. :func:`passes.insert_boundaries` (wrapper -> boundary -> kernel), -O3 with
   the target's TargetMachine, then the JIT's post-O3 passes (internalize,
   register zeroing, stack bound from the target's assembly, scrub depths);
4. emit an object file, compile the C runtime (``secretjit/csrc``) with the
   target's C compiler, link ``-shared`` against libc and libm only, write the
   header.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import traceback

from . import AotError, STATUS, TARGETS, resolve_target

ERROR_MARK = 'SECRETJIT-AOT-ERROR '
ERROR_KINDS = {'AotError': AotError, 'TypeError': TypeError,
               'ValueError': ValueError}
CSRC = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'csrc')
# The C runtime of every library: whichever of these exist (arena.c and
# secretstack.c hold the secret heap and stack), plus the NRT pieces.
RUNTIME_SOURCES = ('common.c', 'arena.c', 'secretstack.c', 'nrt_aot.c')
CFLAGS = ['-O2', '-fPIC', '-fvisibility=hidden', '-std=gnu11', '-Wall']
# Symbols the C runtime defines for the kernels (nrt_aot.c, arena.c,
# secretstack.c) and stack allowances for those the call tree reaches.
C_RUNTIME_SYMBOLS = frozenset([
    'NRT_MemInfo_call_dtor', 'secretjit_libc_getrandom',
    'secretjit_libc_errno_location', 'secretjit_arena_alloc',
    'secretjit_arena_free', 'secretjit_arena_realloc', 'secretjit_arena_owns',
    'secretjit_secret_call', 'secretjit_stack_range', 'secretjit_aot_scrub',
    'secretjit_aot_clear_vregs'])
# Each export zeroes the registers the CPU has beyond what baseline-CPU code
# zeroes (nrt_aot.c): x86-64 ymm/zmm upper bits, zmm16-31, k0-k7; AArch64
# SVE predicates and FFR.
CLEAR_VREGS = 'secretjit_aot_clear_vregs'
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


def worker_env(target, tmp):
    """Environment of the compiling interpreter."""
    return {'NUMBA_CPU_NAME': 'generic', 'NUMBA_CPU_FEATURES': '',
            'SECRETJIT_NO_SHANI': '1',
            'NUMBA_CACHE_DIR': os.path.join(tmp, 'numba-cache')}


def _host_arch():
    import platform
    m = platform.machine().lower()
    return {'amd64': 'x86_64', 'arm64': 'aarch64'}.get(m, m)


def toolchain(target):
    """The C compiler driver for ``target`` (AotError naming the package if absent).

    ``SECRETJIT_AOT_CC`` overrides it; for the host architecture ``CC`` (or
    ``cc``) is used, for another one the Debian cross compiler.
    """
    arch, _, _, cross, package = TARGETS[resolve_target(target)]
    override = os.environ.get('SECRETJIT_AOT_CC')
    if override:
        cc, hint = override, 'SECRETJIT_AOT_CC=%s' % override
    elif arch == _host_arch():
        cc, hint = os.environ.get('CC') or 'cc', 'apt-get install gcc'
    else:
        cc, hint = cross, 'apt-get install %s' % package
    argv = cc.split()
    exe = shutil.which(argv[0])
    if exe is None:
        raise AotError("C compiler %r for target %s not found; install it "
                       "with `%s`" % (argv[0], target, hint)
                       if not override else
                       "C compiler %r (from SECRETJIT_AOT_CC) not found"
                       % argv[0])
    return [exe] + argv[1:]


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


# -- IR surgery ------------------------------------------------------------

# numba's NRT_incref/NRT_decref come optimized for the host (an x86-only
# atomic intrinsic on x86); these are numba's definitions, target-neutral.
_GENERIC = {
    'NRT_incref': '''define linkonce_odr void @NRT_incref(ptr %p) noinline {
entry:
  %isnull = icmp eq ptr %p, null
  br i1 %isnull, label %done, label %inc
inc:
  %old = atomicrmw add ptr %p, i64 1 monotonic, align 8
  br label %done
done:
  ret void
}''',
    'NRT_decref': '''define linkonce_odr void @NRT_decref(ptr %p) noinline {
entry:
  %isnull = icmp eq ptr %p, null
  br i1 %isnull, label %done, label %dec
dec:
  fence release
  %old = atomicrmw sub ptr %p, i64 1 monotonic, align 8
  %last = icmp eq i64 %old, 1
  br i1 %last, label %free, label %done
free:
  fence acquire
  call void @NRT_MemInfo_call_dtor(ptr %p)
  br label %done
done:
  ret void
}'''}

# numba optimizes each helper's library for the host first; on x86 LLVM turns
# "atomicrmw sub + compare" (NRT_decref, inlined everywhere) into an x86-only
# intrinsic.  Rewrite it back to target-neutral IR.
_X86_ATOMIC_CC = re.compile(
    r'^(\s*)(%[-\w.]+) = (?:tail )?call i8 @llvm\.x86\.atomic\.(add|sub|and|or|xor)'
    r'\.cc\.(i\d+)\(ptr ([^,]+), (i\d+) ([^,]+), i32 (\d+)\)(.*)$', re.M)
_CC_TEST = {4: 'eq', 5: 'ne', 8: 'slt', 9: 'sge'}     # X86::CondCode on the result


def _neutral_atomics(text):
    count = [0]

    def repl(m):
        ind, res, op, ty, p, _, val, cc, _ = m.groups()
        cc = int(cc)
        if cc not in _CC_TEST:
            raise AotError("cannot retarget llvm.x86.atomic.%s.cc with "
                           "condition %d" % (op, cc))
        p = p.split()[-1]                   # drop nonnull & co.
        count[0] += 1
        base = '%%__sj_atomic%d' % count[0]
        old, new, test = base + '.old', base + '.new', base + '.test'
        return '\n'.join([
            '%s%s = atomicrmw %s ptr %s, %s %s seq_cst' % (ind, old, op, p, ty, val),
            '%s%s = %s %s %s, %s' % (ind, new, op, ty, old, val),
            '%s%s = icmp %s %s %s, 0' % (ind, test, _CC_TEST[cc], ty, new),
            '%s%s = zext i1 %s to i8' % (ind, res, test)])
    text = _X86_ATOMIC_CC.sub(repl, text)
    text = re.sub(r'^declare .*@llvm\.x86\.atomic\.\w+\.cc\.i\d+\(.*\n', '',
                  text, flags=re.M)
    return text


_ZCUR = re.compile(r'\s*"zero-call-used-regs"="\w+"')
_TARGET_ATTRS = re.compile(r'\s*"target-(?:cpu|features)"="[^"]*"')


def _module_text_fixups(text, wrappers, secret):
    """Internal linkage for all but the wrappers; generic NRT refcounting."""
    from secretjit.passes.textir import Module, set_linkage
    mod = Module.parse(text)
    for fn in mod.defined():
        if fn.name in _GENERIC:
            fn.header = _GENERIC[fn.name].splitlines()[0]
            fn.body = _GENERIC[fn.name].splitlines()[1:-1]
        if fn.name not in wrappers:
            fn.header = set_linkage(fn.header, 'internal')
    text = _neutral_atomics(mod.text())
    lines = []
    for line in text.splitlines():
        if line.startswith('@'):
            line = re.sub(r' = (?:common|weak|linkonce_odr|linkonce|weak_odr'
                          r'|dso_local|)\s*(?=(?:local_unnamed_addr |'
                          r'unnamed_addr )?(?:global|constant) )',
                          ' = internal ', line, count=1) \
                if not re.search(r' = (?:private|internal|external) ', line) \
                else line
        elif line.startswith('attributes #'):
            line = _TARGET_ATTRS.sub('', line)
            if not secret:
                line = _ZCUR.sub('', line)
        lines.append(line)
    text = '\n'.join(lines) + '\n'
    if not secret:
        text = _ZCUR.sub('', text)
        text = re.sub(r'^(attributes #\d+ = \{)\s*\}', r'\1 "secretjit-control" }',
                      text, flags=re.M)
    return text


def _kernel_params(text, kernel):
    from secretjit.passes.textir import Module, leading_type
    fn = Module.parse(text).functions.get(kernel)
    if fn is None:
        raise AotError("kernel %s missing from its module" % kernel)
    return [leading_type(p) for p in fn.params]


_ARRAY_FIELDS = ['ptr', 'ptr', 'i64', 'i64', 'ptr', 'i64', 'i64']
_SCALAR_LL = {'bool': 'i8', 'float': 'float', 'double': 'double'}


def _ll_of_c(ctype):
    if ctype in _SCALAR_LL:
        return _SCALAR_LL[ctype]
    m = re.match(r'u?int(\d+)_t$', ctype)
    return 'i' + m.group(1)


def _wrapper_ir(exp, kernel, kparams, ret_ll, clear=None):
    """The C ABI function ``exp.c_name`` calling ``kernel`` (numba's ABI)."""
    from numba.core import types
    if kparams[:2] != ['ptr', 'ptr']:
        raise AotError("kernel %s does not use numba's calling convention"
                       % kernel)
    rest = kparams[2:]
    cparams, kargs, checks, body = [], [], [], []
    k = 0
    n = 0

    def fresh(prefix):
        nonlocal n
        n += 1
        return '%%%s%d' % (prefix, n)
    for name, ty in zip(exp.param_names, exp.args):
        if isinstance(ty, types.Array):
            if rest[k:k + 7] != _ARRAY_FIELDS:
                raise AotError("export %s: unexpected array ABI %s for %r"
                               % (exp.c_name, rest[k:k + 7], name))
            d, ln = fresh('data'), fresh('len')
            cparams += ['ptr %s' % d, 'i64 %s' % ln]
            item = ty.dtype.bitwidth // 8 if not isinstance(
                ty.dtype, types.Boolean) else 1
            kargs += ['ptr null', 'ptr null', 'i64 %s' % ln, 'i64 %d' % item,
                      'ptr %s' % d, 'i64 %s' % ln, 'i64 %d' % item]
            neg, isnull, pos, bad = (fresh('neg'), fresh('null'), fresh('pos'),
                                     fresh('bad'))
            body += ['  %s = icmp slt i64 %s, 0' % (neg, ln),
                     '  %s = icmp eq ptr %s, null' % (isnull, d),
                     '  %s = icmp sgt i64 %s, 0' % (pos, ln),
                     '  %s = and i1 %s, %s' % (bad, isnull, pos)]
            checks += [neg, bad]
            k += 7
        else:
            want = rest[k]
            cty = _ll_of_c(exp.c_params[len(cparams)][0])
            v = fresh('arg')
            cparams.append('%s %s' % (cty, v))
            if want == cty:
                kargs.append('%s %s' % (want, v))
            elif want == 'i1' and cty == 'i8':
                b = fresh('bool')
                body.append('  %s = icmp ne i8 %s, 0' % (b, v))
                kargs.append('i1 %s' % b)
            else:
                raise AotError("export %s: parameter %r is %s in the kernel, "
                               "%s in C" % (exp.c_name, name, want, cty))
            k += 1
    if k != len(rest):
        raise AotError("export %s: the kernel takes %d values, the signature "
                       "gives %d" % (exp.c_name, len(rest), k))
    if exp.c_ret is not None:
        out = '%out'
        cparams.append('ptr %out')
        nullout = fresh('nullout')
        body.append('  %s = icmp eq ptr %%out, null' % nullout)
        checks.append(nullout)
    bad = 'false'
    for c in checks:
        nb = fresh('anybad')
        body.append('  %s = or i1 %s, %s' % (nb, bad, c))
        bad = nb
    lines = ['define i32 @%s(%s) {' % (exp.c_name, ', '.join(cparams)),
             'entry:',
             '  %retslot = alloca [64 x i8], align 16',
             '  %exc = alloca ptr, align 8']
    lines += body
    lines += ['  br i1 %s, label %%einval, label %%call' % bad,
              'einval:', '  ret i32 2',
              'call:',
              '  store ptr null, ptr %exc, align 8',
              '  %%status = call i32 @%s(ptr %%retslot, ptr %%exc%s)'
              % (kernel, ''.join(', ' + a for a in kargs))]
    if clear:
        lines.append('  call void @%s()' % clear)
    lines += [
              '  %ok0 = icmp eq i32 %status, 0',
              '  %ok1 = icmp eq i32 %status, -2',
              '  %ok = or i1 %ok0, %ok1',
              '  br i1 %ok, label %done, label %raised',
              'raised:', '  ret i32 1',
              'done:']
    if exp.c_ret is not None:
        cty = _ll_of_c(exp.c_ret)
        lines.append('  %%r = load %s, ptr %%retslot, align 8' % ret_ll)
        if ret_ll == cty:
            lines.append('  store %s %%r, ptr %s, align 1' % (cty, out))
        elif ret_ll == 'i1' and cty == 'i8':
            lines += ['  %rb = zext i1 %r to i8',
                      '  store i8 %%rb, ptr %s, align 1' % out]
        elif cty == 'i8' and ret_ll.startswith('i'):
            lines += ['  %rnz = icmp ne %s %%r, 0' % ret_ll,
                      '  %rb = zext i1 %rnz to i8',
                      '  store i8 %%rb, ptr %s, align 1' % out]
        else:
            raise AotError("export %s: result is %s in the kernel, %s in C"
                           % (exp.c_name, ret_ll, cty))
    lines += ['  ret i32 0', '}']
    decl = 'declare i32 @%s(%s)' % (kernel, ', '.join(kparams))
    if clear:
        decl += '\ndeclare void @%s()' % clear
    return decl, '\n'.join(lines)


# -- the secret passes on the target ---------------------------------------

def _target_machine(target):
    import llvmlite.binding as ll
    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    arch, triple, cpu, _, _ = TARGETS[target]
    t = ll.Target.from_triple(triple)
    return t.create_target_machine(cpu=cpu, features='', opt=3, reloc='pic',
                                   codemodel='default')


def _optimize(mod, tm):
    from numba.core.codegen import create_pass_builder
    pb = create_pass_builder(tm, opt=3, loop_vectorize=True,
                             slp_vectorize=True)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)


def _symbols(mod):
    funcs = {f.name for f in mod.functions if not f.is_declaration}
    data = {g.name for g in mod.global_variables}
    return funcs, data


def _finish(text, tm, arch, extra_allowance, module_name, skip=()):
    """The JIT's post-O3 passes for ``tm``: (text, bounds, frames, reports)."""
    from secretjit.codegen import finish_secret_module
    return finish_secret_module(text, tm, arch, extra_allowance=extra_allowance,
                                module_name=module_name, skip=skip)


def _runtime_text(triple, data_layout):
    import inspect
    from secretjit import runtime
    if 'standalone' in inspect.signature(runtime.build_module).parameters:
        return runtime.build_module(triple, data_layout, standalone=True)
    # TODO(lead): without standalone=True the varsize fallbacks carry numba's
    # host C helper addresses; they are never taken in an AOT library (every
    # MemInfo there comes from this runtime) but must not be shipped.
    return runtime.build_module(triple, data_layout)


def _runtime_depths(tm, arch, triple, data_layout):
    """Stack bounds of the runtime's entry points, as the JIT computes them."""
    import llvmlite.binding as ll
    from secretjit import passes, runtime, stack_bound
    from secretjit.codegen import NUMBA_DTOR_ALLOWANCE
    text = str(ll.parse_assembly(_runtime_text(triple, data_layout)))
    text, _ = passes.zero_call_used_regs(text)
    mod = ll.parse_assembly(text)
    funcs, data = _symbols(mod)
    asm = str(tm.emit_assembly(mod))
    roots = [r for r in runtime.INTERPOSED + runtime.CALLBACKS if r in funcs]
    bounds = stack_bound.compute_bounds(
        asm, funcs, roots, arch, data=data,
        indirect_allowance=NUMBA_DTOR_ALLOWANCE
        + stack_bound.external_allowance('malloc'),
        extra_allowance=_c_allowances(), module_name='secretjit.runtime')
    depths = {name: b.depth for name, b in bounds.items()}
    depths['NRT_MemInfo_call_dtor'] = NUMBA_DTOR_ALLOWANCE + max(
        depths[name] for name in runtime.CALLBACKS if name in depths)
    return depths


def _c_allowances():
    out = {}
    out['secretjit_libc_getrandom'] = 512
    out['secretjit_libc_errno_location'] = 64
    out[SCRUB_FN] = 0           # frameless leaf: writes only the scrubbed span
    return out


# llvmlite's LLVM has an assembly parser for the host only, and LLVM cannot
# emit inline asm for a target without one.  Cross builds therefore call the
# boundary's stack scrub as a frameless leaf function (nrt_aot.c): on AArch64
# a call leaves sp unchanged, so it zeroes exactly the bytes the inline asm
# would; on x86-64 (built on another host; untested) it skips the slot of its
# own return address.
SCRUB_FN = 'secretjit_aot_scrub'
_CROSS_SCRUB = ('aarch64', 'x86_64')


def _outline_scrub(text, arch):
    from secretjit.passes.boundary import SCRUB_ASM
    asm, constraints = SCRUB_ASM[arch]
    needle = 'call void asm sideeffect "%s", "%s"(' % (asm, constraints)
    text = text.replace(needle, 'call void @%s(' % SCRUB_FN)
    return text + 'declare void @%s(i64)\n' % SCRUB_FN


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


def build_ir(exports, kernels, target, secret=True):
    """Compile ``exports`` for ``target``: (object bytes, info dict)."""
    import llvmlite.binding as ll
    from secretjit import passes
    arch, triple, _, _, _ = TARGETS[target]
    tm = _target_machine(target)
    data_layout = str(tm.target_data)
    # one module: kernels and their call trees, runtime, wrappers
    mods = {}
    for kernel, text, _ in kernels:
        mods.setdefault(kernel, text)
    main = None
    for text in mods.values():
        m = ll.parse_assembly(text)
        if main is None:
            main = m
        else:
            main.link_in(m)
    main.link_in(ll.parse_assembly(_runtime_text(triple, data_layout)))
    decls, wrappers = [], []
    for exp, (kernel, text, ret_ll) in zip(exports, kernels):
        decl, wrapper = _wrapper_ir(
            exp, kernel, _kernel_params(text, kernel), ret_ll,
            clear=CLEAR_VREGS if secret else None)
        decls.append(decl)
        wrappers.append(wrapper)
    decl_lines = sorted({line for d in decls for line in d.splitlines()})
    main.link_in(ll.parse_assembly('\n'.join(decl_lines + wrappers) + '\n'))
    names = {exp.c_name for exp in exports}
    text = _module_text_fixups(str(main), names, secret)
    text = re.sub(r'^target triple = .*$', 'target triple = "%s"' % triple,
                  text, count=1, flags=re.M)
    text = re.sub(r'^target datalayout = .*$',
                  'target datalayout = "%s"' % data_layout, text, count=1,
                  flags=re.M)
    if secret:
        text, report = passes.insert_boundaries(
            text, [(exp.c_name, k[0]) for exp, k in zip(exports, kernels)],
            arch)
    if arch in _CROSS_SCRUB and arch != _host_arch():
        text = _outline_scrub(text, arch)
        text = passes.lower_declassify(text)[0]   # its asm only marks the JIT's check
    if arch != 'x86_64':
        x86 = sorted(set(re.findall(r'@(llvm\.x86\.[\w.]+)', text)))
        if x86:
            raise AotError("x86-only intrinsics in the IR for %s: %s (set "
                           "SECRETJIT_NO_SHANI=1? numba compiled for the host "
                           "CPU?)" % (arch, ', '.join(x86)))
    mod = ll.parse_assembly(text)
    mod.triple = triple
    mod.data_layout = data_layout
    mod.verify()
    _optimize(mod, tm)
    text = str(mod)
    if arch in _CROSS_SCRUB and arch != _host_arch() and re.search(
            r'\bcall [^\n]*? asm (?:sideeffect |alignstack |inteldialect |unwind )*"'
            r'|^module asm', text, re.M):
        # LLVM would abort the process emitting it (no asm parser).
        raise AotError("inline assembly in the code for %s (an intrinsic "
                       "with inline asm, e.g. secretjit.probes): llvmlite "
                       "cannot assemble it for a non-host target" % arch)
    bounds = {}
    reports = []
    if secret:
        extra = _c_allowances()
        extra.update(_runtime_depths(tm, arch, triple, data_layout))
        text, bounds, _, reports = _finish(
            text, tm, arch, extra, 'aot', skip=())
    mod = ll.parse_assembly(text)
    mod.triple = triple
    mod.data_layout = data_layout
    mod.verify()
    _check_symbols(mod, names)
    obj = tm.emit_object(mod)
    kmap = {exp.c_name: k[0] for exp, k in zip(exports, kernels)}
    info = {'depths': {c: bounds[k].depth for c, k in kmap.items()
                       if k in bounds},
            'reports': [str(r) for r in reports]}
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


# -- C side ----------------------------------------------------------------

def header_text(stem, exports, target):
    guard = 'SECRETJIT_AOT_%s_H' % re.sub(r'\W', '_', stem).upper()
    out = ['/* %s.h: secret kernels compiled ahead of time by secretjit for %s.'
           % (stem, target),
           ' * Link with -l%s (lib%s.so; it needs only libc and libm).'
           % (stem, stem),
           ' *',
           ' * C ABI of every function below:',
           ' *  - it returns an int32_t status: SECRETJIT_OK (0) on success,',
           ' *    SECRETJIT_ERAISED (1) when the kernel raised an exception',
           ' *    (exceptions never unwind into C), SECRETJIT_EINVAL (2) for a',
           ' *    NULL pointer with a positive length, a negative length or a',
           ' *    NULL result pointer (the kernel did not run);',
           ' *  - a 1-D array parameter x becomes (T *x, int64_t x_len), x_len',
           ' *    counting elements; arrays are read and written in place;',
           ' *  - a scalar parameter has the C type of the same width;',
           ' *  - a non-void result is written through the trailing pointer',
           ' *    ret, only when the status is SECRETJIT_OK.',
           ' * Erasure: when a call returns, the call-clobbered registers are',
           ' * zero (except the status register); the call tree ran on the',
           " * thread's secret stack (locked, excluded from core dumps), which",
           ' * is zeroed, or, where none can be set up, on the caller\'s stack,',
           ' * whose bytes it wrote below the caller\'s stack pointer are zeroed;',
           ' * every heap block the kernel allocated came from the secret arena',
           ' * and has been wiped.  Arguments and results are the caller\'s',
           ' * memory and are not erased.  Run-time settings: SECRETJIT_STACK_SIZE',
           ' * (secret stack per thread, default 256K), SECRETJIT_ARENA_SIZE',
           ' * (secret heap, default 256M).',
           ' * Thread-safe: functions may run concurrently on different threads.',
           ' */',
           '#ifndef %s' % guard, '#define %s' % guard, '',
           '#include <stdbool.h>', '#include <stdint.h>', '']
    for name, value, doc in STATUS:
        out.append('#define %s %d  /* %s */' % (name, value, doc))
    out += ['', '#ifdef __cplusplus', 'extern "C" {', '#endif', '']
    for exp in exports:
        doc = (getattr(exp.pyfunc, '__doc__', None) or '').strip()
        doc = doc.splitlines()[0] if doc else ''
        out.append('/* %s%s  [%s.%s: %s] */' % (
            doc.replace('*/', '* /'), ' ' if doc else '',
            exp.pyfunc.__module__, exp.pyfunc.__qualname__, exp.signature))
        params = ', '.join('%s%s%s' % (t, '' if t.endswith('*') else ' ', n)
                           for t, n in exp.c_params) or 'void'
        out.append('int32_t %s(%s);' % (exp.c_name, params))
        out.append('')
    out += ['#ifdef __cplusplus', '}', '#endif', '', '#endif', '']
    return '\n'.join(out)


def _run(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AotError("%s failed (%s):\n%s%s" % (
            what, ' '.join(argv), proc.stdout, proc.stderr))
    return proc


def link_library(obj_path, exports, target, outpath, tmp, secret=True):
    cc = toolchain(target)
    objs = [obj_path]
    # Control builds (tests only) swap the arena for malloc without wiping.
    extra = [] if secret else ['-DSECRETJIT_AOT_CONTROL']
    for src in RUNTIME_SOURCES:
        path = os.path.join(CSRC, src)
        if not os.path.exists(path) or (not secret and src == 'arena.c'):
            continue
        o = os.path.join(tmp, src[:-2] + '.o')
        _run(cc + CFLAGS + extra + ['-I', CSRC, '-c', path, '-o', o],
             'compiling %s' % src)
        objs.append(o)
    script = os.path.join(tmp, 'exports.map')
    with open(script, 'w') as f:
        f.write('{\n  global:\n%s  local: *;\n};\n' % ''.join(
            '    %s;\n' % e.c_name for e in exports))
    _run(cc + ['-shared', '-o', outpath] + objs + [
        '-Wl,--version-script=' + script, '-Wl,-z,noexecstack',
        '-Wl,--no-undefined', '-Wl,-z,relro', '-Wl,-z,now', '-lm'],
        'linking %s' % os.path.basename(outpath))


def main(request):
    import importlib.util
    import tempfile
    import secretjit  # noqa: F401  (initializes LLVM)
    from secretjit import aot
    path = request['module']
    target = request.get('target')
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
    variants = request.get('variants') or [dict(
        target=target, outdir=request.get('outdir'),
        secret=request.get('secret', True))]
    import time
    t0 = time.perf_counter()
    kernels = compile_exports(exports)
    t1 = time.perf_counter()
    results = []
    for v in variants:
        t2 = time.perf_counter()
        outdir = v['outdir']
        os.makedirs(outdir, exist_ok=True)
        lib = os.path.join(outdir, 'lib%s.so' % stem)
        header = os.path.join(outdir, '%s.h' % stem)
        obj, info = build_ir(exports, kernels, v['target'],
                             secret=v.get('secret', True))
        with tempfile.TemporaryDirectory(prefix='secretjit-aot-') as tmp:
            opath = os.path.join(tmp, '%s.o' % stem)
            with open(opath, 'wb') as f:
                f.write(obj)
            if request.get('keep'):
                shutil.copy(opath, os.path.join(outdir, '%s.o' % stem))
            link_library(opath, exports, v['target'], lib, tmp,
                         secret=v.get('secret', True))
        with open(header, 'w') as f:
            f.write(header_text(stem, exports, v['target']))
        info.update(library=lib, header=header, target=v['target'],
                    secret=v.get('secret', True),
                    exports=[e.c_name for e in exports],
                    seconds_numba=round(t1 - t0, 2),
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
        if isinstance(exc, NumbaError):    # incl. SecretPolicyError
            sys.stderr.write('%sAotError %s\n' % (ERROR_MARK, json.dumps(
                'an export does not compile: %s: %s'
                % (type(exc).__name__, exc))))
            sys.exit(1)
        sys.stderr.write('%sAotError %s\n' % (ERROR_MARK, json.dumps(
            'internal error: %s: %s' % (type(exc).__name__, exc))))
        sys.exit(1)
