"""Detectors for secrets left behind: stack, registers and freed heap.

The same probe runs on a ``secret_jit`` kernel and on the same Python
function under plain ``@njit``; the plain run is the control that proves the
detector can see a leak (as Go's runtime/secret tests do).

- :func:`stack_after_call` poisons the stack below the probe's stack pointer,
  calls the kernel's CPython wrapper from machine code, and copies the region
  back out, so no Python code runs between the call and the snapshot.
- :func:`registers_after_call` calls a kernel's C wrapper (``cfunc``) and
  spills every general-purpose register and the whole XSAVE area (x87, SSE,
  AVX, AVX-512 and mask registers) the instant it returns.  Kernels use
  :func:`fill_registers` to load a canary into every register first.
- :func:`freed_memory` reads a heap block after its owner freed it.
- :func:`stack_scratch` gives a kernel an array in its own stack frame, so a
  test can place secrets at a known depth.

Every probe exists for x86-64 and for AArch64 (Linux), chosen by
:func:`~secretjit.codegen.host_arch`; the public functions are the same.  On
AArch64 the register probe spills x0-x18 and v0-v31, and, when the CPU has
SVE, the whole z0-z31, p0-p15 and FFR at the current vector length.
"""

import ctypes
import sys

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir
from numba import typeof, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..codegen import host_arch, host_has_sve

POISON = 0x5A5A5A5A5A5A5A5A
CANARY = 0xDEADBEEFCAFEF00D        # top bit set: a valid x87 significand
STACK_WINDOW = 64 * 1024
XSAVE_OFFSET = 128
XSAVE_SIZE = 4096
# AArch64 register spill: x0-x18, then v0-v31, then (with SVE) z0-z31 and
# p0-p15 + FFR at up to the architectural maximum vector length (256 bytes).
A64_GPRS = tuple('x%d' % i for i in range(19))
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


