"""The secret engine's allocator: NRT entry points backed by the secret arena.

numba's lowered code allocates through a handful of NRT entry points
(``NRT_MemInfo_alloc_aligned``, ``NRT_MemInfo_new_varsize``, ``NRT_Allocate``
...).  This module defines those symbols in an LLVM module that is added to
the secret engine only, so they shadow numba's C runtime for secret kernels
while plain numba code keeps its allocator.  Each MemInfo it makes records
:data:`secretjit_allocator` as its external allocator, so numba's C runtime
frees it through ``secretjit_free`` wherever the last reference dies: at the
end of the kernel for temporaries, or later in Python for returned arrays.

Every block (MemInfo and data) comes from the secret arena of the C runtime
(``secretjit/csrc/arena.c``): pages that are locked in RAM, left out of core
dumps, zeroed in forked children, followed by a guard page, and wiped when
the block is freed.  AOT libraries compile this module for their target with
``standalone=True`` and link the same C runtime.
"""

import ctypes
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from numba.core.runtime import _nrt_python

from .stack_bound.native import MARKED_MEMORY, MEMORY_WRAPPERS

i8 = ir.IntType(8)
i32 = ir.IntType(32)
i64 = ir.IntType(64)
i1 = ir.IntType(1)
ptr = ir.PointerType(i8)
# numba's NRT_MemInfo: refct, dtor, dtor_info, data, size, external_allocator
MEMINFO = ir.LiteralStructType([i64, ptr, ptr, ptr, i64, ptr])
MEMINFO_SIZE = 48
# The alignment of every block secretjit_slab_alloc returns (its smallest
# size class; secretjit/csrc/slab.h MIN_SHIFT).
BLOCK_ALIGN = 16
DTOR = ir.FunctionType(ir.VoidType(), [ptr, i64, ptr])

# The NRT entry points this module defines (shadowing numba's C runtime).
INTERPOSED = (
    'NRT_MemInfo_alloc', 'NRT_MemInfo_alloc_safe', 'NRT_MemInfo_alloc_aligned',
    'NRT_MemInfo_alloc_safe_aligned', 'NRT_MemInfo_alloc_dtor',
    'NRT_MemInfo_alloc_dtor_safe', 'NRT_MemInfo_new_varsize',
    'NRT_MemInfo_new_varsize_dtor', 'NRT_MemInfo_varsize_alloc',
    'NRT_MemInfo_varsize_realloc', 'NRT_MemInfo_varsize_free',
    'NRT_Allocate', 'NRT_Free',
)
# Functions of this module that numba's C runtime calls back on the kernel's
# stack (through a MemInfo's allocator or destructor).
CALLBACKS = ('secretjit_ea_free', 'secretjit_varsize_dtor')
# The C library functions LLVM's code calls (llvm.memset/memcpy/memmove it
# does not expand in line) that the JIT's module defines too (not AOT
# libraries: a shared object would interpose them on the whole process).
# MCJIT resolves a symbol to its own modules' definitions first, so a secret
# kernel's call lands on the runtime's marking wrapper (csrc/marked.c), which
# sets the thread's flag and calls libc's: the tree keeps the exact
# entry, which checks the frame window like the plain one when one ran.
LIBC_SHADOWED = MARKED_MEMORY
# numba's allocation statistics for secret blocks (see secretjit.nrt_stats):
# enabled flag, then alloc, free, mi_alloc counters.
STATS = 'secretjit_nrt_stats'
STATS_FIELDS = ('enabled', 'alloc', 'free', 'mi_alloc')


def _fn(mod, name, ret, args, linkage=None):
    f = ir.Function(mod, ir.FunctionType(ret, args), name)
    if linkage:
        f.linkage = linkage
    return f


def _c_helper(builder, name, fnty):
    """Call target for numba's own C implementation of ``NRT_<name>``."""
    addr = _nrt_python.c_helpers[name]
    return builder.inttoptr(ir.Constant(i64, addr), fnty.as_pointer())


