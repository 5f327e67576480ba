"""Test intrinsics for kernels under test: canaries in registers, arrays on the stack.

:func:`fill_registers` loads a canary into every register a kernel can
dirty, so a register probe can tell which ones the kernel's return leaves
holding it; :func:`stack_scratch` gives a kernel an array in its own stack
frame, so a test can place secrets at a known depth.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .. import contract
from ..codegen import host_arch
from .probe_engine import (_features, _i64, _ptr, aarch64_clobbers,
                           sve_vector_length, x86_clobbers)


@intrinsic
def fill_registers(typingctx, canary):
    """Load ``canary`` into every register a kernel can dirty.

    x86-64: general-purpose caller-saved registers, all vector registers
    (zmm0-31 with AVX-512, else ymm/xmm), the AVX-512 mask registers and the
    eight x87 registers (left popped, as the ABI wants, but holding the value).
    AArch64: x0-x18, v0-v31 (both lanes) and, with SVE, all of z0-z31 and
    p0-p15 (each predicate holds the canary's first ``vl/8`` bytes).
    """
    if not isinstance(canary, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        if host_arch() == 'aarch64':
            return _fill_registers_aarch64(context, builder, args[0], canary)
        feats = _features()
        val = context.cast(builder, args[0], canary, types.uint64)
        x87 = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(8), 16))
        lo = builder.bitcast(x87, _i64.as_pointer())
        builder.store(val, lo)
        hi = builder.gep(lo, [ir.Constant(ir.IntType(32), 1)])
        builder.store(_i64(0x3FFF), hi)
        lines = _x86_fill_lines(feats)
        clobbers = x86_clobbers('avx512f' in feats, 'avx512bw' in feats)
        fnty = ir.FunctionType(ir.VoidType(), [_i64, _ptr])
        builder.asm(fnty, '\n'.join(lines), 'r,r,' + ','.join(clobbers),
                    [val, builder.bitcast(x87, _ptr)], True)
        return context.get_dummy_value()

    return types.void(canary), codegen


def _x86_fill_lines(feats):
    """Inline asm copying rax (the canary) into every register the contract names."""
    lines = ['movq $0, %rax'] + ['movq %%rax, %%%s' % r
                                 for r in contract.X86_64_ZEROED]
    if 'avx512f' in feats:
        lines += ['vpbroadcastq %%rax, %%%s' % v.replace('xmm', 'zmm')
                  for v in contract.x86_64_vectors(True)]
        if 'avx512bw' in feats:
            lines += ['kmovq %%rax, %%%s' % k for k in contract.X86_64_MASKS]
    elif 'avx2' in feats:
        lines += ['vmovq %rax, %xmm0', 'vpbroadcastq %xmm0, %ymm0']
        lines += ['vmovdqa %%ymm0, %%%s' % v.replace('xmm', 'ymm')
                  for v in contract.x86_64_vectors(False)[1:]]
    else:
        lines += ['movq %rax, %xmm0', 'punpcklqdq %xmm0, %xmm0']
        lines += ['movdqa %%xmm0, %%%s' % v for v in contract.x86_64_vectors(False)[1:]]
    return lines + ['fldt ($1)'] * 8 + ['fstp %st(0)'] * 8


def _fill_registers_aarch64(context, builder, arg, canary):
    val = context.cast(builder, arg, canary, types.uint64)
    vl = sve_vector_length()
    # p registers load from memory: 32 bytes (the largest predicate) of canary
    image = cgutils.alloca_once(builder, ir.ArrayType(_i64, 4))
    for i in range(4):
        builder.store(val, builder.gep(image, [ir.Constant(ir.IntType(32), 0),
                                               ir.Constant(ir.IntType(32), i)]))
    lines = ['mov %s, $0' % r for r in contract.AARCH64_CALL_CLOBBERED]
    if vl:
        lines += ['.arch_extension sve']
        lines += ['dup %s.d, $0' % z for z in contract.AARCH64_SVE_VECTORS]
        lines += ['ldr %s, [$1]' % p for p in contract.AARCH64_SVE_PREDICATES]
    else:
        lines += ['dup %s.2d, $0' % v for v in contract.AARCH64_VECTORS]
    clobbers = aarch64_clobbers(vl) + ['~{memory}']
    fnty = ir.FunctionType(ir.VoidType(), [_i64, _ptr])
    builder.asm(fnty, '\n'.join(lines), 'r,r,' + ','.join(clobbers),
                [val, builder.bitcast(image, _ptr)], True)
    return context.get_dummy_value()


@intrinsic
def stack_scratch(typingctx, n):
    """A uint64 array of literal length ``n`` living in the caller's stack frame."""
    if not isinstance(n, types.IntegerLiteral):
        return None
    arrty = types.Array(types.uint64, 1, 'C')
    count = n.literal_value

    def codegen(context, builder, sig, args):
        slot = cgutils.alloca_once(builder, ir.ArrayType(_i64, count))
        ary = context.make_array(arrty)(context, builder)
        itemsize = context.get_abi_sizeof(context.get_data_type(types.uint64))
        context.populate_array(
            ary, data=builder.bitcast(slot, _i64.as_pointer()),
            shape=[context.get_constant(types.intp, count)],
            strides=[context.get_constant(types.intp, itemsize)],
            itemsize=context.get_constant(types.intp, itemsize), meminfo=None)
        return ary._getvalue()

    return arrty(n), codegen
