"""Poly1305's and BLAKE2b's vector-IR intrinsics (issue 16): results, errors, machine code.

- ``poly_lanes`` (secretjit.kernels._poly_simd) against its definition in Python
  integers mod 2**130 - 5 (each lane: (acc + block + 2**128) * mult), for lane
  counts 1..16 and 0..3 chunks, with all-ones blocks and accumulators at their
  bound; compiled (secret_jit, njit; the IFMA and the portable path) and called
  from Python.
- ``blake2b_compress`` (secretjit.kernels._blake2b_simd) against hashlib on one-
  and two-block messages, and compiled against Python for counters with a high
  word.
- Bad arguments are typing errors naming the problem.
- Machine code (x86-64): Poly1305's hot loop keeps its accumulators in registers
  (no store inside the loop) and multiplies whole vectors (``vpmadd52huq`` on zmm
  where the CPU has AVX-512 IFMA, ``vpmuludq`` in the portable path); BLAKE2b's rounds rotate
  whole ymm vectors.  The controls: a numba loop over lane arrays stores in its
  loop, and scalar code has no such vector rotation, so the detectors fire.
"""

import hashlib
import re

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from secretjit import secret_jit
from secretjit.kernels import poly1305 as P
from secretjit.kernels._blake2b_simd import IV, blake2b_compress
from secretjit.kernels._poly_simd import MUL_L, MUL_N, poly_lanes, poly_lanes_base26, pv_size

from _cpu import FLAGS, X86

IFMA = X86 and {"avx512f", "avx512ifma"} <= FLAGS
PRIME = (1 << 130) - 5
M26 = (1 << 26) - 1


# -- poly_lanes -----------------------------------------------------------------

def _limbs(v):
    return [(v >> (26 * k)) & M26 for k in range(5)]


def _value(pv, lanes, lane, row=0):
    return sum(int(pv[(row + k) * lanes + lane]) << (26 * k) for k in range(5))


def _pv(rng, lanes, full):
    """pv with random (or maximal) accumulators and random multipliers r**k in both tables."""
    pv = np.zeros(pv_size(lanes), np.uint32)
    r = int.from_bytes(rng.bytes(16), "little") & 0x0ffffffc0ffffffc0ffffffc0fffffff
    for l in range(lanes):
        acc = [M26 + (1 << 12) if k == 1 else M26 for k in range(5)] if full else \
            _limbs(int.from_bytes(rng.bytes(16), "little"))
        for k in range(5):
            pv[k * lanes + l] = acc[k]
        for row, e in ((MUL_N, lanes), (MUL_L, lanes - l)):
            m = _limbs(pow(r, e, PRIME))
            for k in range(5):
                pv[(row + k) * lanes + l] = m[k]
    return pv


def _expected(pv, d, lanes):
    """The lanes' values mod p after poly_lanes, from the definition."""
    acc = [_value(pv, lanes, l) for l in range(lanes)]
    nchunks = len(d) // (16 * lanes)
    for c in range(nchunks):
        row = MUL_L if c == nchunks - 1 else MUL_N
        for l in range(lanes):
            p = 16 * (lanes * c + l)
            block = int.from_bytes(bytes(d[p:p + 16]), "little") + (1 << 128)
            acc[l] = (acc[l] + block) * _value(pv, lanes, l, row) % PRIME
    return acc


def _every_lane_count(lanes_fn):
    """A kernel running lanes_fn on pvs[i] with 1, 2, 4, 8 and 16 lanes (one compile)."""
    def run(pvs, d):
        lanes_fn(pvs[0], d, 1)
        lanes_fn(pvs[1], d, 2)
        lanes_fn(pvs[2], d, 4)
        lanes_fn(pvs[3], d, 8)
        lanes_fn(pvs[4], d, 16)
    return run


every_lane_count = _every_lane_count(poly_lanes)
every_lane_count_base26 = _every_lane_count(poly_lanes_base26)