def count_words(buf, words):
    """How many aligned 8-byte words of ``buf`` are in ``words``."""
    arr = np.frombuffer(bytes(buf)[:len(buf) // 8 * 8], dtype=np.uint64)
    wanted = np.fromiter((int(w) & 0xFFFFFFFFFFFFFFFF for w in words),
                         dtype=np.uint64)
    return int(np.isin(arr, wanted).sum())


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
        lines += ['stp x%d, x%d, [x21, #%d]' % (i, i + 1, 8 * i)
                  for i in range(0, 18, 2)]
        lines += ['str x18, [x21, #144]', 'add x9, x21, #%d' % A64_V_OFFSET]
        lines += ['st1 {v%d.2d, v%d.2d, v%d.2d, v%d.2d}, [x9], #64'
                  % (i, i + 1, i + 2, i + 3) for i in range(0, 32, 4)]
        if vl:
            lines += ['.arch_extension sve',
                      'add x9, x21, #%d' % A64_Z_OFFSET]
            lines += ['str z%d, [x9, #%d, mul vl]' % (i, i) for i in range(32)]
            lines += ['mov x10, #%d' % A64_P_OFFSET, 'add x9, x21, x10']
            lines += ['str p%d, [x9, #%d, mul vl]' % (i, i) for i in range(16)]
            lines += ['rdffr p0.b', 'str p0, [x9, #16, mul vl]']
        clobbers = ['~{x%d}' % i for i in range(19)] + ['~{lr}']
        clobbers += ['~{v%d}' % i for i in range(32)]
        if vl:
            clobbers += ['~{z%d}' % i for i in range(32)]
            clobbers += ['~{p%d}' % i for i in range(16)] + ['~{ffr}']
        clobbers += ['~{memory}', '~{nzcv}']
        asmty = ir.FunctionType(ir.VoidType(), [_ptr, _i64, _ptr])
        b.asm(asmty, '\n'.join(lines), '{x20},{x0},{x21},' + ','.join(clobbers),
              [cfunc, arg, out], True)
        b.ret_void()


_X86_GPRS = ('rax', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11')
_GPR_SPILL = ['movq %%%s, %d(%%r12)' % (r, 8 * i) for i, r in enumerate(_X86_GPRS)]


def _x86_clobbers():
    """Clobber list of an x86-64 register probe: every call-clobbered register."""
    feats = _features()
    clobbers = ['~{%s}' % r for r in _X86_GPRS]
    clobbers += ['~{xmm%d}' % i for i in range(32 if 'avx512f' in feats else 16)]
    if 'avx512f' in feats:
        clobbers += ['~{k%d}' % i for i in range(8)]
    clobbers += ['~{st}'] + ['~{st(%d)}' % i for i in range(1, 8)]
    return clobbers + ['~{memory}', '~{dirflag}', '~{fpsr}', '~{flags}']


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


def _overload(dispatcher, args):
    sig = tuple(typeof(a) for a in args)
    dispatcher.compile(sig)
    return dispatcher.overloads[sig]


def stack_after_call(dispatcher, *args, window=STACK_WINDOW):
    """Call ``dispatcher(*args)`` from machine code; return ``(result, stack)``.

    ``stack`` is a bytes copy of the ``window`` bytes below the probe's stack
    pointer, taken right after the kernel's CPython wrapper returned; before
    the call that region was filled with :data:`POISON`.  If the kernel
    raised, ``result`` is the exception instance.  The wrapper's own
    frame (argument unboxing, result boxing) is part of the window.
    """
    cres = _overload(dispatcher, args)
    wrapper = cres.library.get_pointer_to_function(
        cres.fndesc.llvm_cpython_wrapper_name)
    dump = ctypes.create_string_buffer(window)
    try:
        res = _probes().stack(wrapper, tuple(args), ctypes.addressof(dump),
                              window, POISON)
    except Exception as exc:        # the kernel raised: the snapshot still counts
        return exc, dump.raw
    if not res:
        raise RuntimeError("probed call returned NULL without an exception")
    obj = ctypes.cast(res, ctypes.py_object).value
    ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(res))
    return obj, dump.raw


def c_call_depth(address, ints=(), floats=(), window=STACK_WINDOW):
    """Bytes of stack the C function at ``address`` wrote for these arguments.

    Counts from the probe's stack pointer at the call, so the callee's return
    address is included.  Used to calibrate the allowances of external
    callees in :mod:`secretjit.stack_bound`.
    """
    ints = list(ints) + [0] * (C_CALL_INTS - len(ints))
    floats = list(floats) + [0.0] * (2 - len(floats))
    dump = ctypes.create_string_buffer(window)
    _probes().depth(address, *ints, *floats, ctypes.addressof(dump), window,
                    POISON)
    return written_depth(dump.raw)


def written_depth(stack):
    """Bytes below the probe's stack pointer that the call overwrote."""
    words = np.frombuffer(stack, dtype=np.uint64)
    changed = np.nonzero(words != np.uint64(POISON))[0]
    if not len(changed):
        return 0
    return (len(words) - int(changed[0])) * 8


def registers_after_call(dispatcher, arg):
    """Call ``dispatcher``'s C wrapper with one uint64 argument; spill registers.

    Returns a dict: ``gpr`` (rax, rcx, rdx, rsi, rdi, r8-r11 as ints) and
    ``xsave`` (bytes of the XSAVE area: x87, SSE, AVX, AVX-512, masks).
    On AArch64: ``gpr`` (x0-x18), ``vector`` (v0-v31, 16 bytes each) and,
    with SVE, ``sve`` (z0-z31, ``vl`` bytes each), ``pred`` (p0-p15 then FFR,
    ``vl // 8`` bytes each) and ``vl``.
    ``dispatcher`` must take a single integer argument (typed uint64).
    """
    cres = _overload(dispatcher, (np.uint64(arg),))
    cfunc = cres.library.get_pointer_to_function(
        cres.fndesc.llvm_cfunc_wrapper_name)
    if not cfunc:
        raise LookupError("%s has no C wrapper" % dispatcher)
    if host_arch() == 'aarch64':
        return _registers_after_call_aarch64(cfunc, arg)
    raw = np.zeros(XSAVE_OFFSET + XSAVE_SIZE + 64, dtype=np.uint8)
    base = (-raw.ctypes.data) % 64                 # XSAVE needs 64-byte alignment
    buf = raw[base:base + XSAVE_OFFSET + XSAVE_SIZE]
    _probes().regs(cfunc, arg & 0xFFFFFFFFFFFFFFFF, buf.ctypes.data)
    gprs = buf[:72].view(np.uint64)
    return {'gpr': dict(zip(_X86_GPRS, (int(v) for v in gprs))),
            'xsave': buf[XSAVE_OFFSET:].tobytes()}


def registers_after_python_call(dispatcher, *args, mask=0):
    """Call ``dispatcher(*args)`` through its CPython wrapper; spill registers.

    Returns ``(result, spill)``, ``spill`` as :func:`registers_after_call`'s
    (x86-64).  Unlike that probe it takes any arguments, and the registers
    are those after the wrapper boxed the result.  If the kernel raised,
    ``result`` is the exception instance.  Every spilled 8-byte word is
    XORed with ``mask`` before Python sees it, so a caller that compares
    masked words never holds a plain copy of what the registers held.
    """
    if host_arch() != 'x86_64':
        raise NotImplementedError("registers_after_python_call is written for "
                                  "x86-64; on %s use registers_after_call"
                                  % host_arch())
    cres = _overload(dispatcher, args)
    wrapper = cres.library.get_pointer_to_function(
        cres.fndesc.llvm_cpython_wrapper_name)
    raw = np.zeros(XSAVE_OFFSET + XSAVE_SIZE + 64, dtype=np.uint8)
    base = (-raw.ctypes.data) % 64                 # XSAVE needs 64-byte alignment
    buf = raw[base:base + XSAVE_OFFSET + XSAVE_SIZE]
    try:
        res = _probes().wrapper_regs(wrapper, tuple(args), buf.ctypes.data)
        obj = ctypes.cast(res, ctypes.py_object).value
        ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(res))
    except Exception as exc:        # the kernel raised: the spill still counts
        obj = exc
    words = buf.view(np.uint64)
    words ^= np.uint64(mask & 0xFFFFFFFFFFFFFFFF)
    gprs = buf[:72].view(np.uint64)
    return obj, {'gpr': dict(zip(_X86_GPRS, (int(v) for v in gprs))),
                 'xsave': buf[XSAVE_OFFSET:].tobytes()}


def _registers_after_call_aarch64(cfunc, arg):
    vl = sve_vector_length()
    buf = np.zeros(A64_SPILL_SIZE, dtype=np.uint8)
    _probes().regs(cfunc, arg & 0xFFFFFFFFFFFFFFFF, buf.ctypes.data)
    gprs = buf[:8 * len(A64_GPRS)].view(np.uint64)
    out = {'gpr': dict(zip(A64_GPRS, (int(v) for v in gprs))),
           'vector': buf[A64_V_OFFSET:A64_V_OFFSET + 512].tobytes(),
           'vl': vl, 'sve': b'', 'pred': b''}
    if vl:
        out['sve'] = buf[A64_Z_OFFSET:A64_Z_OFFSET + 32 * vl].tobytes()
        out['pred'] = buf[A64_P_OFFSET:A64_P_OFFSET + 17 * (vl // 8)].tobytes()
    return out


def _canary_registers_aarch64(spill, canary):
    found = [name for name, v in spill['gpr'].items() if v == canary]
    want = np.uint64(canary)
    vec = np.frombuffer(spill['vector'], dtype=np.uint64)
    for i in range(32):
        if (vec[2 * i:2 * i + 2] == want).any():
            found.append('v%d' % i)
    vl = spill.get('vl', 0)
    if vl and spill['sve']:
        z = np.frombuffer(spill['sve'], dtype=np.uint64).reshape(32, vl // 8)
        for i in range(32):
            if (z[i, 2:] == want).any():          # bits above v's 128
                found.append('z%d_hi' % i)
        pl = vl // 8
        pattern = int(canary).to_bytes(8, 'little')
        for i in range(17):
            reg = spill['pred'][i * pl:(i + 1) * pl]
            name = 'p%d' % i if i < 16 else 'ffr'
            if any(reg[j:j + 8] == pattern for j in range(0, pl - 7, 8)) \
                    or (pl < 8 and reg == pattern[:pl] and any(reg)):
                found.append(name)
    return found


def canary_registers(spill, canary=CANARY):
    """Names of the registers in a :func:`registers_after_call` spill holding ``canary``.

    x86-64: ``rcx``, ``xmm3``, ``zmm20``, ``k2``, ``st0`` ...; AArch64:
    ``x5``, ``v3`` (either 64-bit lane), ``z3_hi`` (SVE bits above v3),
    ``p3``, ``ffr``.
    """
    if 'xsave' not in spill:
        return _canary_registers_aarch64(spill, canary)
    found = [name for name, v in spill['gpr'].items() if v == canary]
    xs = np.frombuffer(spill['xsave'], dtype=np.uint64)
    hits = np.nonzero(xs == np.uint64(canary))[0] * 8
    for off in hits:
        found.append(_xsave_slot(int(off)))
    return found


def _xsave_slot(off):
    """Name the XSAVE-area location at byte ``off`` (standard format)."""
    if 32 <= off < 160:
        return 'st%d' % ((off - 32) // 16)
    if 160 <= off < 416:
        return 'xmm%d' % ((off - 160) // 16)
    if 576 <= off < 832:
        return 'ymm%d_hi' % ((off - 576) // 16)
    if 1088 <= off < 1152:
        return 'k%d' % ((off - 1088) // 8)
    if 1152 <= off < 1664:
        return 'zmm%d_hi256' % ((off - 1152) // 32)
    if 1664 <= off < 2688:
        return 'zmm%d' % (16 + (off - 1664) // 64)
    return 'xsave+%d' % off


def freed_memory(address, nbytes):
    """Bytes at ``address`` now, e.g. after the block there was freed.

    Reading freed heap memory is what an attacker with a memory disclosure
    does; the block must be small enough that libc keeps it mapped.
    """
    return ctypes.string_at(address, nbytes)


# -- helpers for kernels under test ------------------------------------------

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
        lines = ['movq $0, %rax'] + ['movq %%rax, %%%s' % r for r in (
            'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11')]
        if 'avx512f' in feats:
            nvec = 32
            lines += ['vpbroadcastq %%rax, %%zmm%d' % i for i in range(32)]
            lines += ['kmovq %%rax, %%k%d' % i for i in range(8)] \
                if 'avx512bw' in feats else []
        elif 'avx2' in feats:
            nvec = 16
            lines += ['vmovq %rax, %xmm0', 'vpbroadcastq %xmm0, %ymm0']
            lines += ['vmovdqa %%ymm0, %%ymm%d' % i for i in range(1, 16)]
        else:
            nvec = 16
            lines += ['movq %rax, %xmm0', 'punpcklqdq %xmm0, %xmm0']
            lines += ['movdqa %%xmm0, %%xmm%d' % i for i in range(1, 16)]
        lines += ['fldt ($1)'] * 8 + ['fstp %st(0)'] * 8
        clobbers = ['~{%s}' % r for r in (
            'rax', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11')]
        clobbers += ['~{%s%d}' % ('xmm', i) for i in range(nvec)]
        if 'avx512bw' in feats:
            clobbers += ['~{k%d}' % i for i in range(8)]
        clobbers += ['~{st}'] + ['~{st(%d)}' % i for i in range(1, 8)]
        clobbers += ['~{memory}', '~{dirflag}', '~{fpsr}', '~{flags}']
        fnty = ir.FunctionType(ir.VoidType(), [_i64, _ptr])
        builder.asm(fnty, '\n'.join(lines), 'r,r,' + ','.join(clobbers),
                    [val, builder.bitcast(x87, _ptr)], True)
        return context.get_dummy_value()

    return types.void(canary), codegen


def _fill_registers_aarch64(context, builder, arg, canary):
    val = context.cast(builder, arg, canary, types.uint64)
    vl = sve_vector_length()
    # p registers load from memory: 32 bytes (the largest predicate) of canary
    image = cgutils.alloca_once(builder, ir.ArrayType(_i64, 4))
    for i in range(4):
        builder.store(val, builder.gep(image, [ir.Constant(ir.IntType(32), 0),
                                               ir.Constant(ir.IntType(32), i)]))
    lines = ['mov x%d, $0' % i for i in range(19)]
    if vl:
        lines += ['.arch_extension sve']
        lines += ['dup z%d.d, $0' % i for i in range(32)]
        lines += ['ldr p%d, [$1]' % i for i in range(16)]
    else:
        lines += ['dup v%d.2d, $0' % i for i in range(32)]
    clobbers = ['~{x%d}' % i for i in range(19)]
    clobbers += ['~{v%d}' % i for i in range(32)]
    if vl:
        clobbers += ['~{z%d}' % i for i in range(32)]
        clobbers += ['~{p%d}' % i for i in range(16)]
    clobbers += ['~{memory}']
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


def describe_machine():
    """One line naming the architecture and CPU the probes ran on."""
    extra = ''
    if host_arch() == 'aarch64' and sve_vector_length():
        extra = ', SVE %d-bit' % (8 * sve_vector_length())
    return '%s (%s%s), Python %s' % (host_arch(), ll.get_host_cpu_name(), extra,
                                      sys.version.split()[0])
