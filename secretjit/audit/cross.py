"""Cross JIT objects: the AArch64 object code the JIT would load, built on any host.

Compiling every vetted kernel under qemu-aarch64 takes about 7 minutes of CPU
(numba and LLVM emulated), so the AArch64 JIT audit of all of them runs on the
host instead: a child interpreter (numba for the baseline CPU, no SHA-NI, no
object cache: :func:`secretjit.aot._build.worker_env`) compiles each kernel
with the secret target and keeps its library's final module as it was before
any secret pass (``SecretCodeLibrary.keep_pre_secret_ir``, as the AOT build
does); :func:`jit_object` then runs what :class:`secretjit.codegen.SecretCodeLibrary`
runs on that module, with an LLVM target machine made the way numba's JIT
makes its own on AArch64 (``reloc='default'``, ``codemodel='jitdefault'``,
``jit=True``, the secret target's hardening features): the boundaries, numba's
-O3 (the cheap pass, then the full one), the line tables stripped,
internalization, register zeroing, the stack bound and its depths written in;
and emits the object.  The runtime depths (the audit's allowances) come from
the secret runtime module built for the same machine.

The targets default to :data:`QEMU_JIT` (what the JIT under ``qemu-aarch64``
compiles for: CPU ``generic`` with SVE, the CPU features LLVM reads there)
and :data:`NO_SVE` (the same without SVE: a JIT on an AArch64 CPU without it).
``tests/test_aarch64.py`` checks that the cross object of a kernel and the
object the JIT loads under qemu agree on everything the audit checks.

Differences from the JIT, by construction: numba compiles on the host (its IR
is the same for both 64-bit little-endian targets once NRT_incref/decref get
their generic bodies, as in AOT builds; x86-only intrinsics are an error), and
the object is assembled by GNU as from LLVM's assembly: llvmlite has no AArch64
assembler on another host, so the scrub's inline asm is emitted empty with its
depth in x8 (the JIT lets the allocator choose the register) and put back into
the assembly, and the ``declassify`` markers are emitted empty with the same
constraints (:func:`passes.empty_inline_asm`, :func:`passes.restore_scrubs`).
"""

import json
import os
import pickle
import re
import subprocess
import sys
import tempfile

from .. import passes, pipeline
from ..stack_bound import StackBound

ARCH = 'aarch64'
ARCH_TARGET = 'aarch64-linux-gnu'            # its name in secretjit.aot.TARGETS
TRIPLE = 'aarch64-unknown-linux-gnu'
# (name, CPU, target features before the hardening ones): the JIT's choices
QEMU_JIT = ('qemu-jit', 'generic', '-aes,-rand,-sha2,+sve')
NO_SVE = ('no-sve', 'generic', '-aes,-rand,-sha2,-sve')
TARGETS = (QEMU_JIT, NO_SVE)


def target_machine(cpu, features):
    """The AArch64 TargetMachine numba's JIT codegen would make (secret target)."""
    import llvmlite.binding as ll

    from ..constant_time import harden_features
    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    return ll.Target.from_triple(TRIPLE).create_target_machine(
        cpu=cpu, features=harden_features(features, ARCH), opt=3,
        reloc='default', codemodel='jitdefault', jit=True)


def _optimize(llmod, tm):
    """numba's ``_optimize_final_module`` for ``tm``: the cheap pass, then the full one."""
    from numba.core import config
    from numba.core.codegen import (_parse_refprune_flags, create_pass_builder,
                                    remove_redundant_nrt_refct)  # noqa: F401
    refprune = config.LLVM_REFPRUNE_PASS
    cheap = create_pass_builder(tm, opt=config.OPT, loop_vectorize=config.LOOP_VECTORIZE,
                                slp_vectorize=False)
    pm = cheap.getModulePassManager()
    if config.OPT != 0:
        pm.add_loop_rotate_pass()
        pm.add_instruction_combine_pass()
        pm.add_jump_threading_pass()
    if refprune:
        pm.add_refprune_pass(_parse_refprune_flags())
    pm.run(llmod, cheap)
    if not refprune:
        llmod = remove_redundant_nrt_refct(llmod)
    full = create_pass_builder(tm, opt=config.OPT, loop_vectorize=config.LOOP_VECTORIZE,
                               slp_vectorize=config.SLP_VECTORIZE)
    pm = full.getModulePassManager()
    if refprune:
        pm.add_refprune_pass(_parse_refprune_flags())
    pm.run(llmod, full)
    return llmod