LANE_COUNTS = (1, 2, 4, 8, 16)


def _check_lanes(run, rng, nbytes, full=False, fill=None):
    d = (np.full(nbytes, fill, np.uint8) if fill is not None
         else rng.integers(0, 256, nbytes, dtype=np.uint8))
    pvs = [_pv(rng, n, full) for n in LANE_COUNTS]
    want = [_expected(pv, d, n) for pv, n in zip(pvs, LANE_COUNTS)]
    run(pvs, d)
    for pv, n, w in zip(pvs, LANE_COUNTS, want):
        got = [_value(pv, n, l) % PRIME for l in range(n)]
        assert got == w, (n, nbytes)
        assert all(int(pv[k * n + l]) < 1 << 27 for k in range(5) for l in range(n))


@pytest.mark.parametrize("py_func", [every_lane_count, every_lane_count_base26],
                         ids=["poly_lanes", "base26"])
@pytest.mark.parametrize("jit", [secret_jit, njit], ids=["secret_jit", "njit"])
def test_poly_lanes_matches_the_definition(jit, py_func):
    """Both code paths: poly_lanes (base 2**44 with IFMA for 8 and 16 lanes on a CPU
    with it) and poly_lanes_base26 (the portable code)."""
    rng = np.random.default_rng(16)
    kernel = jit(py_func)

    def run(pvs, d):
        kernel(tuple(pvs), d)
    # 16-lane chunks: 0 (no-op), 1 (only the last-chunk table), 2, 3; odd byte counts:
    # the partial chunk is not read
    for nbytes in (0, 255, 256, 257, 512, 768 + 15):
        _check_lanes(run, rng, nbytes)
    for fill in (0x00, 0xFF):
        _check_lanes(run, rng, 768, full=True, fill=fill)


def test_poly_lanes_from_python_is_the_same_computation():
    """Called from Python (as under NUMBA_DISABLE_JIT=1) it computes in Python ints."""
    rng = np.random.default_rng(7)

    def run(pvs, d):
        for pv, n in zip(pvs, LANE_COUNTS):
            poly_lanes(pv, d, n)
    _check_lanes(run, rng, 512 + 3)
    _check_lanes(run, rng, 512, full=True, fill=0xFF)


def _lanes_call(lanes):
    def run(pv, d):
        poly_lanes(pv, d, lanes)
    return run


@pytest.mark.parametrize("args, lanes, message", [
    ((np.zeros(69, np.uint32), np.zeros(64, np.uint8)), 3,
     "lanes must be a constant power of two up to 64"),
    ((np.zeros(69, np.uint64), np.zeros(64, np.uint8)), 4,
     "pv must be a 1-D C-contiguous uint32 array and d a 1-D C-contiguous uint8 array"),
    ((np.zeros(92, np.uint32), np.zeros(64, np.uint32)), 4,
     "pv must be a 1-D C-contiguous uint32 array and d a 1-D C-contiguous uint8 array"),
])
def test_poly_lanes_bad_arguments_are_typing_errors(args, lanes, message):
    with pytest.raises(TypingError, match=message):
        njit(_lanes_call(lanes))(*args)


# -- blake2b_compress -------------------------------------------------------------

def _h0(digest_size=64):
    h = np.array(IV, np.uint64)
    h[0] ^= np.uint64(0x01010000 ^ digest_size)
    return h


ALL_ONES = np.uint64(2 ** 64 - 1)


def two_blocks(h, blk, t0a, t0b):
    blake2b_compress(h, blk[0:128], t0a, np.uint64(0), np.uint64(0))
    blake2b_compress(h, blk[128:256], t0b, np.uint64(0), ALL_ONES)


def one_block(h, blk, t0, t1, last):
    blake2b_compress(h, blk, t0, t1, last)


