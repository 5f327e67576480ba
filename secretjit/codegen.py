"""Code generation for the secret target: numba's JIT codegen plus the passes.

:class:`SecretCodeLibrary` runs :mod:`passes` over numba's final module
(boundaries before -O3; internalization, register zeroing and the computed
stack-scrub depths after it).  :class:`SecretCodegen` owns a JIT engine of its
own, into which the wiping allocator of :mod:`secretjit.runtime` is loaded
first, so its NRT symbols shadow numba's for secret code only.
"""

import hashlib
import platform
import sys
import types

import llvmlite.binding as ll
from numba.core.codegen import JITCPUCodegen, JITCodeLibrary

from . import constant_time, passes, runtime, secretmem, stack_bound
from .passes.textir import Module
from .errors import SecretPolicyError
from .stack_bound import StackBound, compute_bounds

VERSION = '0.1'
# Stack allowance for numba's C destructor path (NRT_MemInfo_call_dtor,
# NRT_MemInfo_destroy, NRT_dealloc and the numba-generated item destructors
# they call back), on top of the secret runtime's own free path.  Measured:
# about 60 bytes of C frames per nesting level; 1 KiB covers a dozen levels.
NUMBA_DTOR_ALLOWANCE = 1024
_ARCH = {'x86_64': 'x86_64', 'amd64': 'x86_64', 'aarch64': 'aarch64',
         'arm64': 'aarch64'}


def _source_digest():
    """Hash of the code that shapes secret object code (passes, bounds, runtime).

    Part of the cache key, so a cached kernel is never reused across changes
    to the erasure machinery.
    """
    global _DIGEST
    if _DIGEST is None:
        h = hashlib.sha256()
        mods = [passes, runtime, secretmem, stack_bound, sys.modules[__name__]]
        mods += [m for m in vars(passes).values() if isinstance(m, types.ModuleType)]
        # the target decides which libraries get boundaries; policy and
        # intrinsics shape what kernels may compile to
        mods += [sys.modules[name] for name in (
            'secretjit.target', 'secretjit.policy', 'secretjit.intrinsics',
            'secretjit.constant_time')
            if name in sys.modules]
        for path in sorted({m.__file__ for m in mods}):
            with open(path, 'rb') as f:
                h.update(f.read())
        _DIGEST = h.hexdigest()[:16]
    return _DIGEST


_DIGEST = None


def host_arch():
    """The secret target's name for the host architecture."""
    return _ARCH.get(platform.machine().lower(), platform.machine().lower())


def host_has_sve():
    """Whether the kernel reports SVE on this AArch64 CPU (``AT_HWCAP``)."""
    if host_arch() != 'aarch64':
        return False
    import ctypes
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    return bool(libc.getauxval(16) & (1 << 22))     # AT_HWCAP, HWCAP_SVE


def _module_symbols(mod):
    """(defined function names, global variable names) of an LLVM module."""
    funcs = {f.name for f in mod.functions if not f.is_declaration}
    data = {g.name for g in mod.global_variables}
    return funcs, data


