"""The Python API's calling convention (issue 16): one buffer-typed overload per API kernel,
results written straight into fresh ``bytes`` objects, no copy of the result.

Speed is measured by ``benchmarks/api.py``, not here.
"""

import hashlib
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.poly1305 import Poly1305

from secretjit import secret_jit
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519
from secretjit.kernels._bytesarg import IN_BYTES, OUT_BYTES
from secretjit.kernels._util import IN, OUT, SMALL, ZERO, new_bytes

KEY, NONCE, XNONCE = bytes(range(32)), bytes(range(12)), bytes(range(24))


def kinds(b):
    """The same bytes as every accepted argument kind, writable and read-only arrays included."""
    ro = np.frombuffer(b, np.uint8)
    return [b, bytearray(b), memoryview(b), memoryview(bytearray(b)).cast("B"),
            ro.copy(), ro, memoryview(ro.copy().reshape(-1, 1))]


API_KERNELS = [
    (aead._seal_api, lambda k, p: aead.seal(k, NONCE, p)),
    (aead._open_api, lambda k, p: aead.open(k, NONCE, aead.seal(KEY, NONCE, bytes(p)))),
    (aead._xseal_api, lambda k, p: aead.xseal(k, XNONCE, p)),
    (aead._xopen_api, lambda k, p: aead.xopen(k, XNONCE, aead.xseal(KEY, XNONCE, bytes(p)))),
    (chacha20._chacha20_api, lambda k, p: chacha20.chacha20(k, NONCE, p, 1)),
    (chacha20._hchacha20_api, lambda k, p: chacha20.hchacha20(k, bytes(16))),
    (poly1305._poly1305_api, lambda k, p: poly1305.poly1305(k, p)),
    (sha256._sha256_api, lambda k, p: sha256.sha256(p)),
    (hmac._hmac_api, lambda k, p: hmac.hmac_sha256(k, p)),
    (hmac._hkdf_api, lambda k, p: hmac.hkdf_sha256(p, k, p, 42)),
    (blake2b._blake2b_api, lambda k, p: blake2b.blake2b(p, 33, k)),
    (x25519._x25519_api, lambda k, p: x25519.x25519(k, k)),
]


@pytest.mark.parametrize("kernel, call", API_KERNELS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_input_kind_runs_one_of_two_compiled_overloads(kernel, call):
    """Exact bytes run the BytesArg overload, every other kind the buffer one: no more."""
    results = {bytes(call(k, p)) for k, p in zip(kinds(KEY), kinds(bytes(range(50))))}
    assert len(results) == 1                       # same answer for every kind
    assert all(type(r) is bytes for r in [call(KEY, bytes(50))])
    assert len(kernel.signatures) == 2, kernel.signatures
    fast, generic = sorted(kernel.signatures, key=lambda sig: IN in sig or OUT in sig)
    assert all(t in (IN_BYTES, OUT_BYTES) or str(t) == "int64" for t in fast)
    assert all(t in (IN, OUT) or str(t) == "int64" for t in generic)


def test_bytes_arguments_unboxed_from_the_object():
    """BytesArg reads ob_size and ob_sval directly: lengths and contents of any size."""
    @secret_jit
    def digest(a, out):
        x = np.frombuffer(a, np.uint8)
        o = np.frombuffer(out, np.uint8)
        s = 0
        for i in range(x.size):
            s = s * 31 + x[i]
            o[i] = x[x.size - 1 - i]
        return x.size, s
    call = digest.compile((IN_BYTES, OUT_BYTES))
    for n in (0, 1, 2, 7, 4096, 100000):
        data = os.urandom(n)
        out = new_bytes(n)
        s = 0
        for v in data:
            s = (s * 31 + v) & 0xFFFFFFFFFFFFFFFF
        size, h = call(data, out)
        assert size == n and h & 0xFFFFFFFFFFFFFFFF == s and out == data[::-1]


def test_control_array_flags_do_make_new_overloads():
    """The check above can fail: a kernel called with arrays compiles per writeable flag."""
    @secret_jit
    def size(a):
        return a.size
    a = np.zeros(4, np.uint8)
    size(a)
    a.flags.writeable = False
    size(a)
    assert len(size.signatures) == 2


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 63, 64, 65, SMALL - 1, SMALL, SMALL + 1, 70000])
def test_outputs_are_fresh_bytes_and_shared_objects_stay_intact(n):
    data = os.urandom(n)
    ref = Cipher(algorithms.ChaCha20(KEY, (1).to_bytes(4, "little") + NONCE),
                 None).encryptor().update(data)
    a, b = chacha20.chacha20(KEY, NONCE, data, 1), chacha20.chacha20(KEY, NONCE, data, 1)
    assert type(a) is bytes and a == b == ref
    if n:
        assert a is not b and a is not data
    sealed = aead.seal(KEY, NONCE, data)
    assert sealed == ChaCha20Poly1305(KEY).encrypt(NONCE, data, None)
    assert aead.open(KEY, NONCE, sealed) == data
    # CPython shares b"" and the one-byte objects: none may have been written into
    assert b"" == bytes(0) and len(b"") == 0
    assert [bytes([i])[0] for i in range(256)] == list(range(256))
    assert ZERO == b"\0" == bytes(1)


