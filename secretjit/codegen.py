"""Code generation for the secret target: numba's JIT codegen plus the passes.

:class:`SecretCodeLibrary` runs :mod:`secretjit.pipeline` over numba's final
module (boundaries before -O3; internalization, register zeroing and the
computed stack-scrub depths after it).  :class:`SecretCodegen` owns a JIT engine of its
own, into which the wiping allocator of :mod:`secretjit.arena_nrt` is loaded
first, so its NRT symbols shadow numba's for secret code only.
"""

import glob
import hashlib
import os
import sys
import types

import llvmlite.binding as ll
from numba.core.codegen import JITCPUCodegen, JITCodeLibrary

from . import (arena_nrt, channels, constant_time, passes, pipeline,
               secretmem, stack_bound)
from .stage_times import timed
from .passes.textir import Module
from .pipeline import host_arch, host_has_sve  # noqa: F401 (probes import host_arch)
from .stack_bound import StackBound

VERSION = '0.1'


def _source_digest():
    """Hash of the code that shapes secret object code (passes, bounds, runtime).

    Part of the cache key, so a cached kernel is never reused across changes
    to the erasure machinery.
    """
    global _DIGEST
    if _DIGEST is None:
        h = hashlib.sha256()
        mods = [arena_nrt, passes, pipeline, secretmem, stack_bound,
                sys.modules[__name__]]
        for package in (passes, stack_bound):
            mods += [m for m in vars(package).values()
                     if isinstance(m, types.ModuleType)]
        # the target decides which libraries get boundaries; policy and
        # intrinsics shape what kernels may compile to
        mods += [sys.modules[name] for name in (
            'secretjit.target', 'secretjit.policy', 'secretjit.intrinsics',
            'secretjit.channels', 'secretjit.channel_rules',
            'secretjit.constant_time')
            if name in sys.modules]
        paths = {m.__file__ for m in mods}
        # the vetted kernels' IR helpers (kernels/_fe51.py, _simd.py, ...): numba's
        # cache checks only a kernel's own file, not the files of what it calls
        kernels = os.path.join(os.path.dirname(__file__), 'kernels')
        paths.update(glob.glob(os.path.join(kernels, '_*.py')))
        # the runtime's machine code: its entries' (hot) depths are read
        # from it and written into the kernels' boundaries
        if os.path.exists(secretmem.library_path()):
            paths.add(secretmem.library_path())
        for path in sorted(paths):
            with open(path, 'rb') as f:
                h.update(f.read())
        _DIGEST = h.hexdigest()[:16]
    return _DIGEST


_DIGEST = None


class SecretCodeLibrary(JITCodeLibrary):
    """A JIT code library whose final module goes through the secret passes."""

    def __init__(self, codegen, name):
        super().__init__(codegen, name)
        self._secret_entries = []       # (wrapper, kernel) pairs
        self.pass_reports = []
        self.stack_bounds = {}          # kernel name -> StackBound
        self.frame_sizes = {}           # function name -> frame bytes analysed

    def add_secret_entry(self, wrapper, kernel):
        """Route calls from ``wrapper`` to ``kernel`` through a boundary."""
        self._raise_if_finalized()
        self._secret_entries.append((wrapper, kernel))

    def _wrappers(self):
        names = {w for w, _ in self._secret_entries}
        for lib in self._linking_libraries:
            if isinstance(lib, SecretCodeLibrary):
                names |= lib._wrappers()
        return names

    def _reparse(self, text):
        mod = ll.parse_assembly(text)
        mod.name = self._final_module.name
        mod.triple = self._final_module.triple
        mod.data_layout = self._final_module.data_layout
        return mod

    # Set by AOT builds (secretjit.aot): keep the final module's IR as it was
    # before any secret pass, in ``pre_secret_ir``, to recompile for a target.
    keep_pre_secret_ir = False
    pre_secret_ir = None

    def _optimize_final_module(self):
        arch = self._codegen.arch
        if self.keep_pre_secret_ir:
            self.pre_secret_ir = str(self._final_module)
        with timed('secret boundaries (text IR)'):
            # a helper library (no entries) has no call to reroute: no parse
            mod = (Module.parse(str(self._final_module))
                   if self._secret_entries else None)
            self.pass_reports = pipeline.before_optimization(
                mod, self._secret_entries, arch, self._codegen.epilogue)
            if self.pass_reports[0]['boundaries_added']:
                self._final_module = self._reparse(mod.text())

        super()._optimize_final_module()            # numba's -O3 pipeline

        # the constant-time check reads the line tables and strips them
        with timed('secret constant-time check'):
            line_text = str(self._final_module)
            text = constant_time.check_module(self, line_text)
        result = pipeline.after_optimization(
            text, self._codegen._tm, arch,
            extra_allowance=dict(channels.current_stack_allowance(),
                                 **self._codegen.runtime_depths),
            module_name=self.name, skip=self._wrappers(),
            reparse=self._reparse, line_text=line_text,
            # a helper library's line tables: linked with, run without
            finish=lambda final: constant_time.strip_for_codegen(self, final))
        self.pass_reports.extend(result.reports)
        self.stack_bounds, self.frame_sizes = result.bounds, result.frames
        self._final_module = result.module

    def _get_module_for_linking(self):
        return constant_time.module_for_linking(
            self, super()._get_module_for_linking)

    def finalize(self):
        with constant_time.hardened_backend(self._codegen.arch):
            super().finalize()

    def get_asm_str(self):
        with constant_time.hardened_backend(self._codegen.arch):
            return super().get_asm_str()

    def serialize_using_object_code(self):
        name, kind, data = super().serialize_using_object_code()
        bounds = {k: (b.depth, b.path, b.externals, b.hot)
                  for k, b in self.stack_bounds.items()}
        return name, kind, (data, bounds)

    @classmethod
    def _unserialize(cls, codegen, state):
        name, kind, data = state
        bounds = {}
        if kind == 'object':
            data, bounds = data
        self = super()._unserialize(codegen, (name, kind, data))
        self.stack_bounds = {k: StackBound(k, *b) for k, b in bounds.items()}
        return self


class SecretCodegen(JITCPUCodegen):
    """JIT codegen with its own engine, preloaded with the wiping runtime."""

    _library_class = SecretCodeLibrary

    def _customize_tm_features(self):
        # LLVM zeroes z0-z31 and p0-p15 ("zero-call-used-regs") only when it
        # compiles for SVE.  Where it misses SVE in /proc/cpuinfo (qemu-user
        # shows the host's), take the kernel's word for it.
        features = super()._customize_tm_features()
        if host_has_sve() and '+sve' not in features.split(','):
            features = ','.join([f for f in features.split(',')
                                 if f and f != '-sve'] + ['+sve'])
        return constant_time.harden_features(features, host_arch())

    def __init__(self, module_name):
        super().__init__(module_name)
        self.arch = host_arch()
        # the boundaries' vector/x87 zeroing for this CPU (None: LLVM's "all")
        self.epilogue = passes.register_epilogue(self.arch, self._tm_features)
        self.runtime_depths = {}
        self._install_runtime()

    def _install_runtime(self):
        with timed('secret runtime module'):
            arena_nrt.register_symbols()
            mod, self.runtime_depths = pipeline.arena_nrt_module(
                self._tm, self.arch, self._llvm_module.triple,
                self._data_layout)
            self._engine.add_module(mod)
            self._engine.finalize_object()
        self._runtime_module = mod

    def magic_tuple(self):
        # The secret stack's size bounds which kernels compile (bounded-stack).
        return super().magic_tuple() + ('secretjit', VERSION, _source_digest(),
                                        secretmem.stack_size())