@dataclass
class _Defs:
    """The module being built and the helpers its entry points call."""
    mod: ir.Module
    standalone: bool
    alloc: ir.Function = None           # secretjit_alloc(size)
    free: ir.Function = None            # secretjit_free(ptr)
    realloc: ir.Function = None         # secretjit_realloc(ptr, size)
    counted_alloc: ir.Function = None   # secretjit_alloc, counted in the stats
    counted_free: ir.Function = None    # secretjit_free, counted in the stats
    stats: ir.GlobalVariable = None     # secretjit_nrt_stats (not standalone)
    allocator: ir.GlobalVariable = None  # the NRT external allocator
    meminfo_alloc: ir.Function = None   # MemInfo + data in one arena block
    varsize_dtor: ir.Function = None    # destructor of varsize MemInfos

    def entry(self, name, ret, args):
        """An exported function ``name`` and a builder at its entry block."""
        f = _fn(self.mod, name, ret, args)
        return f, ir.IRBuilder(f.append_basic_block('entry'))


def build_module(triple, data_layout, standalone=False):
    """Build the runtime's LLVM IR (text).

    ``standalone`` is for AOT libraries: there every MemInfo is made by this
    module, so the fallbacks to numba's C helpers (absolute addresses in the
    host process) are left out.
    """
    mod = ir.Module('secretjit.arena_nrt')
    mod.triple = triple
    mod.data_layout = data_layout
    d = _Defs(mod, standalone)
    for define in (_define_raw_blocks, _define_counted_blocks,
                   _define_external_allocator,
                   _define_meminfo_alloc, _define_meminfo_alloc_entries,
                   _define_new_varsize, _define_varsize_alloc,
                   _define_varsize_realloc, _define_varsize_free,
                   _define_allocate_free, _define_libc_shadows):
        define(d)
    return str(mod)


def _define_raw_blocks(d):
    """secretjit_alloc/free/realloc: raw blocks from the secret arena.

    The arena (``secretjit/csrc/arena.c``) wipes every block when it is
    freed and keeps it out of core dumps and swap; blocks of at most 2 KiB
    are slots of slabs (``slab.c``, a guard page after each slab), larger
    ones spans with a guard page each.
    """
    arena_alloc = _fn(d.mod, 'secretjit_slab_alloc', ptr, [i64])
    arena_free = _fn(d.mod, 'secretjit_slab_free', ir.VoidType(), [ptr])
    arena_realloc = _fn(d.mod, 'secretjit_slab_realloc', ptr, [ptr, i64])
    d.alloc, b = d.entry('secretjit_alloc', ptr, [i64])
    size, = d.alloc.args
    # numba may ask for 0 bytes (NRT_Allocate); the arena wants at least 1.
    nonzero = b.select(b.icmp_unsigned('==', size, i64(0)), i64(1), size)
    b.ret(b.call(arena_alloc, [nonzero]))
    d.free, b = d.entry('secretjit_free', ir.VoidType(), [ptr])
    b.call(arena_free, [d.free.args[0]])
    b.ret_void()
    d.realloc, b = d.entry('secretjit_realloc', ptr, [ptr, i64])
    old, size = d.realloc.args
    nonzero = b.select(b.icmp_unsigned('==', size, i64(0)), i64(1), size)
    b.ret(b.call(arena_realloc, [old, nonzero]))


def count(d, b, *deltas):
    """Add ``deltas`` ((field, n), ...) to numba's statistics while enabled."""
    if d.standalone:
        return
    flag = b.load_atomic(b.gep(d.stats, [i32(0), i32(0)]), 'monotonic', 8)
    with b.if_then(b.icmp_unsigned('!=', flag, i64(0)), likely=False):
        for name, delta in deltas:
            slot = b.gep(d.stats, [i32(0), i32(STATS_FIELDS.index(name))])
            b.atomic_rmw('add', slot, i64(delta), 'monotonic')


