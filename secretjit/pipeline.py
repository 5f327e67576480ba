"""The secret pipeline: which passes run, in which order, for the JIT and the AOT.

The JIT (:class:`secretjit.codegen.SecretCodeLibrary`) and the AOT build
(:mod:`secretjit.aot._build`) both call this module; they differ only in how
the module is obtained (numba's final module / the exports linked for a
target) and how its object code is loaded or linked, the way numba's
``CodeLibrary.finalize`` serves its JIT and AOT libraries alike::

    JIT: numba's final module        AOT: exports + runtime + C wrappers
         |                                 | aot_prepare (retargeting passes)
         | before_optimization             | before_optimization
         |   insert_boundaries             |   insert_boundaries [, outline_scrub]
      numba's -O3                       optimize (-O3 for the target machine)
         | after_optimization               | after_optimization
         |   internalize_linkonce           |   (same)
         |   zero_call_used_regs
         |   stub_functions (analysis copy) -> target assembly -> compute_bounds
         |   use_exact_calls (exact trees: their hot depth), write_depths
      MCJIT engine                     object file -> cc -shared

A stage parses its module once (:class:`passes.textir.Module`) and passes
that object from pass to pass; LLVM parses the result once at the stage's end
(string attributes such as ``"zero-call-used-regs"`` can only enter through
text, see ``passes.textir``).  Runtime depths, symbol sets, allowances and
the host architecture are worked out here and nowhere else.
"""

import platform
import re
from dataclasses import dataclass, field

import llvmlite.binding as ll

from . import arena_nrt, line_tables, passes, secretmem, stack_bound
from .errors import SecretPolicyError
from .passes.textir import Module
from .stack_bound import StackBound, compute_bounds
from .stack_bound import native
from .stack_bound.destructors import CALL_DTOR_OWN, CALL_DTOR_PLAIN, for_module
from .stack_bound.vregs import tree_registers
from .stage_times import timed

_ARCH = {'x86_64': 'x86_64', 'amd64': 'x86_64', 'aarch64': 'aarch64',
         'arm64': 'aarch64'}
# Stack allowance for numba's C destructor path (NRT_MemInfo_call_dtor,
# NRT_MemInfo_destroy, NRT_dealloc and the numba-generated item destructors
# they call back), on top of the secret runtime's own free path.  Measured:
# about 60 bytes of C frames per nesting level; 1 KiB covers a dozen levels.
# For plain MemInfos (no nesting) the x86-64 JIT reads numba's frames from its
# machine code instead (stack_bound.native.numba_dtor_frames).
NUMBA_DTOR_ALLOWANCE = 1024
# The AOT libraries' out-of-line stack scrub (passes.outline_scrub) is a
# frameless leaf that writes only the span it scrubs.
AOT_ALLOWANCE = {passes.SCRUB_FN: 0}


