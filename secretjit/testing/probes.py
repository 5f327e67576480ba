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

The machine code is built in :mod:`~secretjit.testing.probe_engine`, the
test intrinsics :func:`fill_registers` and :func:`stack_scratch` live in
:mod:`~secretjit.testing.intrinsics`; both are importable from here.
Every probe exists for x86-64 and for AArch64 (Linux), chosen by
:func:`~secretjit.codegen.host_arch`; the public functions are the same.  On
AArch64 the register probe spills x0-x18 and v0-v31, and, when the CPU has
SVE, the whole z0-z31, p0-p15 and FFR at the current vector length.
"""

import ctypes
import sys

import llvmlite.binding as ll
import numpy as np
from numba import typeof

from .. import contract
from ..codegen import host_arch
from .intrinsics import fill_registers, stack_scratch
from .probe_engine import (A64_P_OFFSET, A64_SPILL_SIZE, A64_V_OFFSET,  # noqa: F401
                           A64_Z_OFFSET, C_CALL_INTS, CANARY, POISON, STACK_WINDOW,
                           XSAVE_OFFSET, XSAVE_SIZE, _features, _probes,
                           sve_vector_length)

__all__ = ['CANARY', 'POISON', 'STACK_WINDOW', 'c_call_depth', 'canary_registers',
           'count_words', 'describe_machine', 'fill_registers', 'freed_memory',
           'registers_after_call', 'registers_after_python_call',
           'stack_after_call', 'stack_scratch', 'sve_vector_length',
           'written_depth']


def count_words(buf, words):
    """How many aligned 8-byte words of ``buf`` are in ``words``."""
    arr = np.frombuffer(bytes(buf)[:len(buf) // 8 * 8], dtype=np.uint64)
    wanted = np.fromiter((int(w) & 0xFFFFFFFFFFFFFFFF for w in words),
                         dtype=np.uint64)
    return int(np.isin(arr, wanted).sum())


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
    return {'gpr': _x86_gprs(buf),
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
    return obj, {'gpr': _x86_gprs(buf),
                 'xsave': buf[XSAVE_OFFSET:].tobytes()}


def _gprs(buf, names):
    """``{register: value}`` of a spill whose first words are ``names``, in order."""
    words = buf[:8 * len(names)].view(np.uint64)
    return dict(zip(names, (int(v) for v in words)))


def _x86_gprs(buf):
    return _gprs(buf, contract.X86_64_CALL_CLOBBERED)


def _registers_after_call_aarch64(cfunc, arg):
    vl = sve_vector_length()
    buf = np.zeros(A64_SPILL_SIZE, dtype=np.uint8)
    _probes().regs(cfunc, arg & 0xFFFFFFFFFFFFFFFF, buf.ctypes.data)
    out = {'gpr': _gprs(buf, contract.AARCH64_CALL_CLOBBERED),
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
    does.  Call and read inside ``heaplog.heap_log().window()``: there a
    block numba's runtime freed is held back, so nothing has reused it.
    """
    return ctypes.string_at(address, nbytes)


def describe_machine():
    """One line naming the architecture and CPU the probes ran on."""
    extra = ''
    if host_arch() == 'aarch64' and sve_vector_length():
        extra = ', SVE %d-bit' % (8 * sve_vector_length())
    return '%s (%s%s), Python %s' % (host_arch(), ll.get_host_cpu_name(), extra,
                                      sys.version.split()[0])
