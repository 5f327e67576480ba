"""Kernels and /proc helpers of tests/test_hardened_memory.py and tests/_hardened_child.py.

Each kernel is plain Python; ``both(f)`` compiles it with ``secret_jit`` and
``njit`` (the control), once per process.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from secretjit import secret_jit, secretmem

_compiled = {}


def both(py_func, **options):
    """(secret_jit version, njit version) of ``py_func``, cached per process."""
    key = (py_func, tuple(sorted(options.items())))
    if key not in _compiled:
        _compiled[key] = (secret_jit(**options)(py_func), njit(**options)(py_func))
    return _compiled[key]


def alloc_fill(n, value):
    """A new uint8 array of n bytes, every byte ``value`` (returned to Python)."""
    a = np.empty(n, np.uint8)
    for i in range(n):
        a[i] = value
    return a


def small(x):
    """A 64-byte temporary per call (the RSS test's kernel)."""
    a = np.empty(8, np.float64)
    for i in range(8):
        a[i] = x + i
    return a.sum()


def lcg_array(seed, n):
    """n uint64 words of a 64-bit LCG: a reference any thread can recompute."""
    a = np.empty(n, np.uint64)
    x = np.uint64(seed)
    for i in range(n):
        x = x * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
        a[i] = x
    return a


def out_of_bounds(n, off, value):
    """Write ``value`` at a[off] of an n-byte array; no bounds check."""
    a = np.zeros(n, np.uint8)
    a[off] = value
    return a.sum()


def write_at(a, off, value):
    """a[off] = value with no bounds check (the index comes from the caller)."""
    a[off] = value
    return a[0]


def alloc_sum(n):
    a = np.ones(n, np.uint8)
    return a.sum()


@intrinsic
def stack_block(typingctx, nbytes, value):
    """Fill a stack array of ``nbytes`` (a literal) with ``value``; return one byte.

    The array's address escapes into an empty volatile asm with a memory
    clobber, so the optimizer keeps the array, the fill and the frame.
    """
    if not isinstance(nbytes, types.IntegerLiteral):
        return None
    size = nbytes.literal_value
    sig = types.uint8(nbytes, value)

    def codegen(context, builder, signature, args):
        i8 = ir.IntType(8)
        arr = builder.alloca(ir.ArrayType(i8, size))
        p = builder.bitcast(arr, i8.as_pointer())
        v = builder.trunc(args[1], i8)
        builder.call(builder.module.declare_intrinsic(
            'llvm.memset', [i8.as_pointer(), ir.IntType(64)]),
            [p, v, ir.Constant(ir.IntType(64), size), ir.Constant(ir.IntType(1), 0)])
        fnty = ir.FunctionType(ir.VoidType(), [i8.as_pointer()])
        builder.asm(fnty, '', 'r,~{memory}', [p], side_effect=True)
        return builder.load(builder.gep(p, [ir.Constant(ir.IntType(64), size - 1)]))
    return sig, codegen


def big_frame(value):
    """A kernel with a 1 MiB stack frame (beyond the default 256 KiB secret stack)."""
    return stack_block(1048576, value)


def fitting_frame(value):
    """A kernel with a 32 KiB stack frame: fits any secret stack we use."""
    return stack_block(32768, value)


# -- /proc/self/smaps ----------------------------------------------------------

# [{start, end, perms, flags (set), Locked (kB), ...}] of this process.
smaps = secretmem.mappings


def vma(addr, maps=None):
    for m in maps or smaps():
        if m['start'] <= addr < m['end']:
            return m
    raise AssertionError('%#x is not mapped' % addr)


PAGE = 4096


def guarded(arrays, nbytes):
    """The arrays whose guard page lies between two spans of the arena.

    For such an array, the page holding ``a[nbytes + 2048]`` is a one-page
    PROT_NONE mapping, and the page after it is another span's data pages
    (readable and writable): without the guard page an overrun of a few KiB
    would land in a neighbour's secret silently.
    """
    maps = smaps()
    out = []
    for a in arrays:
        g = vma(a.ctypes.data + nbytes + 2048, maps)
        try:
            nxt = vma(g['end'], maps)
        except AssertionError:
            continue
        # '---s': a guard page of memfd_secret memory (a shared mapping)
        if g['perms'] in ('---p', '---s') and g['end'] - g['start'] == PAGE \
                and nxt['perms'].startswith('rw'):
            out.append(a)
    return out
