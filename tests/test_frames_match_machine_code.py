"""The frames the stack bound was computed from are the frames that run.

The bound is computed from assembly LLVM emits for the module before the JIT
compiles it again.  Here the object code the JIT actually loaded (kept by
numba's object cache) is disassembled with capstone, and every function's
frame (return address, pushes, ``sub rsp``, realignment) must equal the frame
the analysis used.
"""

import io
import platform

import numpy as np
import pytest

capstone = pytest.importorskip('capstone')
elffile = pytest.importorskip('elftools.elf.elffile')

from secretjit import secret_jit  # noqa: E402
from secretjit.kernels import aead, x25519  # noqa: E402

from _kernels import stack_kernel  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine() != 'x86_64',
                                reason='x86-64 machine-code check')


def _frames_from_object(obj):
    elf = elffile.ELFFile(io.BytesIO(obj))
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    symtab = elf.get_section_by_name('.symtab')
    frames = {}
    for sym in symtab.iter_symbols():
        if sym['st_info']['type'] != 'STT_FUNC' or not sym['st_size']:
            continue
        sec = elf.get_section(sym['st_shndx'])
        code = sec.data()[sym['st_value']:sym['st_value'] + sym['st_size']]
        frame = 8
        for ins in md.disasm(code, 0):
            ops = ins.op_str.replace(' ', '')
            if ins.mnemonic == 'push':
                frame += 8
            elif ins.mnemonic == 'sub' and ops.startswith('rsp,'):
                frame += int(ops[4:], 0)
            elif ins.mnemonic == 'and' and ops.startswith('rsp,'):
                frame += -int(ops[4:], 0)
        frames[sym.name] = frame
    return frames


@pytest.mark.parametrize('make', [
    lambda: (secret_jit(cache=True)(stack_kernel),
             (np.arange(4, dtype=np.uint64),)),
    lambda: (secret_jit(cache=True)(x25519.x25519_kernel.py_func),
             (np.empty(32, np.uint8), np.full(32, 3, np.uint8), np.full(32, 9, np.uint8))),
    lambda: (secret_jit(cache=True)(aead.aead_seal_kernel.py_func),
             (np.ones(32, np.uint8), np.ones(12, np.uint8), np.ones(100, np.uint8),
              np.ones(5, np.uint8), np.empty(116, np.uint8))),
], ids=['stack_kernel', 'x25519_kernel', 'aead_seal_kernel'])
def test_analysed_frames_equal_loaded_machine_code(make, monkeypatch, tmp_path):
    import numba.core.config
    monkeypatch.setattr(numba.core.config, 'CACHE_DIR', str(tmp_path))
    kernel, args = make()
    kernel(*args)
    lib = kernel.overloads[kernel.signatures[0]].library
    assert lib.frame_sizes, "compiled from the cache: no analysis to compare"
    loaded = _frames_from_object(lib._get_compiled_object())
    compared = 0
    for name, frame in lib.frame_sizes.items():
        if name in loaded:
            assert loaded[name] == frame, name
            compared += 1
    assert compared >= 3
