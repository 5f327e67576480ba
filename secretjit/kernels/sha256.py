"""SHA-256 (FIPS 180-4) as a numba kernel, with the streaming pieces HMAC/HKDF build on.

Internal streaming API (all njit): ``_sha_init(H)``, ``_sha_blocks(H, W, data, off, nblocks)``
and ``_sha_final(H, W, data, off, rem, total_len, buf, out, ooff)`` which pads the last
``rem`` (< 64) bytes given the total message length in bytes.

The block compression has two implementations chosen once at import time:
``_sha_blocks_ni`` (a numba intrinsic emitting the x86 SHA extensions, used when the host
CPU has them and numba compiles for the host CPU) and the portable ``_sha_blocks_scalar``.
Set ``SECRETJIT_NO_SHANI=1`` to force the portable one (e.g. before AOT-compiling for a
generic CPU).  Both are constant time.
"""
import os

import llvmlite.binding as ll
import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._util import IN, OUT, ZERO, api_entry, as_buf

__all__ = ["sha256", "sha256_into", "DIGEST_SIZE", "BLOCK_SIZE", "USES_SHA_NI"]

DIGEST_SIZE = 32
BLOCK_SIZE = 64

_K = np.array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
], dtype=np.uint32)

_IV = np.array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19], dtype=np.uint32)


@njit(inline="always")
def _rotr(v, n):
    return np.uint32((v >> np.uint32(n)) | (v << np.uint32(32 - n)))


@njit
def _sha_init(H):
    for i in range(8):
        H[i] = _IV[i]


@njit
def _sha_blocks_scalar(H, W, data, off, nblocks):
    """Compress nblocks 64-byte blocks of data[off:] into H (uint32[8]); W: uint32[64] scratch."""
    a0 = H[0]; b0 = H[1]; c0 = H[2]; d0 = H[3]; e0 = H[4]; f0 = H[5]; g0 = H[6]; h0 = H[7]
    for blk in range(nblocks):
        p = off + 64 * blk
        for t in range(16):
            q = p + 4 * t
            W[t] = np.uint32((np.uint32(data[q]) << np.uint32(24)) | (np.uint32(data[q + 1]) << np.uint32(16))
                             | (np.uint32(data[q + 2]) << np.uint32(8)) | np.uint32(data[q + 3]))
        for t in range(16, 64):
            w15 = W[t - 15]
            w2 = W[t - 2]
            s0 = _rotr(w15, 7) ^ _rotr(w15, 18) ^ (w15 >> np.uint32(3))
            s1 = _rotr(w2, 17) ^ _rotr(w2, 19) ^ (w2 >> np.uint32(10))
            W[t] = np.uint32(W[t - 16] + s0 + W[t - 7] + s1)
        a = a0; b = b0; c = c0; d = d0; e = e0; f = f0; g = g0; h = h0
        for t in range(64):
            S1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
            ch = (e & f) ^ (~e & g)
            t1 = np.uint32(h + S1 + np.uint32(ch) + _K[t] + W[t])
            S0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
            maj = (a & b) ^ (a & c) ^ (b & c)
            t2 = np.uint32(S0 + maj)
            h = g
            g = f
            f = e
            e = np.uint32(d + t1)
            d = c
            c = b
            b = a
            a = np.uint32(t1 + t2)
        a0 = np.uint32(a0 + a); b0 = np.uint32(b0 + b); c0 = np.uint32(c0 + c); d0 = np.uint32(d0 + d)
        e0 = np.uint32(e0 + e); f0 = np.uint32(f0 + f); g0 = np.uint32(g0 + g); h0 = np.uint32(h0 + h)
    H[0] = a0; H[1] = b0; H[2] = c0; H[3] = d0; H[4] = e0; H[5] = f0; H[6] = g0; H[7] = h0


def _host_features():
    """(has SHA-NI, has AVX) for the CPU numba compiles for; (False, False) if not the host."""
    if os.environ.get("SECRETJIT_NO_SHANI", "") not in ("", "0"):
        return False, False
    aot = os.environ.get("SECRETJIT_AOT_SHANI")     # secretjit.aot: a --cpu build with SHA-NI
    if aot:
        return True, aot == "avx"
    if numba.config.CPU_NAME is not None or numba.config.CPU_FEATURES is not None:
        return False, False              # numba targets another CPU than the host
    try:
        feats = ll.get_host_cpu_features()
    except RuntimeError:  # pragma: no cover
        return False, False
    has_sha = all(feats.get(f, False) for f in ("sha", "ssse3", "sse4.1"))
    return has_sha, bool(feats.get("avx", False))