def _define_counted_blocks(d):
    """secretjit_alloc_counted/free_counted: blocks numba's runtime would count.

    numba's C runtime counts every NRT_Allocate/NRT_Free and MemInfo it makes
    or destroys (``TheMSys.stats`` in numba/core/runtime/nrt.cpp, while stats
    are enabled).  It also counts the free and mi_free of every secret MemInfo
    (NRT_dealloc through the external allocator, which calls the uncounted
    secretjit_free), but never sees the allocations made here: they are
    counted in the external global ``secretjit_nrt_stats`` (memory of
    :mod:`secretjit.nrt_stats`, shared by every secret engine), which that
    module adds to ``rtsys.get_allocation_stats()``.  AOT libraries have no
    numba runtime and count nothing.
    """
    if not d.standalone:
        d.stats = ir.GlobalVariable(
            d.mod, ir.LiteralStructType([i64] * len(STATS_FIELDS)), STATS)
    d.counted_alloc = _fn(d.mod, 'secretjit_alloc_counted', ptr, [i64],
                          linkage='internal')
    b = ir.IRBuilder(d.counted_alloc.append_basic_block('entry'))
    block = b.call(d.alloc, [d.counted_alloc.args[0]])
    with b.if_then(b.icmp_unsigned('!=', block, ptr(None))):
        count(d, b, ('alloc', 1))
    b.ret(block)
    d.counted_free = _fn(d.mod, 'secretjit_free_counted', ir.VoidType(), [ptr],
                         linkage='internal')
    b = ir.IRBuilder(d.counted_free.append_basic_block('entry'))
    b.call(d.free, [d.counted_free.args[0]])
    count(d, b, ('free', 1))
    b.ret_void()


def _define_external_allocator(d):
    """``secretjit_allocator``: the NRT external allocator every MemInfo records."""
    ea_malloc, b = d.entry('secretjit_ea_malloc', ptr, [i64, ptr])
    b.ret(b.call(d.alloc, [ea_malloc.args[0]]))
    ea_realloc, b = d.entry('secretjit_ea_realloc', ptr, [ptr, i64, ptr])
    b.ret(b.call(d.realloc, [ea_realloc.args[0], ea_realloc.args[1]]))
    ea_free, b = d.entry('secretjit_ea_free', ir.VoidType(), [ptr, ptr])
    b.call(d.free, [ea_free.args[0]])
    b.ret_void()
    allocator_ty = ir.LiteralStructType([ptr, ptr, ptr, ptr])
    d.allocator = ir.GlobalVariable(d.mod, allocator_ty, 'secretjit_allocator')
    d.allocator.initializer = ir.Constant(allocator_ty, [
        ea_malloc.bitcast(ptr), ea_realloc.bitcast(ptr), ea_free.bitcast(ptr),
        ptr(None)])
    d.allocator.global_constant = True


def _define_meminfo_alloc(d):
    """secretjit_meminfo_alloc(size, align, dtor, dtor_info): one arena block
    holding the MemInfo and, aligned after it, the data."""
    d.meminfo_alloc = mi_alloc = _fn(d.mod, 'secretjit_meminfo_alloc', ptr,
                                     [i64, i32, ptr, ptr], linkage='internal')
    b = ir.IRBuilder(mi_alloc.append_basic_block('entry'))
    size, align, dtor, dtor_info = mi_alloc.args
    align64 = b.zext(align, i64)
    # Every block is BLOCK_ALIGN-aligned (slab slots are aligned to their
    # size class, spans to a page) and MEMINFO_SIZE is a multiple of it, so
    # aligning the data to a power of two `align` pads by at most
    # align - BLOCK_ALIGN bytes: a 64-byte array takes a 128-byte slot, not
    # 256.
    pad = b.select(b.icmp_unsigned('>', align64, i64(BLOCK_ALIGN)),
                   b.sub(align64, i64(BLOCK_ALIGN)), i64(0))
    t1 = b.uadd_with_overflow(size, i64(MEMINFO_SIZE))
    t2 = b.uadd_with_overflow(b.extract_value(t1, 0), pad)
    with b.if_then(b.or_(b.extract_value(t1, 1), b.extract_value(t2, 1)),
                   likely=False):
        b.ret(ptr(None))
    block = b.call(d.counted_alloc, [b.extract_value(t2, 0)])
    with b.if_then(b.icmp_unsigned('==', block, ptr(None)), likely=False):
        b.ret(ptr(None))
    count(d, b, ('mi_alloc', 1))
    rawdata = b.ptrtoint(b.gep(block, [i64(MEMINFO_SIZE)]), i64)
    mask = b.sub(align64, i64(1))
    is_aligned = b.icmp_unsigned('==', align64, i64(0))
    bumped = b.and_(b.add(rawdata, mask), b.not_(mask))
    aligned = b.select(is_aligned, rawdata, bumped)
    mi = b.bitcast(block, MEMINFO.as_pointer())

    def field(k):
        return b.gep(mi, [i32(0), i32(k)])
    b.store(i64(1), field(0))
    b.store(dtor, field(1))
    b.store(dtor_info, field(2))
    b.store(b.inttoptr(aligned, ptr), field(3))
    b.store(size, field(4))
    b.store(d.allocator.bitcast(ptr), field(5))
    b.ret(block)