def test_new_bytes_never_returns_a_shared_object():
    assert ZERO * 1 is ZERO                         # the hazard new_bytes and the API avoid
    for n in (1, 2, 17, SMALL - 1, SMALL, 1 << 20):
        x, y = new_bytes(n), new_bytes(n)
        assert type(x) is bytes and len(x) == n and x is not y and x is not ZERO
    assert new_bytes(0) == b""


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = fn()
        return tracemalloc.get_traced_memory()[1] - base, r
    finally:
        tracemalloc.stop()


def test_a_1mib_seal_allocates_its_result_once():
    n = 1 << 20
    data = os.urandom(n)
    aead.seal(KEY, NONCE, data)                   # compiled before tracing
    peak, sealed = _peak(lambda: aead.seal(KEY, NONCE, data))
    assert sealed == ChaCha20Poly1305(KEY).encrypt(NONCE, data, None)
    assert n + 16 <= peak < n + 64 * 1024, peak

    def array_then_tobytes():                    # control: the previous API's result path
        out = np.empty(n + 16, np.uint8)
        aead.aead_seal_kernel(np.frombuffer(KEY, np.uint8), np.frombuffer(NONCE, np.uint8),
                              np.frombuffer(data, np.uint8), np.frombuffer(b"", np.uint8), out)
        return out.tobytes()
    array_then_tobytes()
    peak_control, sealed_control = _peak(array_then_tobytes)
    assert sealed_control == sealed
    assert peak_control >= 2 * n, peak_control


def test_size_errors_from_the_kernel_name_the_parameter():
    """Sizes are checked by the API kernel; the API re-raises with the parameter's size."""
    with pytest.raises(ValueError, match="key must be 32 bytes, got 31"):
        aead.seal(bytes(31), NONCE, b"x")
    with pytest.raises(ValueError, match="nonce must be 24 bytes, got 12"):
        aead.xopen(KEY, NONCE, bytes(40))
    with pytest.raises(ValueError, match="nonce must be 12 bytes, got 13"):
        chacha20.chacha20(KEY, bytes(13), b"abc")
    with pytest.raises(aead.InvalidTag):
        aead.open(KEY, NONCE, bytes(15))


def test_python_api_without_the_jit():
    """NUMBA_DISABLE_JIT=1 runs the kernels as Python, the outputs filled the same way."""
    # 700 bytes: Poly1305's vector-IR lanes (two chunks) and BLAKE2b's compression, as Python
    code = ("from secretjit.kernels import aead, blake2b, poly1305; "
            "print(aead.seal(bytes(range(32)), bytes(range(12)), b'abc', b'ad').hex()); "
            "m = bytes(range(256)) * 3; "
            "print(poly1305.poly1305(bytes(range(32)), m[:700]).hex()); "
            "print(blake2b.blake2b(m[:300], 40, b'k').hex())")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, NUMBA_DISABLE_JIT="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    m = bytes(range(256)) * 3
    assert r.stdout.split() == [
        ChaCha20Poly1305(KEY).encrypt(NONCE, b"abc", b"ad").hex(),
        Poly1305.generate_tag(KEY, m[:700]).hex(),
        hashlib.blake2b(m[:300], digest_size=40, key=b"k").hexdigest()]