USES_SHA_NI, _HOST_AVX = _host_features()


@intrinsic
def _sha_ni_compress(typingctx, H, data, off, nblocks):
    """SHA-NI compression of nblocks blocks at data[off:] into H (uint32[8]); no bounds checks."""
    if not (isinstance(H, types.Array) and H.dtype == types.uint32 and H.layout == "C"
            and H.mutable and isinstance(data, types.Array) and data.dtype == types.uint8
            and data.layout == "C" and isinstance(off, types.Integer)
            and isinstance(nblocks, types.Integer)):
        return None
    sig = types.void(H, data, off, nblocks)

    def codegen(context, builder, signature, args):
        hty, dty, offty, nty = signature.args
        i8, i32 = ir.IntType(8), ir.IntType(32)
        v4 = ir.VectorType(i32, 4)
        i8p, v4p = i8.as_pointer(), v4.as_pointer()
        mod = builder.module
        rnds2 = cgutils.get_or_insert_function(mod, ir.FunctionType(v4, [v4, v4, v4]),
                                               "llvm.x86.sha256rnds2")
        msg1 = cgutils.get_or_insert_function(mod, ir.FunctionType(v4, [v4, v4]),
                                              "llvm.x86.sha256msg1")
        msg2 = cgutils.get_or_insert_function(mod, ir.FunctionType(v4, [v4, v4]),
                                              "llvm.x86.sha256msg2")
        bswap = cgutils.get_or_insert_function(mod, ir.FunctionType(v4, [v4]), "llvm.bswap.v4i32")

        def shuf(a, b, idx):
            return builder.shuffle_vector(a, b, ir.Constant(v4, idx))

        def load_at(base, byte_off):
            p = builder.gep(base, [byte_off], source_etype=i8)
            return builder.load(builder.bitcast(p, v4p), align=1, typ=v4)

        def store_at(base, byte_off, val):
            p = builder.gep(base, [byte_off], source_etype=i8)
            builder.store(val, builder.bitcast(p, v4p), align=4)

        intp = context.get_value_type(types.intp)
        harr = context.make_array(hty)(context, builder, args[0])
        darr = context.make_array(dty)(context, builder, args[1])
        hbase = builder.bitcast(harr.data, i8p)
        dbase = builder.gep(builder.bitcast(darr.data, i8p),
                            [context.cast(builder, args[2], offty, types.intp)], source_etype=i8)
        nb = context.cast(builder, args[3], nty, types.intp)
        kvec = [ir.Constant(v4, [int(k) for k in _K[4 * i:4 * i + 4]]) for i in range(16)]

        abcd = load_at(hbase, ir.Constant(intp, 0))              # [A, B, C, D]
        efgh = load_at(hbase, ir.Constant(intp, 16))             # [E, F, G, H]
        tmp = shuf(abcd, abcd, [1, 0, 3, 2])                     # [B, A, D, C]
        efgh = shuf(efgh, efgh, [3, 2, 1, 0])                    # [H, G, F, E]
        st0 = cgutils.alloca_once_value(builder, shuf(efgh, tmp, [2, 3, 4, 5]))   # [F, E, B, A]
        st1 = cgutils.alloca_once_value(builder, shuf(efgh, tmp, [0, 1, 6, 7]))   # [H, G, D, C]
        if _HOST_AVX:
            # The SHA instructions are legacy-SSE encoded: clear dirty upper YMM/ZMM state
            # first, otherwise every one of them pays an SSE/AVX transition penalty (~100x).
            vzu = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.VoidType(), []),
                                                 "llvm.x86.avx.vzeroupper")
            builder.call(vzu, [])
        with cgutils.for_range(builder, nb) as loop:
            p = builder.gep(dbase, [builder.mul(loop.index, ir.Constant(intp, 64))], source_etype=i8)
            s0 = save0 = builder.load(st0)
            s1 = save1 = builder.load(st1)
            w = []
            for i in range(16):
                if i < 4:
                    wi = builder.call(bswap, [load_at(p, ir.Constant(intp, 16 * i))])
                else:
                    t = builder.call(msg1, [w[i - 4], w[i - 3]])
                    t = builder.add(t, shuf(w[i - 2], w[i - 1], [1, 2, 3, 4]))
                    wi = builder.call(msg2, [t, w[i - 1]])
                w.append(wi)
                m = builder.add(wi, kvec[i])
                s1 = builder.call(rnds2, [s1, s0, m])
                s0 = builder.call(rnds2, [s0, s1, shuf(m, m, [2, 3, 0, 0])])
            builder.store(builder.add(s0, save0), st0)
            builder.store(builder.add(s1, save1), st1)
        s0 = builder.load(st0)
        s1 = builder.load(st1)
        tmp = shuf(s0, s0, [3, 2, 1, 0])                         # [A, B, E, F]
        s1 = shuf(s1, s1, [1, 0, 3, 2])                          # [G, H, C, D]
        store_at(hbase, ir.Constant(intp, 0), shuf(tmp, s1, [0, 1, 6, 7]))    # [A, B, C, D]
        store_at(hbase, ir.Constant(intp, 16), shuf(tmp, s1, [2, 3, 4, 5]))   # [E, F, G, H]
        builder.store(ir.Constant(v4, None), st0)                # no state copy left on the stack
        builder.store(ir.Constant(v4, None), st1)
        return context.get_dummy_value()

    return sig, codegen


