"""The multi-lane kernel paths (issue 16): ChaCha20's vector-IR lanes and Poly1305's lanes.

- ``chacha_lanes`` (secretjit.kernels._simd) against the one-block scalar path
  for every lane count it accepts, under ``secret_jit`` and plain ``njit``,
  with counters that wrap; bad arguments are typing errors naming the problem.
- The machine code of the hot loops is vectorized the way the issue asks:
  ``vprold`` on zmm (AVX-512) or ymm (AVX2) registers for ChaCha20, ``vpmuludq``
  on zmm/ymm (``vpmadd52huq`` on zmm with AVX-512 IFMA) for Poly1305's lanes.  The controls: the one-block ChaCha20 kernel
  and the serial Poly1305 path, compiled alone, have no such instructions, so
  the detector does not fire on scalar code.
"""

import re

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from secretjit import secret_jit
from secretjit.kernels import chacha20 as C, poly1305 as P
from secretjit.kernels._simd import chacha_lanes

from _cpu import FLAGS, X86

WIDE = "zmm" if "avx512f" in FLAGS else "ymm"


def _lanes_py(n):
    def run(st, ctr, out):
        chacha_lanes(st, ctr, out, n)
    return run


def every_lane_count(st, ctr, out):
    """One compile for all lane counts: out[0:16], [16:48], [48:112], [112:240], [240:496]."""
    chacha_lanes(st, ctr, out[0:16], 1)
    chacha_lanes(st, ctr, out[16:48], 2)
    chacha_lanes(st, ctr, out[48:112], 4)
    chacha_lanes(st, ctr, out[112:240], 8)
    chacha_lanes(st, ctr, out[240:496], 16)


def _blocks_ref(st, ctr, n):
    """n keystream blocks from the scalar one-block path (secret_jit kernel chacha20_block)."""
    key = st[4:12].view(np.uint8).copy()
    nonce = st[13:16].view(np.uint8).copy()
    out = np.empty(64 * n, np.uint8)
    for l in range(n):
        C.chacha20_block(key, nonce, (ctr + l) % 2 ** 32, out[64 * l:64 * (l + 1)])
    return out.view(np.uint32)


@pytest.mark.parametrize("jit", [secret_jit, njit], ids=["secret_jit", "njit"])
def test_chacha_lanes_matches_the_scalar_block_for_every_lane_count(jit):
    rng = np.random.default_rng(16)
    st = np.empty(16, np.uint32)
    st[:4] = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
    kernel = jit(every_lane_count)
    for ctr in (0, 1, 2 ** 32 - 3):              # the last one wraps inside the chunks
        st[4:] = rng.integers(0, 2 ** 32, 12, dtype=np.uint32)
        st[12] = rng.integers(0, 2 ** 32, dtype=np.uint32)   # never read
        out = np.zeros(496, np.uint32)
        kernel(st, np.uint32(ctr), out)
        start = 0
        for n in (1, 2, 4, 8, 16):
            assert (out[start:start + 16 * n] == _blocks_ref(st, ctr, n)).all(), (n, ctr)
            start += 16 * n


def test_chacha_lanes_from_python_is_the_same_computation():
    """Called from Python (as under NUMBA_DISABLE_JIT=1) it computes in Python ints."""
    st = np.arange(1, 17, dtype=np.uint32) * np.uint32(0x9E3779B9)
    st[:4] = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
    out = np.zeros(64, np.uint32)
    chacha_lanes(st, np.uint32(2 ** 32 - 2), out, 4)
    assert (out == _blocks_ref(st, 2 ** 32 - 2, 4)).all()


@pytest.mark.parametrize("args, message", [
    ((np.zeros(16, np.uint32), np.uint32(0), np.zeros(48, np.uint32), 3),
     "lanes must be a constant power of two up to 16"),
    ((np.zeros(16, np.uint32), np.uint32(0), np.zeros(64, np.uint8), 4),
     "st and out must be 1-D C-contiguous uint32 arrays"),
    ((np.zeros(16, np.uint32), 0, np.zeros(64, np.uint32), 4),
     "ctr a uint32"),
])
def test_chacha_lanes_bad_arguments_are_typing_errors(args, message):
    with pytest.raises(TypingError, match=message):
        njit(_lanes_py(args[3]))(*args[:3])


def _compiled(py_func, *args):
    disp = secret_jit(py_func)
    disp(*args)
    return disp


def chunk(st, ks32):
    C._keystream_chunk(st, np.uint32(1), ks32)


def block(st, x, ks32):
    C._keystream_block(st, np.uint32(1), x, ks32)


def lanes(ps, data, n):
    P._poly_blocks(ps, data, 0, n)


def serial(ps, data, n):
    P._blocks_serial(ps, data, 0, n, P._HIBIT)


def _vector_ops(disp, op):
    """The registers ('zmm'/'ymm'/'xmm') of every ``op`` instruction in disp's machine code."""
    asm = disp.inspect_asm(disp.signatures[0])
    return [m.group(1) for m in re.finditer(r"^\s+%s\s+[^\n]*?%%(zmm|ymm|xmm)" % op, asm, re.M)]


needs_avx2 = pytest.mark.skipif(not X86 or "avx2" not in FLAGS,
                                reason="the x86-64 vector-width check needs AVX2")


@needs_avx2
def test_chacha20_hot_loop_rotates_whole_vectors():
    st = np.arange(16, dtype=np.uint32)
    disp = _compiled(chunk, st, np.zeros(16 * C.LANES, np.uint32))
    regs = _vector_ops(disp, "vprold") + _vector_ops(disp, "vpshufb")
    assert regs.count(WIDE) >= 80, regs[:20]     # 20 rounds x 4 rotations, at least
    # control: the one-block path (scalar rounds) rotates no wide vector
    disp = _compiled(block, st, np.zeros(16, np.uint32), np.zeros(16, np.uint32))
    assert WIDE not in _vector_ops(disp, "vprold")


@needs_avx2
def test_poly1305_lanes_multiply_whole_vectors():
    ps, msg = np.zeros(P.STATE_SIZE, np.uint64), np.zeros(4096, np.uint8)
    disp = _compiled(lanes, ps, msg, 256)
    # 25 limb products per block (vpmuludq), or 9 high halves (vpmadd52huq, AVX-512 IFMA)
    muls, highs = _vector_ops(disp, "vpmuludq"), _vector_ops(disp, "vpmadd52huq")
    assert muls.count(WIDE) >= 25 or highs.count("zmm") >= 9, (muls[:20], highs[:20])
    # control: the serial path has no wide vpmuludq or vpmadd52huq
    disp = _compiled(serial, ps, msg, 4)
    assert WIDE not in _vector_ops(disp, "vpmuludq") + _vector_ops(disp, "vpmadd52huq")
