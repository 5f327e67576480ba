"""The probes' machine code: one small JIT engine of its own, built once.

Stack probes poison the stack below their stack pointer, call a kernel's
wrapper (or a C function) and copy the region back out, so no Python code
runs between the call and the snapshot; register probes spill every
call-clobbered register the contract names (:mod:`secretjit.contract`) and,
on x86-64, the whole XSAVE area the instant the call returns.  The
functions that drive them are in :mod:`secretjit.testing.probes`.
"""

import ctypes

import llvmlite.binding as ll
from llvmlite import ir

from .. import contract
from ..codegen import host_arch, host_has_sve

POISON = 0x5A5A5A5A5A5A5A5A
CANARY = 0xDEADBEEFCAFEF00D        # top bit set: a valid x87 significand
STACK_WINDOW = 64 * 1024
XSAVE_OFFSET = 128
XSAVE_SIZE = 4096
# AArch64 register spill: x0-x18, then v0-v31, then (with SVE) z0-z31 and
# p0-p15 + FFR at up to the architectural maximum vector length (256 bytes).
A64_GPRS = contract.AARCH64_CALL_CLOBBERED
A64_V_OFFSET = 256
A64_Z_OFFSET = 1024
A64_P_OFFSET = A64_Z_OFFSET + 32 * 256
A64_SPILL_SIZE = A64_P_OFFSET + 17 * 32
_PR_SVE_GET_VL = 51
_i64 = ir.IntType(64)
_ptr = ir.IntType(8).as_pointer()


def _features():
    return set(f[1:] for f in ll.get_host_cpu_features().flatten().split(',')
               if f.startswith('+'))


def sve_vector_length():
    """Bytes in one SVE vector register on this AArch64 CPU, 0 without SVE.

    Asks the kernel (``getauxval(AT_HWCAP)`` and ``prctl(PR_SVE_GET_VL)``),
    not LLVM: under qemu-user LLVM reads the host's /proc/cpuinfo and does
    not see SVE.
    """
    global _SVE_VL
    if _SVE_VL is None:
        _SVE_VL = 0
        if host_has_sve():
            vl = ctypes.CDLL(None).prctl(_PR_SVE_GET_VL, 0, 0, 0, 0)
            _SVE_VL = vl & 0xFFFF if vl > 0 else 0
    return _SVE_VL


_SVE_VL = None


# -- machine-code probes, built once in an engine of their own ---------------

# Integer (pointer) arguments c_call_depth passes: numba's C helpers take up to 8.
C_CALL_INTS = 8


