"""Registers: no call-clobbered register holds a kernel's value after return.

Like Go's register test: the kernel loads a canary into every register
(:func:`secretjit.testing.probes.fill_registers`); the probe spills all registers and
the XSAVE area the instant the kernel's C wrapper returns.
"""

import re
import sys

import numpy as np
from numba import njit

from secretjit import secret_jit
from secretjit.testing import probes

from _kernels import register_kernel, register_kernel_raises


def test_registers_control_njit_leaks():
    found = probes.canary_registers(
        probes.registers_after_call(njit(register_kernel), probes.CANARY))
    assert found, "control failed: the probe cannot see register leaks"
    # the canary survives in general-purpose, vector and x87 registers
    assert any(r.startswith('r') for r in found)
    assert any(r.startswith('st') for r in found)
    assert any(r.startswith(('xmm', 'ymm', 'zmm')) for r in found)


def test_registers_secret_are_zero():
    spill = probes.registers_after_call(secret_jit(register_kernel),
                                        probes.CANARY)
    assert probes.canary_registers(spill) == []
    # all caller-saved GPRs except the return register are exactly zero
    assert all(v == 0 for name, v in spill['gpr'].items() if name != 'rax')


def test_registers_secret_zero_when_kernel_raises(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, 'unraisablehook',
                        lambda u: reported.append(u.exc_value))
    found = probes.canary_registers(
        probes.registers_after_call(njit(register_kernel_raises),
                                    probes.CANARY))
    assert found, "control failed: the probe cannot see register leaks"
    spill = probes.registers_after_call(secret_jit(register_kernel_raises),
                                        probes.CANARY)
    assert probes.canary_registers(spill) == []
    # both C wrappers reported the kernel's exception as unraisable
    assert len(reported) == 2
    assert all('kernel failed' in str(e) for e in reported)


def test_boundary_zeroes_all_vector_and_mask_registers():
    kernel = secret_jit(register_kernel)
    kernel(np.uint64(1))
    asm = kernel.inspect_asm(kernel.signatures[0])
    label = re.search(r'^"?__secretjit\.boundary\.[^\s:"]+"?:$', asm, re.M)
    body = asm[label.end():]
    epilogue = body[:body.index('retq')]
    for reg in ('ecx', 'edx', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d'):
        assert 'xorl\t%{0}, %{0}'.format(reg) in epilogue, reg
    assert epilogue.count('fldz') == 8
    if probes._features() >= {'avx512f'}:
        # zmm16-31 and k0-k7 with AVX512F instructions (passes/epilogue.py)
        assert 'vpxord\t%zmm31, %zmm31, %zmm31' in epilogue and '%k7' in epilogue