def finish_secret_module(text, tm, arch, extra_allowance=None,
                         module_name='<module>', skip=(), reparse=None,
                         stack_limit=None):
    """The secret passes that follow -O3, for any target machine ``tm``.

    Internalizes linkonce functions, adds register zeroing (``skip``: the
    wrappers, which run outside the secret call), computes each boundary's
    scrub depth from ``tm``'s assembly of the module and writes it in.
    Returns ``(ir_text, stack_bounds, frame_sizes, pass_reports)`` with the
    bounds keyed by kernel.  A call tree that needs more than ``stack_limit``
    bytes (default: the secret stack's size) is a ``bounded-stack`` policy
    error.
    """
    reparse = reparse or ll.parse_assembly
    reports = []
    text, report = passes.internalize_linkonce(text)
    reports.append(report)
    text, report = passes.zero_call_used_regs(text, skip=skip)
    reports.append(report)
    kernels = passes.placeholders(text)
    if not kernels:
        return text, {}, {}, reports
    # The analysis needs the machine code of the secret call trees only: the
    # wrappers (argument unboxing, result boxing; the bulk of a small
    # kernel's module) are compiled as stubs here, which saves code generation
    # time, and their frames are not reported.
    analysed = Module.parse(text)
    stubbed = set()
    for name in skip:
        fn = analysed.functions.get(name)
        if fn is not None:
            fn.body = ['  unreachable']
            stubbed.add(name)
    mod = reparse(analysed.text() if stubbed else text)
    funcs, data = _module_symbols(mod)
    asm = str(tm.emit_assembly(mod))
    # The secret stack holds the thunk's frame and, below it, the kernel's call
    # tree: bound the thunk.
    thunks = {passes.thunk_name(k): k for k in kernels}
    sizes = {}
    by_thunk = compute_bounds(asm, funcs, sorted(thunks), arch, data=data,
                              extra_allowance=extra_allowance,
                              module_name=module_name, frames=sizes)
    for name in stubbed:
        sizes.pop(name, None)
    bounds = {}
    for thunk, b in by_thunk.items():
        kernel = thunks[thunk]
        bounds[kernel] = StackBound(kernel, b.depth, b.path, b.externals)
    limit = secretmem.stack_size() if stack_limit is None else stack_limit
    for kernel, b in sorted(bounds.items()):
        if b.depth > limit:
            raise SecretPolicyError(
                'bounded-stack',
                "the call tree of %s may use %d bytes of stack (deepest path: "
                "%s), more than the %d-byte secret stack it runs on"
                % (stack_bound.readable(kernel), b.depth,
                   ' -> '.join(stack_bound.readable(n) for n, _ in b.path), limit),
                "move large local arrays to the heap (np.empty), or raise "
                "SECRETJIT_STACK_SIZE (e.g. SECRETJIT_STACK_SIZE=%dK)"
                % max(2 * b.depth // 1024, 512))
    text, report = passes.write_depths(
        text, {k: b.depth for k, b in bounds.items()})
    reports.append(report)
    return text, bounds, sizes, reports


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
        text, report = passes.insert_boundaries(
            str(self._final_module), self._secret_entries, arch)
        self.pass_reports = [report]
        if report['boundaries_added']:
            self._final_module = self._reparse(text)

        super()._optimize_final_module()            # numba's -O3 pipeline

        text = constant_time.check_module(self, str(self._final_module))
        text, self.stack_bounds, self.frame_sizes, reports = finish_secret_module(
            text, self._codegen._tm, arch,
            extra_allowance=self._codegen.runtime_depths, module_name=self.name,
            skip=self._wrappers(), reparse=self._reparse)
        self.pass_reports.extend(reports)
        self._final_module = self._reparse(constant_time.strip_for_codegen(self, text))

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
        bounds = {k: (b.depth, b.path, b.externals)
                  for k, b in self.stack_bounds.items()}
        return name, kind, (data, bounds)

    @classmethod
    def _unserialize(cls, codegen, state):
        name, kind, data = state
        bounds = {}
        if kind == 'object':
            data, bounds = data
        self = super()._unserialize(codegen, (name, kind, data))
        self.stack_bounds = {k: StackBound(k, d, p, e)
                             for k, (d, p, e) in bounds.items()}
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
        self.runtime_depths = {}
        self._install_runtime()

    def _install_runtime(self):
        runtime.register_symbols()
        text = str(ll.parse_assembly(runtime.build_module(
            self._llvm_module.triple, self._data_layout)))
        text, _ = passes.zero_call_used_regs(text)
        mod = ll.parse_assembly(text)
        mod.verify()
        funcs, data = _module_symbols(mod)
        asm = str(self._tm.emit_assembly(mod))
        roots = runtime.INTERPOSED + runtime.CALLBACKS
        # Calls through pointers here: a varsize payload's destructor (numba
        # IR that decrefs the items: a small frame, then NRT_decref's C path)
        # and numba's own C varsize functions for MemInfos numba's C code made
        # (a small frame, then malloc/free).
        bounds = compute_bounds(
            asm, funcs, roots, self.arch, data=data,
            indirect_allowance=NUMBA_DTOR_ALLOWANCE
            + stack_bound.external_allowance('malloc'),
            module_name='secretjit.runtime')
        depths = {name: b.depth for name, b in bounds.items()}
        # numba's C NRT_MemInfo_call_dtor runs a MemInfo's destructor (which
        # may release nested MemInfos) and then its allocator's free: a few
        # small C frames per nesting level around the callbacks above.
        depths['NRT_MemInfo_call_dtor'] = NUMBA_DTOR_ALLOWANCE + max(
            depths[name] for name in runtime.CALLBACKS)
        self.runtime_depths = depths
        self._engine.add_module(mod)
        self._engine.finalize_object()
        self._runtime_module = mod

    def magic_tuple(self):
        # The secret stack's size bounds which kernels compile (bounded-stack).
        return super().magic_tuple() + ('secretjit', VERSION, _source_digest(),
                                        secretmem.stack_size())