def jit_object(text, entries, skip, cpu, features):
    """``(object bytes, runtime depths, {kernel: StackBound})`` of one library.

    ``text``: the library's final module before any secret pass; ``entries``:
    its ``(wrapper, kernel)`` pairs; ``skip``: the wrappers (no register zeroing).
    """
    import llvmlite.binding as ll

    from ..constant_time import hardened_backend
    from ..passes.textir import Module
    tm = target_machine(cpu, features)
    data_layout = str(tm.target_data)

    def reparse(src):
        mod = ll.parse_assembly(src)
        mod.triple, mod.data_layout = TRIPLE, data_layout
        return mod
    with hardened_backend(ARCH):
        _, depths = pipeline.arena_nrt_module(tm, ARCH, TRIPLE, data_layout)
        mod = Module.parse(text)
        passes.strip_target_attributes(mod)
        passes.generic_refcount(mod)         # numba optimized them for the host
        passes.neutral_atomics(mod)
        pipeline.before_optimization(mod, entries, ARCH)
        x86 = sorted(set(re.findall(r'@(llvm\.x86\.[\w.]+)', mod.text())))
        if x86:
            raise ValueError("x86-only intrinsics in the IR: %s" % ', '.join(x86))
        llmod = reparse(mod.text())
        llmod = _optimize(llmod, tm)
        text, _ = passes.strip_debug_info(str(llmod))
        text, emptied = passes.empty_inline_asm(text, ARCH)
        result = pipeline.after_optimization(text, tm, ARCH, extra_allowance=depths,
                                             module_name='cross', skip=skip, reparse=reparse)
        asm = passes.restore_scrubs(tm.emit_assembly(result.module), ARCH,
                                    emptied['scrubs_emptied'])
    return assemble(asm), depths, result.bounds


def assemble(asm):
    """The relocatable object of AArch64 assembly ``asm``, by GNU as.

    llvmlite has no AArch64 assembler on another host, which the inline asm
    of the boundary's scrub and the ``declassify`` markers need, so the
    object is assembled from LLVM's assembly output (SVE allowed).
    """
    import shutil
    tool = shutil.which('aarch64-linux-gnu-as')
    if tool is None:
        raise RuntimeError("aarch64-linux-gnu-as not found: apt-get install "
                           "binutils-aarch64-linux-gnu (or gcc-aarch64-linux-gnu)")
    with tempfile.TemporaryDirectory(prefix='secretjit-cross-as-') as tmp:
        src, obj = os.path.join(tmp, 'm.s'), os.path.join(tmp, 'm.o')
        with open(src, 'w') as fh:
            fh.write(asm)
        proc = subprocess.run([tool, '-march=armv8-a+sve', '-o', obj, src],
                              capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError('aarch64-linux-gnu-as failed:\n' + proc.stderr[-4000:])
        with open(obj, 'rb') as fh:
            return fh.read()


def _child(cases_path, out_path, only='', targets=''):
    """In the worker: compile every case on the host, build its objects for each target."""
    import numba

    from ..codegen import SecretCodeLibrary
    from ..ctcheck import _load_module
    from ..decorators import secret_jit
    SecretCodeLibrary.keep_pre_secret_ir = True
    targets = [tuple(t) for t in json.loads(targets)] if targets else TARGETS
    out = []
    for kernel, args in _load_module(cases_path):
        if not kernel.__module__.startswith('secretjit.kernels') or (
                only and kernel.py_func.__qualname__ not in only.split(',')):
            continue                         # the vetted kernels only
        opts = {k: v for k, v in kernel.targetoptions.items() if k != 'cache'}
        fresh = secret_jit(**opts)(kernel.py_func)
        sig = tuple(numba.typeof(a) for a in args)
        fresh.compile(sig)
        lib = fresh.overloads[sig].library
        for name, cpu, features in targets:
            obj, depths, bounds = jit_object(lib.pre_secret_ir, lib._secret_entries,
                                             lib._wrappers(), cpu, features)
            out.append((kernel.py_func.__qualname__, name, obj, depths,
                        {k: (b.depth, b.path, b.externals, b.hot) for k, b in bounds.items()}))
    with open(out_path, 'wb') as fh:
        pickle.dump(out, fh)


def cross_objects(cases_path, only=(), targets=TARGETS):
    """``[(kernel, target name, object, allowances, stack_bounds)]`` for the
    vetted kernels (those of :mod:`secretjit.kernels`; ``only``: these names)
    of a ``ctcheck_cases()`` module and each ``(name, CPU, features)`` of
    ``targets``, built in one child process."""
    from ..aot._build import worker_env
    with tempfile.TemporaryDirectory(prefix='secretjit-cross-') as tmp:
        out = os.path.join(tmp, 'objects.pickle')
        env = dict(os.environ, **worker_env([{'target': ARCH_TARGET}], tmp))
        proc = subprocess.run([sys.executable, '-m', 'secretjit.audit.cross', cases_path, out,
                               ','.join(only), json.dumps(targets)],
                              env=env, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError('cross JIT build failed:\n' + proc.stderr[-4000:])
        with open(out, 'rb') as fh:
            rows = pickle.load(fh)
    return [(k, t, obj, depths, {n: StackBound(n, *b) for n, b in bounds.items()})
            for k, t, obj, depths, bounds in rows]


def summary(data, allowances=None, stack_bounds=None):
    """What the audit checks of an object, per boundary: the verdicts, the
    registers it requires and misses, the depths, the calls (JSON-ready)."""
    from . import audit_object
    from .core import BOUNDARY
    from .elf import ObjectCode
    obj = ObjectCode(data, allowances)
    required = obj.arch.required(obj, [obj.fn(n) for n in obj.functions
                                       if n.startswith(BOUNDARY)])
    out = {}
    for r in audit_object(data, allowances=allowances, stack_bounds=stack_bounds):
        row = dict(vars(r))
        row['required'] = sorted(required)
        out[row.pop('name')] = row
    return out


if __name__ == '__main__':
    _child(*sys.argv[1:5])