class _ProbeEngine:
    """A tiny plain JIT engine holding the probe functions."""

    def __init__(self):
        arch = host_arch()
        if arch not in _STACK_ASM:
            raise NotImplementedError("the probes are written for x86-64 and "
                                      "AArch64; this machine is %s" % arch)
        mod = ir.Module('secretjit.testing.probes')
        mod.triple = ll.get_process_triple()
        self._stack_probe(mod, arch)
        if arch == 'x86_64':
            self._register_probe(mod)
        else:
            self._register_probe_aarch64(mod, sve_vector_length())
        self._c_call_probe(mod, arch)
        if arch == 'x86_64':
            self._wrapper_register_probe(mod)
        llmod = ll.parse_assembly(str(mod))
        llmod.verify()
        target = ll.Target.from_default_triple()
        tm = target.create_target_machine(codemodel='jitdefault', reloc='static')
        self.engine = ll.create_mcjit_compiler(llmod, tm)
        self.engine.finalize_object()
        self.stack = ctypes.PYFUNCTYPE(
            ctypes.c_void_p, ctypes.c_void_p, ctypes.py_object,
            ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64)(
                self.engine.get_function_address('secretjit_probe_stack'))
        self.depth = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, *[ctypes.c_int64] * C_CALL_INTS,
            ctypes.c_double, ctypes.c_double, ctypes.c_void_p,
            ctypes.c_int64, ctypes.c_uint64)(
                self.engine.get_function_address('secretjit_probe_c_call'))
        self.regs = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p)(
                self.engine.get_function_address('secretjit_probe_registers'))
        self.wrapper_regs = None
        if arch == 'x86_64':
            self.wrapper_regs = ctypes.PYFUNCTYPE(
                ctypes.c_void_p, ctypes.c_void_p, ctypes.py_object,
                ctypes.c_void_p)(self.engine.get_function_address(
                    'secretjit_probe_wrapper_registers'))

    @staticmethod
    def _stack_probe(mod, arch):
        # ptr probe(ptr wrapper, ptr args, ptr dump, i64 n, i64 poison)
        fnty = ir.FunctionType(_ptr, [_ptr, _ptr, _ptr, _i64, _i64])
        fn = ir.Function(mod, fnty, 'secretjit_probe_stack')
        fn.attributes.add('noinline')
        wrapper, args, dump, n, poison = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        fill_asm, copy_asm = _STACK_ASM[arch]
        fill = ir.FunctionType(ir.VoidType(), [_i64, _i64])
        b.asm(fill, *fill_asm, [n, poison], True)
        wty = ir.FunctionType(_ptr, [_ptr, _ptr, _ptr])
        res = b.call(b.bitcast(wrapper, wty.as_pointer()),
                     [_ptr(None), args, _ptr(None)])
        copy = ir.FunctionType(ir.VoidType(), [_i64, _ptr])
        b.asm(copy, *copy_asm, [n, dump], True)
        b.ret(res)

    @staticmethod
    def _c_call_probe(mod, arch):
        # void probe(ptr fn, i64 a0..a7, double d0, double d1, ptr dump,
        #            i64 n, i64 poison): like the stack probe, for a C
        # function taking up to eight integers (pointers) and two doubles.
        f64 = ir.DoubleType()
        fnty = ir.FunctionType(ir.VoidType(), [_ptr] + [_i64] * C_CALL_INTS
                               + [f64, f64, _ptr, _i64, _i64])
        fn = ir.Function(mod, fnty, 'secretjit_probe_c_call')
        fn.attributes.add('noinline')
        target, ints = fn.args[0], list(fn.args[1:1 + C_CALL_INTS])
        d0, d1, dump, n, poison = fn.args[1 + C_CALL_INTS:]
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        fill_asm, copy_asm = _STACK_ASM[arch]
        fill = ir.FunctionType(ir.VoidType(), [_i64, _i64])
        b.asm(fill, *fill_asm, [n, poison], True)
        cty = ir.FunctionType(_i64, [_i64] * C_CALL_INTS + [f64, f64])
        b.call(b.bitcast(target, cty.as_pointer()), ints + [d0, d1])
        copy = ir.FunctionType(ir.VoidType(), [_i64, _ptr])
        b.asm(copy, *copy_asm, [n, dump], True)
        b.ret_void()

    @staticmethod
    def _register_probe(mod):
        # void probe(ptr cfunc, i64 arg, ptr out): out[0:9] = rax rcx rdx rsi
        # rdi r8 r9 r10 r11 right after the call; XSAVE area at out+128.
        fnty = ir.FunctionType(ir.VoidType(), [_ptr, _i64, _ptr])
        fn = ir.Function(mod, fnty, 'secretjit_probe_registers')
        fn.attributes.add('noinline')
        cfunc, arg, out = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        text = '\n'.join(['callq *%rax'] + _GPR_SPILL + [
            # x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM: not AMX tiles
            'movl $$0xE7, %eax', 'xorl %edx, %edx',
            'xsave64 %d(%%r12)' % XSAVE_OFFSET])
        clobbers = _x86_clobbers()
        asmty = ir.FunctionType(ir.VoidType(), [_ptr, _i64, _ptr])
        b.asm(asmty, text, '{rax},{rdi},{r12},' + ','.join(clobbers),
              [cfunc, arg, out], True)
        b.ret_void()

    @staticmethod
    def _wrapper_register_probe(mod):
        # ptr probe(ptr wrapper, ptr args, ptr out): calls a CPython wrapper
        # wrapper(NULL, args, NULL) and spills like the register probe
        # (out[0] = rax is the result), so kernels with any arguments can be
        # probed; the wrapper boxes the result after the kernel returned.
        fnty = ir.FunctionType(_ptr, [_ptr, _ptr, _ptr])
        fn = ir.Function(mod, fnty, 'secretjit_probe_wrapper_registers')
        fn.attributes.add('noinline')
        wrapper, args, out = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        text = '\n'.join(['xorl %edi, %edi', 'xorl %edx, %edx',
                          'callq *%rax'] + _GPR_SPILL + [
            'movl $$0xE7, %eax', 'xorl %edx, %edx',
            'xsave64 %d(%%r12)' % XSAVE_OFFSET])
        asmty = ir.FunctionType(ir.VoidType(), [_ptr, _ptr, _ptr])
        b.asm(asmty, text, '{rax},{rsi},{r12},' + ','.join(_x86_clobbers()),
              [wrapper, args, out], True)
        res = b.load(b.bitcast(out, _ptr.as_pointer()))
        b.ret(res)

    @staticmethod
    def _register_probe_aarch64(mod, vl):
        # void probe(ptr cfunc, i64 arg, ptr out): out[0:19] = x0-x18 right
        # after the call, v0-v31 at A64_V_OFFSET; with SVE (vl > 0) z0-z31 at
        # A64_Z_OFFSET and p0-p15, FFR at A64_P_OFFSET, vl/8 bytes each.
        fnty = ir.FunctionType(ir.VoidType(), [_ptr, _i64, _ptr])
        fn = ir.Function(mod, fnty, 'secretjit_probe_registers')
        fn.attributes.add('noinline')
        cfunc, arg, out = fn.args
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        lines = ['blr x20']
        gprs, vecs = A64_GPRS, contract.AARCH64_VECTORS
        lines += ['stp %s, %s, [x21, #%d]' % (gprs[i], gprs[i + 1], 8 * i)
                  for i in range(0, len(gprs) - 1, 2)]
        if len(gprs) % 2:
            lines.append('str %s, [x21, #%d]' % (gprs[-1], 8 * (len(gprs) - 1)))
        lines += ['add x9, x21, #%d' % A64_V_OFFSET]
        lines += ['st1 {%s.2d, %s.2d, %s.2d, %s.2d}, [x9], #64' % vecs[i:i + 4]
                  for i in range(0, len(vecs), 4)]
        if vl:
            lines += ['.arch_extension sve',
                      'add x9, x21, #%d' % A64_Z_OFFSET]
            lines += ['str %s, [x9, #%d, mul vl]' % (z, i)
                      for i, z in enumerate(contract.AARCH64_SVE_VECTORS)]
            lines += ['mov x10, #%d' % A64_P_OFFSET, 'add x9, x21, x10']
            lines += ['str %s, [x9, #%d, mul vl]' % (r, i)
                      for i, r in enumerate(contract.AARCH64_SVE_PREDICATES)]
            lines += ['rdffr p0.b', 'str p0, [x9, #16, mul vl]']
        clobbers = aarch64_clobbers(vl) + ['~{lr}', '~{memory}', '~{nzcv}']
        if vl:
            clobbers.append('~{ffr}')
        asmty = ir.FunctionType(ir.VoidType(), [_ptr, _i64, _ptr])
        b.asm(asmty, '\n'.join(lines), '{x20},{x0},{x21},' + ','.join(clobbers),
              [cfunc, arg, out], True)
        b.ret_void()


