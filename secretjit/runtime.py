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

import llvmlite.binding as llvm
from llvmlite import ir

from numba.core.runtime import _nrt_python

i8 = ir.IntType(8)
i32 = ir.IntType(32)
i64 = ir.IntType(64)
i1 = ir.IntType(1)
ptr = ir.PointerType(i8)
# numba's NRT_MemInfo: refct, dtor, dtor_info, data, size, external_allocator
MEMINFO = ir.LiteralStructType([i64, ptr, ptr, ptr, i64, ptr])
MEMINFO_SIZE = 48
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


def build_module(triple, data_layout, standalone=False):
    """Build the runtime's LLVM IR (text).

    ``standalone`` is for AOT libraries: there every MemInfo is made by this
    module, so the fallbacks to numba's C helpers (absolute addresses in the
    host process) are left out.
    """
    mod = ir.Module('secretjit.runtime')
    mod.triple = triple
    mod.data_layout = data_layout
    # -- raw blocks, from the secret arena (secretjit/csrc/arena.c) ----------
    # The arena wipes every block when it is freed, keeps it out of core dumps
    # and swap, and puts a guard page after it.
    arena_alloc = _fn(mod, 'secretjit_arena_alloc', ptr, [i64])
    arena_free = _fn(mod, 'secretjit_arena_free', ir.VoidType(), [ptr])
    arena_realloc = _fn(mod, 'secretjit_arena_realloc', ptr, [ptr, i64])

    alloc = _fn(mod, 'secretjit_alloc', ptr, [i64])
    b = ir.IRBuilder(alloc.append_basic_block('entry'))
    size, = alloc.args
    # numba may ask for 0 bytes (NRT_Allocate); the arena wants at least 1.
    nonzero = b.select(b.icmp_unsigned('==', size, i64(0)), i64(1), size)
    b.ret(b.call(arena_alloc, [nonzero]))

    sfree = _fn(mod, 'secretjit_free', ir.VoidType(), [ptr])
    b = ir.IRBuilder(sfree.append_basic_block('entry'))
    b.call(arena_free, [sfree.args[0]])
    b.ret_void()

    realloc = _fn(mod, 'secretjit_realloc', ptr, [ptr, i64])
    b = ir.IRBuilder(realloc.append_basic_block('entry'))
    old, size = realloc.args
    nonzero = b.select(b.icmp_unsigned('==', size, i64(0)), i64(1), size)
    b.ret(b.call(arena_realloc, [old, nonzero]))

    # -- numba's allocation statistics -------------------------------------
    # numba's C runtime counts every NRT_Allocate/NRT_Free and MemInfo it
    # makes or destroys (TheMSys.stats in numba/core/runtime/nrt.cpp, while
    # stats are enabled).  It also counts the free and mi_free of every
    # secret MemInfo (NRT_dealloc through the external allocator), but never
    # sees the allocations made here: they are counted in this external
    # global (memory of secretjit.nrt_stats, shared by every secret engine),
    # which it adds to rtsys.get_allocation_stats().  AOT
    # libraries have no numba runtime and count nothing.
    if not standalone:         # process-wide, in secretjit.nrt_stats
        stats_ty = ir.LiteralStructType([i64] * len(STATS_FIELDS))
        stats = ir.GlobalVariable(mod, stats_ty, STATS)

    def count(bb, *deltas):
        if standalone:
            return
        flag = bb.load_atomic(bb.gep(stats, [i32(0), i32(0)]), 'monotonic', 8)
        with bb.if_then(bb.icmp_unsigned('!=', flag, i64(0)), likely=False):
            for name, delta in deltas:
                slot = bb.gep(stats, [i32(0), i32(STATS_FIELDS.index(name))])
                bb.atomic_rmw('add', slot, i64(delta), 'monotonic')

    # Blocks numba's runtime would count (numba's C code calls the
    # uncounted secretjit_alloc/free through the external allocator, and
    # counts those calls itself).
    calloc = _fn(mod, 'secretjit_alloc_counted', ptr, [i64], linkage='internal')
    b = ir.IRBuilder(calloc.append_basic_block('entry'))
    block = b.call(alloc, [calloc.args[0]])
    with b.if_then(b.icmp_unsigned('!=', block, ptr(None))):
        count(b, ('alloc', 1))
    b.ret(block)
    cfree = _fn(mod, 'secretjit_free_counted', ir.VoidType(), [ptr],
                linkage='internal')
    b = ir.IRBuilder(cfree.append_basic_block('entry'))
    b.call(sfree, [cfree.args[0]])
    count(b, ('free', 1))
    b.ret_void()

    # -- NRT external allocator ---------------------------------------------
    ea_malloc = _fn(mod, 'secretjit_ea_malloc', ptr, [i64, ptr])
    b = ir.IRBuilder(ea_malloc.append_basic_block('entry'))
    b.ret(b.call(alloc, [ea_malloc.args[0]]))
    ea_realloc = _fn(mod, 'secretjit_ea_realloc', ptr, [ptr, i64, ptr])
    b = ir.IRBuilder(ea_realloc.append_basic_block('entry'))
    b.ret(b.call(realloc, [ea_realloc.args[0], ea_realloc.args[1]]))
    ea_free = _fn(mod, 'secretjit_ea_free', ir.VoidType(), [ptr, ptr])
    b = ir.IRBuilder(ea_free.append_basic_block('entry'))
    b.call(sfree, [ea_free.args[0]])
    b.ret_void()
    allocator_ty = ir.LiteralStructType([ptr, ptr, ptr, ptr])
    allocator = ir.GlobalVariable(mod, allocator_ty, 'secretjit_allocator')
    allocator.initializer = ir.Constant(allocator_ty, [
        ea_malloc.bitcast(ptr), ea_realloc.bitcast(ptr), ea_free.bitcast(ptr),
        ptr(None)])
    allocator.global_constant = True

    # -- MemInfo construction ---------------------------------------------
    mi_alloc = _fn(mod, 'secretjit_meminfo_alloc', ptr, [i64, i32, ptr, ptr],
                   linkage='internal')
    b = ir.IRBuilder(mi_alloc.append_basic_block('entry'))
    size, align, dtor, dtor_info = mi_alloc.args
    align64 = b.zext(align, i64)
    t1 = b.uadd_with_overflow(size, i64(MEMINFO_SIZE))
    t2 = b.uadd_with_overflow(b.extract_value(t1, 0), align64)
    with b.if_then(b.or_(b.extract_value(t1, 1), b.extract_value(t2, 1)),
                   likely=False):
        b.ret(ptr(None))
    block = b.call(calloc, [b.extract_value(t2, 0)])
    with b.if_then(b.icmp_unsigned('==', block, ptr(None)), likely=False):
        b.ret(ptr(None))
    count(b, ('mi_alloc', 1))
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
    b.store(allocator.bitcast(ptr), field(5))
    b.ret(block)

    def export(name, args, body):
        f = _fn(mod, name, args[0], args[1])
        bb = ir.IRBuilder(f.append_basic_block('entry'))
        body(bb, *f.args)
        return f

    null = ptr(None)
    for name in ('NRT_MemInfo_alloc', 'NRT_MemInfo_alloc_safe'):
        export(name, (ptr, [i64]), lambda bb, s: bb.ret(
            bb.call(mi_alloc, [s, i32(0), null, null])))
    for name in ('NRT_MemInfo_alloc_aligned', 'NRT_MemInfo_alloc_safe_aligned'):
        export(name, (ptr, [i64, i32]), lambda bb, s, a: bb.ret(
            bb.call(mi_alloc, [s, a, null, null])))
    # numba's C version wraps dtor to call dtor(data, size, NULL): same here.
    for name in ('NRT_MemInfo_alloc_dtor', 'NRT_MemInfo_alloc_dtor_safe'):
        export(name, (ptr, [i64, ptr]), lambda bb, s, d: bb.ret(
            bb.call(mi_alloc, [s, i32(0), d, null])))

    # -- variable-size payloads (lists, strings) ---------------------------
    vdtor = _fn(mod, 'secretjit_varsize_dtor', ir.VoidType(), [ptr, i64, ptr])
    b = ir.IRBuilder(vdtor.append_basic_block('entry'))
    data, size, info = vdtor.args
    with b.if_then(b.icmp_unsigned('!=', info, null)):
        b.call(b.bitcast(info, DTOR.as_pointer()), [data, size, null])
    b.call(cfree, [data])
    b.ret_void()

    def new_varsize(bb, s, d):
        mi = bb.call(mi_alloc, [i64(0), i32(0), vdtor.bitcast(ptr), d])
        with bb.if_then(bb.icmp_unsigned('==', mi, null), likely=False):
            bb.ret(null)
        payload = bb.call(calloc, [s])
        with bb.if_then(bb.icmp_unsigned('==', payload, null), likely=False):
            bb.call(cfree, [mi])
            count(bb, ('mi_alloc', -1))
            bb.ret(null)
        m = bb.bitcast(mi, MEMINFO.as_pointer())
        bb.store(payload, bb.gep(m, [i32(0), i32(3)]))
        bb.store(s, bb.gep(m, [i32(0), i32(4)]))
        bb.ret(mi)
    export('NRT_MemInfo_new_varsize', (ptr, [i64]),
           lambda bb, s: new_varsize(bb, s, null))
    export('NRT_MemInfo_new_varsize_dtor', (ptr, [i64, ptr]), new_varsize)

    def is_ours(bb, mi):
        m = bb.bitcast(mi, MEMINFO.as_pointer())
        if standalone:
            return m, ir.Constant(i1, 1)
        d = bb.load(bb.gep(m, [i32(0), i32(1)]))
        return m, bb.icmp_unsigned('==', d, vdtor.bitcast(ptr))

    def varsize_alloc(bb, mi, s):
        m, ours = is_ours(bb, mi)
        with bb.if_then(bb.not_(ours), likely=False):   # made by numba's C code
            fnty = ir.FunctionType(ptr, [ptr, i64])
            bb.ret(bb.call(_c_helper(bb, 'MemInfo_varsize_alloc', fnty), [mi, s]))
        payload = bb.call(calloc, [s])         # as numba: replaces mi->data
        with bb.if_then(bb.icmp_unsigned('!=', payload, null)):
            bb.store(payload, bb.gep(m, [i32(0), i32(3)]))
            bb.store(s, bb.gep(m, [i32(0), i32(4)]))
        bb.ret(payload)
    export('NRT_MemInfo_varsize_alloc', (ptr, [ptr, i64]), varsize_alloc)

    def varsize_realloc(bb, mi, s):
        m, ours = is_ours(bb, mi)
        with bb.if_then(bb.not_(ours), likely=False):
            fnty = ir.FunctionType(ptr, [ptr, i64])
            bb.ret(bb.call(_c_helper(bb, 'MemInfo_varsize_realloc', fnty),
                           [mi, s]))
        payload = bb.call(realloc, [bb.load(bb.gep(m, [i32(0), i32(3)])), s])
        with bb.if_then(bb.icmp_unsigned('!=', payload, null)):
            bb.store(payload, bb.gep(m, [i32(0), i32(3)]))
            bb.store(s, bb.gep(m, [i32(0), i32(4)]))
        bb.ret(payload)
    export('NRT_MemInfo_varsize_realloc', (ptr, [ptr, i64]), varsize_realloc)

    def varsize_free(bb, mi, p):
        m, ours = is_ours(bb, mi)
        with bb.if_then(bb.not_(ours), likely=False):
            fnty = ir.FunctionType(ir.VoidType(), [ptr, ptr])
            bb.call(_c_helper(bb, 'MemInfo_varsize_free', fnty), [mi, p])
            bb.ret_void()
        bb.call(cfree, [p])
        slot = bb.gep(m, [i32(0), i32(3)])
        with bb.if_then(bb.icmp_unsigned('==', bb.load(slot), p)):
            bb.store(null, slot)
        bb.ret_void()
    export('NRT_MemInfo_varsize_free', (ir.VoidType(), [ptr, ptr]), varsize_free)

    # Raw scratch buffers (array copies, exception payloads): allocated and
    # freed by IR of the same secret module.
    export('NRT_Allocate', (ptr, [i64]),
           lambda bb, s: bb.ret(bb.call(calloc, [s])))

    def nrt_free(bb, p):
        bb.call(cfree, [p])
        bb.ret_void()
    export('NRT_Free', (ir.VoidType(), [ptr]), nrt_free)
    return str(mod)


ARENA_FUNCTIONS = ('secretjit_arena_alloc', 'secretjit_arena_free',
                   'secretjit_arena_realloc', 'secretjit_secret_call')


def register_symbols():
    """Make MCJIT resolve the C runtime's and libc's functions the runtime calls."""
    from . import nrt_stats, secretmem
    for name in ARENA_FUNCTIONS:
        llvm.add_symbol(name, secretmem.address(name))
    llvm.add_symbol(STATS, nrt_stats.install())
    libc = ctypes.CDLL(None)
    for name in ('memset', 'memcpy', 'memmove'):
        llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)