@pytest.mark.parametrize("jit", [secret_jit, njit, None], ids=["secret_jit", "njit", "python"])
def test_blake2b_compress_against_hashlib(jit):
    rng = np.random.default_rng(7693)
    one = jit(one_block) if jit else one_block
    two = jit(two_blocks) if jit else two_blocks
    for n in (0, 1, 127, 128):                      # one (zero-padded) final block
        data = rng.integers(0, 256, n, dtype=np.uint8)
        blk = np.zeros(128, np.uint8)
        blk[:n] = data
        h = _h0()
        one(h, blk, np.uint64(n), np.uint64(0), ALL_ONES)
        assert h.tobytes() == hashlib.blake2b(data.tobytes()).digest(), n
    for n in (129, 200, 256):
        data = rng.integers(0, 256, n, dtype=np.uint8)
        blk = np.zeros(256, np.uint8)
        blk[:n] = data
        h = _h0()
        two(h, blk, np.uint64(128), np.uint64(n))
        assert h.tobytes() == hashlib.blake2b(data.tobytes()).digest(), n


def test_blake2b_compress_counter_high_word_compiled_as_in_python():
    """t1 (past 2**64 bytes, unreachable with hashlib) enters the state in both paths."""
    rng = np.random.default_rng(1)
    kernel = secret_jit(one_block)
    blk = rng.integers(0, 256, 128, dtype=np.uint8)
    seen = set()
    for t0, t1, last in ((5, 1, 0), (2 ** 64 - 1, 2 ** 63, 2 ** 64 - 1), (5, 0, 0)):
        a, b = _h0(), _h0()
        args = (np.uint64(t0), np.uint64(t1), np.uint64(last))
        kernel(a, blk, *args)
        one_block(b, blk, *args)
        assert (a == b).all(), (t0, t1, last)
        seen.add(a.tobytes())
    assert len(seen) == 3


@pytest.mark.parametrize("args, message", [
    ((np.zeros(8, np.uint32), np.zeros(128, np.uint8), np.uint64(0), np.uint64(0),
      np.uint64(0)), "h must be a writable 1-D C-contiguous uint64 array"),
    ((np.zeros(8, np.uint64), np.zeros(16, np.uint64), np.uint64(0), np.uint64(0),
      np.uint64(0)), "blk a 1-D C-contiguous uint8 array"),
    ((np.zeros(8, np.uint64), np.zeros(128, np.uint8), 0, np.uint64(0), np.uint64(0)),
     "t0, t1 and last must be uint64"),
])
def test_blake2b_compress_bad_arguments_are_typing_errors(args, message):
    with pytest.raises(TypingError, match=message):
        njit(one_block)(*args)


# -- machine code ------------------------------------------------------------------

needs_avx2 = pytest.mark.skipif(not X86 or "avx2" not in FLAGS,
                                reason="the x86-64 machine-code checks need AVX2")
WIDE = "zmm" if "avx512f" in FLAGS else "ymm"


def _asm(py_func, *args):
    disp = secret_jit(py_func)
    disp(*args)
    return disp.inspect_asm(disp.signatures[0])


def _loops(asm):
    """The bodies of the loops in asm: from a label to a jump back to it."""
    lines = asm.splitlines()
    labels = {m.group(1): i for i, l in enumerate(lines)
              for m in [re.match(r"^(\.LBB\w+):", l)] if m}
    for i, line in enumerate(lines):
        m = re.match(r"^\s+j\w+\s+(\.LBB\w+)\s*$", line)
        if m and m.group(1) in labels and labels[m.group(1)] < i:
            yield lines[labels[m.group(1)]:i + 1]


def _count(body, op, regs):
    return sum(bool(re.match(r"\s+(?:%s)\b.*%%(?:%s)" % (op, regs), l)) for l in body)


def _hot_loop(asm, op, need, regs=WIDE):
    """The shortest loop with at least ``need`` ``op`` instructions on ``regs`` registers."""
    return min((b for b in _loops(asm) if _count(b, op, regs) >= need), key=len)