_X86_GPRS = contract.X86_64_CALL_CLOBBERED
_GPR_SPILL = ['movq %%%s, %d(%%r12)' % (r, 8 * i) for i, r in enumerate(_X86_GPRS)]


def _x86_clobbers():
    """Clobber list of an x86-64 register probe: every call-clobbered register."""
    feats = _features()
    return x86_clobbers('avx512f' in feats, 'avx512f' in feats)


def x86_clobbers(avx512, masks):
    """Inline-asm clobbers of the contract's x86-64 registers and the x87 stack."""
    regs = contract.X86_64_CALL_CLOBBERED + contract.x86_64_vectors(avx512)
    regs += contract.X86_64_MASKS if masks else ()
    clobbers = ['~{%s}' % r for r in regs]
    clobbers += ['~{st}'] + ['~{st(%d)}' % i for i in range(1, 8)]
    return clobbers + ['~{memory}', '~{dirflag}', '~{fpsr}', '~{flags}']


def aarch64_clobbers(vl):
    """Inline-asm clobbers of the contract's AArch64 registers (SVE ones if ``vl``)."""
    regs = A64_GPRS + contract.AARCH64_VECTORS
    if vl:
        regs += contract.AARCH64_SVE_VECTORS + contract.AARCH64_SVE_PREDICATES
    return ['~{%s}' % r for r in regs]


# Inline asm of the stack probes: fill [sp - n, sp) with the poison word, and
# copy [sp - n, sp) out; neither writes at or above the stack pointer.
# Operands: (n, poison) and (n, dump).  n is a multiple of 16.
_STACK_ASM = {
    'x86_64': (
        ('movq %rsp, %rdi\nsubq $0, %rdi\nmovq $0, %rcx\n'
         'shrq $$3, %rcx\nmovq $1, %rax\nrep stosq',
         'r,r,~{rdi},~{rcx},~{rax},~{memory},~{dirflag},~{fpsr},~{flags}'),
        ('movq %rsp, %rsi\nsubq $0, %rsi\nmovq $1, %rdi\n'
         'movq $0, %rcx\nshrq $$3, %rcx\nrep movsq',
         'r,r,~{rdi},~{rsi},~{rcx},~{memory},~{dirflag},~{fpsr},~{flags}')),
    'aarch64': (
        ('mov x9, sp\nsub x10, x9, $0\n1:\ncmp x10, x9\nb.hs 2f\n'
         'stp $1, $1, [x10], #16\nb 1b\n2:',
         'r,r,~{x9},~{x10},~{memory},~{nzcv}'),
        ('mov x9, sp\nsub x10, x9, $0\nmov x11, $1\n1:\ncmp x10, x9\n'
         'b.hs 2f\nldp x12, x13, [x10], #16\nstp x12, x13, [x11], #16\n'
         'b 1b\n2:',
         'r,r,~{x9},~{x10},~{x11},~{x12},~{x13},~{memory},~{nzcv}')),
}


_engine = None


def _probes():
    global _engine
    if _engine is None:
        _engine = _ProbeEngine()
    return _engine