def _define_meminfo_alloc_entries(d):
    """NRT_MemInfo_alloc{,_safe}{,_aligned} and NRT_MemInfo_alloc_dtor{,_safe}."""
    null = ptr(None)
    for name in ('NRT_MemInfo_alloc', 'NRT_MemInfo_alloc_safe'):
        f, b = d.entry(name, ptr, [i64])
        b.ret(b.call(d.meminfo_alloc, [f.args[0], i32(0), null, null]))
    for name in ('NRT_MemInfo_alloc_aligned', 'NRT_MemInfo_alloc_safe_aligned'):
        f, b = d.entry(name, ptr, [i64, i32])
        b.ret(b.call(d.meminfo_alloc, [f.args[0], f.args[1], null, null]))
    # numba's C version wraps dtor to call dtor(data, size, NULL): same here.
    for name in ('NRT_MemInfo_alloc_dtor', 'NRT_MemInfo_alloc_dtor_safe'):
        f, b = d.entry(name, ptr, [i64, ptr])
        b.ret(b.call(d.meminfo_alloc, [f.args[0], i32(0), f.args[1], null]))


def _define_new_varsize(d):
    """NRT_MemInfo_new_varsize{,_dtor}: a MemInfo whose payload (lists,
    strings) is a separate arena block, freed by ``secretjit_varsize_dtor``."""
    null = ptr(None)
    d.varsize_dtor, b = d.entry('secretjit_varsize_dtor', ir.VoidType(),
                                [ptr, i64, ptr])
    data, size, info = d.varsize_dtor.args
    with b.if_then(b.icmp_unsigned('!=', info, null)):
        b.call(b.bitcast(info, DTOR.as_pointer()), [data, size, null])
    b.call(d.counted_free, [data])
    b.ret_void()
    for name, args in (('NRT_MemInfo_new_varsize', [i64]),
                       ('NRT_MemInfo_new_varsize_dtor', [i64, ptr])):
        f, b = d.entry(name, ptr, args)
        s, dtor = f.args[0], (f.args[1] if len(args) > 1 else null)
        mi = b.call(d.meminfo_alloc, [i64(0), i32(0), d.varsize_dtor.bitcast(ptr),
                                      dtor])
        with b.if_then(b.icmp_unsigned('==', mi, null), likely=False):
            b.ret(null)
        payload = b.call(d.counted_alloc, [s])
        with b.if_then(b.icmp_unsigned('==', payload, null), likely=False):
            b.call(d.counted_free, [mi])
            count(d, b, ('mi_alloc', -1))
            b.ret(null)
        m = b.bitcast(mi, MEMINFO.as_pointer())
        b.store(payload, b.gep(m, [i32(0), i32(3)]))
        b.store(s, b.gep(m, [i32(0), i32(4)]))
        b.ret(mi)


def _is_ours(d, b, mi):
    """(MemInfo pointer, i1 "made by this module") for a varsize MemInfo."""
    m = b.bitcast(mi, MEMINFO.as_pointer())
    if d.standalone:
        return m, ir.Constant(i1, 1)
    dtor = b.load(b.gep(m, [i32(0), i32(1)]))
    return m, b.icmp_unsigned('==', dtor, d.varsize_dtor.bitcast(ptr))


def _set_payload(b, m, payload, size):
    """mi->data, mi->size = payload, size unless the allocation failed."""
    with b.if_then(b.icmp_unsigned('!=', payload, ptr(None))):
        b.store(payload, b.gep(m, [i32(0), i32(3)]))
        b.store(size, b.gep(m, [i32(0), i32(4)]))