@njit
def _sha_blocks_ni(H, W, data, off, nblocks):
    """SHA-NI version of _sha_blocks_scalar (W unused)."""
    if nblocks > 0:
        _sha_ni_compress(H, data, off, nblocks)


_sha_blocks = _sha_blocks_ni if USES_SHA_NI else _sha_blocks_scalar


@njit
def _sha_final(H, W, data, off, rem, total_len, buf, out, ooff):
    """Pad and compress the last rem (< 64) bytes data[off:off+rem]; write the digest to out[ooff:].

    total_len: message length in bytes (including everything compressed before).
    buf: uint8[128] scratch, zeroed on return.
    """
    for i in range(128):
        buf[i] = 0
    for i in range(rem):
        buf[i] = data[off + i]
    buf[rem] = 0x80
    nb = 1 if rem < 56 else 2
    bits = np.uint64(total_len) << np.uint64(3)
    end = 64 * nb
    for i in range(8):
        buf[end - 1 - i] = np.uint8((bits >> np.uint64(8 * i)) & np.uint64(0xFF))
    _sha_blocks(H, W, buf, 0, nb)
    for i in range(128):
        buf[i] = 0
    for i in range(8):
        v = H[i]
        out[ooff + 4 * i] = np.uint8(v >> np.uint32(24))
        out[ooff + 4 * i + 1] = np.uint8((v >> np.uint32(16)) & np.uint32(0xFF))
        out[ooff + 4 * i + 2] = np.uint8((v >> np.uint32(8)) & np.uint32(0xFF))
        out[ooff + 4 * i + 3] = np.uint8(v & np.uint32(0xFF))


@njit
def _sha256(data, off, n, out, ooff, H, W, buf):
    """out[ooff:ooff+32] = SHA-256(data[off:off+n]) using caller scratch (not wiped here)."""
    _sha_init(H)
    nb = n // 64
    _sha_blocks(H, W, data, off, nb)
    _sha_final(H, W, data, off + 64 * nb, n - 64 * nb, n, buf, out, ooff)


@secret_jit(cache=True, nogil=True, secret=('data',))
def sha256_into(data, out):
    """out[0:32] = SHA-256(data)."""
    if out.size != 32:
        raise ValueError("out must be 32 bytes")
    H = np.empty(8, np.uint32)
    W = np.empty(64, np.uint32)
    buf = np.empty(128, np.uint8)
    _sha256(data, 0, data.size, out, 0, H, W, buf)
    wipe(H)
    wipe(W)
    wipe(buf)


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_SHA256 = api_entry(sha256_into, "_sha256_api", IN, OUT)
_sha256_api = _SHA256.kernel


def sha256(data):
    """SHA-256 digest (32 bytes) of a bytes-like ``data``."""
    if type(data) is bytes:
        call = _SHA256.fast
    else:
        data = as_buf(data, "data")
        call = _SHA256.call
    out = ZERO * DIGEST_SIZE
    call(data, out)
    return out