def host_arch():
    """The secret target's name for the host architecture."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


def host_has_sve():
    """Whether the kernel reports SVE on this AArch64 CPU (``AT_HWCAP``)."""
    if host_arch() != 'aarch64':
        return False
    import ctypes
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    return bool(libc.getauxval(16) & (1 << 22))     # AT_HWCAP, HWCAP_SVE


def module_symbols(mod):
    """(defined function names, global variable names) of an LLVM module."""
    funcs = {f.name for f in mod.functions if not f.is_declaration}
    data = {g.name for g in mod.global_variables}
    return funcs, data


@dataclass
class SecretModule:
    """A module after the secret passes: what the JIT loads or the AOT emits."""
    module: object                              # llvmlite ModuleRef
    bounds: dict = field(default_factory=dict)  # kernel -> StackBound
    frames: dict = field(default_factory=dict)  # function -> frame bytes analysed
    reports: list = field(default_factory=list)  # PassReport per pass run


def arena_nrt_module(tm, arch, triple, data_layout, standalone=False,
                     extra_allowance=None):
    """The NRT entry points on the secret arena (``secretjit.arena_nrt``) for ``tm``.

    Returns ``(module, depths)``: the runtime's LLVM module with register
    zeroing, and the stack depth of each entry point the kernels call or
    numba's C runtime calls back, from ``tm``'s assembly of it.
    """
    mod = ll.parse_assembly(arena_nrt.build_module(
        triple, data_layout, standalone=standalone))
    # Inline the module's own layers (NRT entry -> MemInfo -> counted -> raw
    # block: a call, a frame and the register zeroing each), so that a
    # secret allocation costs one call into the C runtime, as AOT libraries
    # get from their whole-library optimisation.
    from numba.core.codegen import create_pass_builder
    pb = create_pass_builder(tm, opt=2)
    pb.getModulePassManager().run(mod, pb)
    text, _ = passes.zero_call_used_regs(str(mod))
    mod = ll.parse_assembly(text)
    mod.verify()
    funcs, data = module_symbols(mod)
    asm = str(tm.emit_assembly(mod))
    roots = [r for r in arena_nrt.INTERPOSED + arena_nrt.CALLBACKS
             + arena_nrt.LIBC_SHADOWED if r in funcs]
    # The JIT's runtime entries from _secretmem's machine code (x86-64;
    # elsewhere, and in AOT libraries, their allowances).
    runtime = {} if standalone else native.runtime_bounds(arch)
    extra_allowance = dict(runtime, **(extra_allowance or {}))
    # Calls through pointers here: a varsize payload's destructor (numba IR
    # that decrefs the items: a small frame, then NRT_decref's C path) and
    # numba's own C varsize functions for MemInfos numba's C code made (a
    # small frame, then malloc/free).
    bounds = compute_bounds(
        asm, funcs, roots, arch, data=data,
        indirect_allowance=NUMBA_DTOR_ALLOWANCE
        + stack_bound.external_allowance('malloc'),
        extra_allowance=extra_allowance, module_name='secretjit.arena_nrt')
    # marked (native.marked_depth): exact but for marked C library calls
    depths = {name: native.marked_depth(name, b.depth, b.externals, b.hot)
              for name, b in bounds.items()}
    # numba's C NRT_MemInfo_call_dtor runs a MemInfo's destructor (which may
    # release nested MemInfos) and then its allocator's free: a few small C
    # frames per nesting level around the callbacks above.
    depths[stack_bound.CALL_DTOR] = NUMBA_DTOR_ALLOWANCE + max(
        depths[name] for name in arena_nrt.CALLBACKS if name in depths)
    if not standalone:
        # A JIT module that makes no varsize MemInfo: the arena's free, or,
        # for a MemInfo numba's C runtime made, its C destructor (a memset)
        # and libc's free (stack_bound.destructors.for_module).
        # numba's C frames there are read from its machine code where they
        # can be (x86-64 host: stack_bound.native), else the allowance.
        frames = native.numba_dtor_frames(arch)
        frames = NUMBA_DTOR_ALLOWANCE if frames is None else frames
        depths[CALL_DTOR_PLAIN] = frames + max(
            depths['secretjit_ea_free'], stack_bound.external_allowance('free'),
            stack_bound.external_allowance('memset'))
        # ... and one whose kernels take only arrays, scalars and tuples of
        # them: only arena MemInfos die inside (destructors.closed_arguments).
        depths[CALL_DTOR_OWN] = native.dtor_own_depth(
            arch, frames, depths['secretjit_ea_free'])
    return mod, depths


def before_optimization(mod, entries, arch, epilogue=None, inline=()):
    """Passes before -O3 on a :class:`Module`: returns the reports.
    ``epilogue``: :func:`passes.register_epilogue` for the target (JIT);
    ``inline``: kernels their thunk may inline (:func:`passes.insert_boundaries`).
    Without ``entries`` nothing is rerouted and ``mod`` may be None (the JIT
    does not parse a helper library's module for it)."""
    if not entries:
        return [passes.PassReport('insert_boundaries')]
    _, report = passes.insert_boundaries(mod, entries, arch, epilogue, inline)
    return [report]


def after_optimization(text, tm, arch, extra_allowance=None,
                       module_name='<module>', skip=(), reparse=None,
                       stack_limit=None, line_text=None, finish=None,
                       clear=None, keep_vex_xmm=None):
    """The secret passes that follow -O3, for any target machine ``tm``.

    Internalizes linkonce functions, adds register zeroing (``skip``: the
    wrappers, which run outside the secret call), computes each boundary's
    scrub depth from ``tm``'s assembly of the module and writes it in.
    ``reparse`` turns the final text into an LLVM module (default
    ``llvm.parse_assembly``).  A call tree that needs more than
    ``stack_limit`` bytes (default: the secret stack's size) is a
    ``bounded-stack`` policy error, and so is an external callee without a
    measured or declared allowance (named at its Python line when
    ``line_text``, the module with numba's line tables, is given).
    ``finish(text)`` edits the final text before ``reparse`` (the JIT strips
    a helper library's line tables there: one parse instead of two).
    ``clear``: the function AOT wrappers call after the kernel to clear the
    vector registers the build's ISA cannot name; the wrappers of exact
    trees whose written registers are known drop it (:func:`passes.drop_clears`).
    ``keep_vex_xmm``: :func:`passes.use_exact_calls`' speed choice (default
    :data:`passes.epilogue.KEEP_VEX_XMM`).
    """
    reparse = reparse or ll.parse_assembly

    def final(text):
        return reparse(text if finish is None else finish(text))
    with timed('secret internalize + zero regs'):
        mod = Module.parse(text)
        reports = [passes.internalize_linkonce(mod)[1],
                   passes.zero_call_used_regs(mod, skip=skip)[1]]
        kernels = passes.placeholders(mod)
        if not kernels:
            return SecretModule(final(mod.text()), reports=reports)
    extra_allowance = for_module(extra_allowance, text)
    try:
        bounds, frames, written = _stack_bounds(mod, tm, arch, kernels, skip,
                                                extra_allowance, module_name, reparse)
    except SecretPolicyError as err:
        if not hasattr(err, 'callee'):
            raise
        if line_text is not None and '!dbg' not in line_text:
            line_tables.request()       # to name the call's line
        raise stack_bound.unknown.with_location(err, line_text) from None
    check_stack_limit(bounds, stack_limit)
    with timed('secret write depths + reparse'):
        # the exact calls first: they take a tree's hot depth (StackBound.hot),
        # the in-place fallbacks and the plain calls its whole bound
        exact = passes.exact_kernels(bounds)
        reports.append(passes.use_exact_calls(
            mod, exact, written=written, keep_vex_xmm=keep_vex_xmm,
            depths={k: passes.exact_depth(bounds[k].hot, arch) for k in exact})[1])
        reports.append(passes.write_depths(
            mod, {k: b.depth for k, b in bounds.items()})[1])
        if clear is not None:
            reports.append(passes.drop_clears(mod, written, clear)[1])
        return SecretModule(final(mod.text()), bounds, frames, reports)


def _stack_bounds(mod, tm, arch, kernels, skip, extra_allowance, module_name,
                  reparse):
    """``({kernel: StackBound}, {function: frame}, {exact kernel: the
    registers its boundary and tree can write}, stack_bound.vregs)`` from
    ``tm``'s assembly."""
    # The analysis needs the machine code of the secret call trees only: the
    # wrappers (argument unboxing, result boxing; the bulk of a small
    # kernel's module) are compiled as stubs here, which saves code
    # generation time, and their frames are not reported.
    with timed('secret stack bound: stub + parse'):
        analysed = mod.copy()
        stubbed = [name for name in skip if name in analysed.functions]
        passes.stub_functions(analysed, stubbed)
        analysed_text = analysed.text()
        llmod = reparse(analysed_text)
        funcs, data = module_symbols(llmod)
    with timed('secret stack bound: emit assembly'):
        asm = str(tm.emit_assembly(llmod))
    # The secret stack holds the thunk's frame and, below it, the kernel's
    # call tree: bound the thunk (its hot depth is the exact call's).  The
    # in-place fallback calls the kernel itself, which LLVM may also have
    # inlined into the thunk (passes.boundary): the whole bound, which the
    # fallback's scrub and the plain call take, is the deeper of the two.
    thunks = {passes.thunk_name(k): k for k in kernels}
    frames = {}
    with timed('secret stack bound: analysis'):
        by_root = compute_bounds(asm, funcs, sorted(thunks) + sorted(kernels), arch,
                                 data=data, extra_allowance=extra_allowance,
                                 module_name=module_name, frames=frames,
                                 ir_text=analysed_text)
    for name in stubbed:
        frames.pop(name, None)
    bounds = {}
    for t, k in thunks.items():
        b, own = by_root[t], by_root[k]
        deeper = own if own.depth > b.depth else b
        bounds[k] = StackBound(k, deeper.depth, deeper.path,
                               dict(own.externals, **b.externals), b.hot)
    # only an exact tree's epilogue can be narrowed (x86-64: passes.epilogue);
    # where the scan cannot tell (None), the kernel keeps every register.
    # (semiexact: not a tree that takes the exact entry with marked runtime
    # externals: their C code, outside this assembly, writes vector registers)
    written = {}
    for kernel in passes.exact_kernels(bounds) if arch == 'x86_64' else ():
        if bounds[kernel].externals:
            continue
        regs = tree_registers(asm, funcs, passes.boundary_name(kernel), opaque=stubbed)
        if regs is not None:
            written[kernel] = regs
    return bounds, frames, written


def check_stack_limit(bounds, stack_limit=None):
    """``bounded-stack`` error for a call tree deeper than the secret stack."""
    limit = secretmem.stack_size() if stack_limit is None else stack_limit
    reserve = secretmem.signal_reserve()
    for kernel, b in sorted(bounds.items()):
        if b.depth + reserve > limit:
            raise SecretPolicyError(
                'bounded-stack',
                "the call tree of %s may use %d bytes of stack (deepest path: "
                "%s), more than the %d-byte secret stack it runs on leaves "
                "after the %d bytes kept for a signal frame"
                % (stack_bound.readable(kernel), b.depth,
                   ' -> '.join(stack_bound.readable(n) for n, _ in b.path), limit,
                   reserve),
                "move large local arrays to the heap (np.empty), or raise "
                "SECRETJIT_STACK_SIZE (e.g. SECRETJIT_STACK_SIZE=%dK)"
                % max(2 * b.depth // 1024, 512))


def _link(texts):
    """Parse each module text and link them into the first."""
    main = None
    for text in texts:
        m = ll.parse_assembly(text)
        if main is None:
            main = m
        else:
            main.link_in(m)
    return main


def aot_prepare(texts, specs, arch, triple, data_layout, secret=True):
    """Stage 1 of an AOT build: kernels + runtime + C wrappers, retargeted.

    Returns ``(Module, reports)`` ready for :func:`before_optimization`.
    """
    wrappers, wreport = passes.c_abi_wrappers(specs)
    wrappers.triple, wrappers.data_layout = triple, data_layout
    main = _link(list(texts) + [
        arena_nrt.build_module(triple, data_layout, standalone=True),
        str(wrappers)])
    _, lreport = passes.internalize_all_but(main, {s.c_name for s in specs})
    main.triple, main.data_layout = triple, data_layout
    mod = Module.parse(str(main))
    return mod, [wreport, lreport, passes.generic_refcount(mod)[1],
                 passes.neutral_atomics(mod)[1],
                 passes.strip_target_attributes(mod, zero_regs=secret)[1]]


def aot_module(texts, specs, tm, arch, triple, secret=True, optimize=None,
               check=None, epilogue=None, inline=()):
    """The whole secret pipeline of an AOT library, for target machine ``tm``.

    ``texts`` are the kernels' modules before any secret pass, ``specs`` the
    exports (:class:`passes.c_wrapper.WrapperSpec`), ``optimize(mod, tm)``
    the -O3 pipeline.  ``secret=False`` is the tests' control build: no
    boundaries, no register zeroing, no scrub.  ``check(text)`` (the
    constant-time check, :mod:`secretjit.aot.ct`) sees the optimized module
    with its line tables and ``declassify`` markers, which go after it.  A
    pass refusing the IR raises ``ValueError``.  ``epilogue``: the boundaries'
    register epilogue (:func:`passes.register_epilogue`, a ``--cpu`` build with AVX);
    ``inline``: the kernels their thunk may inline (not those ``check`` reads).
    """
    data_layout = str(tm.target_data)

    def reparse(text):
        mod = ll.parse_assembly(text)
        mod.triple, mod.data_layout = triple, data_layout
        mod.verify()
        return mod
    mod, reports = aot_prepare(texts, specs, arch, triple, data_layout, secret)
    if secret:
        reports += before_optimization(
            mod, [(s.c_name, s.kernel) for s in specs], arch, epilogue, inline)
    if arch != host_arch():
        reports.append(passes.outline_scrub(mod, arch)[1])
    text = mod.text()
    if arch != 'x86_64':
        x86 = sorted(set(re.findall(r'@(llvm\.x86\.[\w.]+)', text)))
        if x86:
            raise ValueError("x86-only intrinsics in the IR for %s: %s (set "
                             "SECRETJIT_NO_SHANI=1? numba compiled for the "
                             "host CPU?)" % (arch, ', '.join(x86)))
    llmod = reparse(text)
    optimize(llmod, tm)
    text = str(llmod)
    if check is not None:
        check(text)
    if arch != host_arch():
        # the declassify marker's asm only marks the constant-time check,
        # and llvmlite cannot assemble it for another target
        text, report = passes.lower_declassify(text)
        reports.append(report)
    text, report = passes.strip_debug_info(text)
    reports.append(report)
    if arch != host_arch() and _INLINE_ASM.search(text):
        # LLVM would abort the process emitting it (no asm parser).
        raise ValueError("inline assembly in the code for %s (an intrinsic "
                         "with inline asm, e.g. secretjit.testing.probes): llvmlite "
                         "cannot assemble it for a non-host target" % arch)
    if not secret:
        return SecretModule(reparse(text), reports=reports)
    extra = dict(AOT_ALLOWANCE)
    extra.update(arena_nrt_module(tm, arch, triple, data_layout, standalone=True,
                                extra_allowance=AOT_ALLOWANCE)[1])
    clears = {s.clear for s in specs if s.clear}
    if len(clears) > 1:
        raise ValueError("wrappers with different clear functions: %s" % sorted(clears))
    # AOT exports leave out the VEX zeroing of unwritten xmm0-15 that the
    # JIT keeps (passes.epilogue.KEEP_VEX_XMM): 0.7 ns less per call of a
    # trivial --cpu host export on an Intel AVX-512 host (RESULTS.md)
    result = after_optimization(text, tm, arch, extra, 'aot', reparse=reparse,
                                clear=clears.pop() if clears else None,
                                keep_vex_xmm=False)
    result.reports[:0] = reports
    return result


_INLINE_ASM = re.compile(
    r'\bcall [^\n]*? asm (?:sideeffect |alignstack |inteldialect |unwind )*"'
    r'|^module asm', re.M)