def _define_varsize_alloc(d):
    """NRT_MemInfo_varsize_alloc: a new payload (replaces mi->data, as numba)."""
    f, b = d.entry('NRT_MemInfo_varsize_alloc', ptr, [ptr, i64])
    mi, s = f.args
    m, ours = _is_ours(d, b, mi)
    with b.if_then(b.not_(ours), likely=False):     # made by numba's C code
        fnty = ir.FunctionType(ptr, [ptr, i64])
        b.ret(b.call(_c_helper(b, 'MemInfo_varsize_alloc', fnty), [mi, s]))
    payload = b.call(d.counted_alloc, [s])    # as numba: replaces mi->data
    _set_payload(b, m, payload, s)
    b.ret(payload)


def _define_varsize_realloc(d):
    """NRT_MemInfo_varsize_realloc: grow or shrink the payload."""
    f, b = d.entry('NRT_MemInfo_varsize_realloc', ptr, [ptr, i64])
    mi, s = f.args
    m, ours = _is_ours(d, b, mi)
    with b.if_then(b.not_(ours), likely=False):
        fnty = ir.FunctionType(ptr, [ptr, i64])
        b.ret(b.call(_c_helper(b, 'MemInfo_varsize_realloc', fnty), [mi, s]))
    payload = b.call(d.realloc, [b.load(b.gep(m, [i32(0), i32(3)])), s])
    _set_payload(b, m, payload, s)
    b.ret(payload)


def _define_varsize_free(d):
    """NRT_MemInfo_varsize_free: free a payload (clears mi->data if it was it)."""
    f, b = d.entry('NRT_MemInfo_varsize_free', ir.VoidType(), [ptr, ptr])
    mi, p = f.args
    m, ours = _is_ours(d, b, mi)
    with b.if_then(b.not_(ours), likely=False):
        fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr])
        b.call(_c_helper(b, 'MemInfo_varsize_free', fnty), [mi, p])
        b.ret_void()
    b.call(d.counted_free, [p])
    slot = b.gep(m, [i32(0), i32(3)])
    with b.if_then(b.icmp_unsigned('==', b.load(slot), p)):
        b.store(ptr(None), slot)
    b.ret_void()


def _define_allocate_free(d):
    """NRT_Allocate/NRT_Free: raw scratch buffers (array copies, exception
    payloads), allocated and freed by IR of the same secret module."""
    f, b = d.entry('NRT_Allocate', ptr, [i64])
    b.ret(b.call(d.counted_alloc, [f.args[0]]))
    f, b = d.entry('NRT_Free', ir.VoidType(), [ptr])
    b.call(d.counted_free, [f.args[0]])
    b.ret_void()


ARENA_FUNCTIONS = ('secretjit_arena_alloc', 'secretjit_arena_free',
                   'secretjit_arena_realloc', 'secretjit_secret_call',
                   'secretjit_secret_call_exact',
                   'secretjit_slab_alloc', 'secretjit_slab_free',
                   'secretjit_slab_realloc') + MEMORY_WRAPPERS


def _define_libc_shadows(d):
    """memset/memcpy/memmove (:data:`LIBC_SHADOWED`): a call of the runtime's
    marking wrapper of each (JIT only; marked ``tail``, but the register
    zeroing after it keeps it a call and a return: 16 bytes of stack)."""
    if d.standalone:
        return
    signature = {'memset': [ptr, i32, i64], 'memcpy': [ptr, ptr, i64],
                 'memmove': [ptr, ptr, i64]}
    for name, wrapper_name in zip(LIBC_SHADOWED, MEMORY_WRAPPERS):
        args = signature[name]
        wrapper = _fn(d.mod, wrapper_name, ptr, args)
        f, b = d.entry(name, ptr, args)
        call = b.call(wrapper, list(f.args), tail=True)
        b.ret(call)


def register_symbols():
    """Make MCJIT resolve the C runtime's and libc's functions the runtime calls."""
    from . import nrt_stats, secretmem
    for name in ARENA_FUNCTIONS:
        llvm.add_symbol(name, secretmem.address(name))
    llvm.add_symbol(STATS, nrt_stats.install())
    libc = ctypes.CDLL(None)
    for name in ('memset', 'memcpy', 'memmove'):
        llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