def _stores(body):
    """Instructions of body that write memory (AT&T syntax: a memory destination operand)."""
    return [l for l in body if re.match(r"\s+(v?mov\w*|v?pextr\w*|v?extract\w*)\s+.*,\s*-?\w*\(", l)]


def lanes(ps, data, n):
    P._poly_blocks(ps, data, 0, n)


def array_lanes(acc, d, r, n):
    """Control: lane accumulators in an array, updated by a numba loop per chunk."""
    for c in range(n):
        for l in range(16):
            acc[l] = (acc[l] + np.uint64(d[16 * c + l])) * r


def lanes_base26(pv, d):
    poly_lanes_base26(pv, d, 16)


# 16 lanes of five 26-bit limbs are 20 ymm accumulators: more than AVX2's 16
# vector registers, so without AVX-512 (32 zmm) the chunk loop spills (measured
# on an AVX2 host, issue 15's session 4: ~40 stores in the loop).
needs_avx512 = pytest.mark.skipif(not X86 or "avx512f" not in FLAGS,
                                  reason="16 lanes x 5 limbs need more than AVX2's 16 "
                                         "vector registers: the hot loop spills there")


@needs_avx512
@pytest.mark.parametrize("path", ["poly_blocks", "base26"])
def test_poly1305_hot_loop_keeps_the_accumulators_in_registers(path):
    ps, msg = np.zeros(P.STATE_SIZE, np.uint64), np.zeros(4096, np.uint8)
    if path == "poly_blocks":
        asm = _asm(lanes, ps, msg, 256)
    else:
        asm = _asm(lanes_base26, np.zeros(pv_size(16), np.uint32), msg)
    if path == "poly_blocks" and IFMA:
        # 9 high-half multiply-adds per block, 8 blocks per zmm: 18 per chunk
        body = _hot_loop(asm, "vpmadd52huq", 18, "zmm")
        assert _count(body, "vpmuludq", "[xyz]mm") == 0
    else:   # 25 products per block, 16 blocks per chunk: 50 zmm or 100 ymm vpmuludq
        body = _hot_loop(asm, "vpmuludq", 25 * 16 * 64 // (512 if WIDE == "zmm" else 256))
    assert _stores(body) == [], _stores(body)
    # control: array accumulators are stored inside their loop
    body = _hot_loop(_asm(array_lanes, np.zeros(16, np.uint64), msg, np.uint64(3), 16),
                     "v?p?mul\\w*|imul\\w*", 1, "[xyz]mm\\d+|r\\w+")
    assert _stores(body), body


def compress(h, blk):
    blake2b_compress(h, blk, np.uint64(128), np.uint64(0), np.uint64(0))


def scalar_rotations(h, n):
    for i in range(n):
        for j in range(8):
            h[j] = ((h[j] ^ h[(j + 1) % 8]) >> np.uint64(24)) | (h[j] << np.uint64(40))


@needs_avx2
def test_blake2b_rounds_rotate_whole_vectors():
    asm = _asm(compress, np.zeros(8, np.uint64), np.zeros(128, np.uint8))
    if "avx512vl" in FLAGS:                        # vprolq/vprorq on ymm: 8 per round
        assert len(re.findall(r"^\s+vpro[lr]q\s+.*%ymm", asm, re.M)) >= 96
    else:                                          # AVX2: shuffles and shifts on ymm
        assert len(re.findall(r"^\s+vpaddq\s+.*%ymm", asm, re.M)) >= 12 * 2 * 6
    assert len(re.findall(r"^\s+vpaddq\s+.*%ymm", asm, re.M)) >= 12 * 2 * 6
    # control: scalar rotations give no vector rotation or vector add
    asm = _asm(scalar_rotations, np.zeros(8, np.uint64), 3)
    assert not re.findall(r"^\s+(vpro[lr]q|vpaddq)\s+.*%ymm", asm, re.M)
