"""The vetted kernels declare their secrets and pass the constant-time check.

Every entry kernel and every API kernel (the private kernel each Python API
function runs, with the entry kernel's body inlined) declares ``secret=``;
compiling it runs the check (a
finding is a compile error), and numba's cache only holds kernels that
compiled (its key covers the kernel's source file and secretjit's own
sources, the checker included).  Three kernels the issue names (X25519's
ladder swap, Poly1305's final reduction, the AEAD tag comparison with its
declassified verdict) are also compiled afresh here, bypassing the cache, for
the signatures the Python API uses; a finding or a warning fails the test.
"""

import warnings

import numpy as np
import pytest

from secretjit import ConstantTimeWarning, secret_jit
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519

u8 = np.uint8
KEY, NONCE, MSG = bytes(range(32)), bytes(12), b'm' * 100
ENTRY = {
    'aead_seal_kernel': (aead, ('key', 'plaintext')),
    'aead_open_kernel': (aead, ('key',)),
    'xaead_seal_kernel': (aead, ('key', 'plaintext')),
    'xaead_open_kernel': (aead, ('key',)),
    'blake2b_into': (blake2b, ('data', 'key')),
    'chacha20_xor': (chacha20, ('key', 'src')),
    'chacha20_block': (chacha20, ('key',)),
    'hchacha20_kernel': (chacha20, ('key',)),
    'hmac_sha256_into': (hmac, ('key', 'msg')),
    'hkdf_sha256_into': (hmac, ('ikm',)),
    'poly1305_mac': (poly1305, ('key', 'msg')),
    'poly1305_verify_kernel': (poly1305, ('key', 'msg')),
    'sha256_into': (sha256, ('data',)),
    'x25519_kernel': (x25519, ('scalar',)),
}
# What the Python API runs: the same bodies, compiled by _exercise below.
API = {
    '_seal_api': (aead, ('key', 'plaintext')),
    '_open_api': (aead, ('key',)),
    '_xseal_api': (aead, ('key', 'plaintext')),
    '_xopen_api': (aead, ('key',)),
    '_blake2b_api': (blake2b, ('data', 'key')),
    '_chacha20_api': (chacha20, ('key', 'src')),
    '_hchacha20_api': (chacha20, ('key',)),
    '_hmac_api': (hmac, ('key', 'msg')),
    '_hkdf_api': (hmac, ('ikm',)),
    '_poly1305_api': (poly1305, ('key', 'msg')),
    '_sha256_api': (sha256, ('data',)),
    '_x25519_api': (x25519, ('scalar',)),
}


def _exercise():
    """Call every API function once, so each API kernel has its signatures
    (and the verify kernel, which has no API function)."""
    aead.open(KEY, NONCE, aead.seal(KEY, NONCE, MSG, b'a'), b'a')
    aead.xopen(KEY, bytes(24), aead.xseal(KEY, bytes(24), MSG))
    blake2b.blake2b(MSG, key=b'k')
    chacha20.chacha20(KEY, NONCE, MSG)
    chacha20.hchacha20(KEY, bytes(16))
    chacha20.chacha20_block(np.frombuffer(KEY, u8).copy(), np.zeros(12, u8), 1,
                            np.empty(64, u8))
    hmac.hmac_sha256(KEY, MSG)
    hmac.hkdf_sha256(KEY, b's', b'i', 40)
    poly1305.poly1305(KEY, MSG)
    poly1305.poly1305_verify_kernel(np.frombuffer(KEY, u8).copy(),
                                    np.frombuffer(MSG, u8).copy(), np.zeros(16, u8))
    sha256.sha256(MSG)
    x25519.x25519(KEY, bytes([9] + [0] * 31))


@pytest.fixture(scope='module')
def exercised():
    _exercise()


@pytest.mark.parametrize('name', sorted(ENTRY))
def test_entry_kernel_declares_its_secrets(name):
    mod, secret = ENTRY[name]
    kernel = getattr(mod, name)
    assert kernel._ct_policy.secret == secret
    assert kernel._ct_policy.mode == 'error'


@pytest.mark.parametrize('name', sorted(API))
def test_kernel_declares_its_secrets(name, exercised):
    mod, secret = API[name]
    kernel = getattr(mod, name)
    assert kernel._ct_policy.secret == secret
    assert kernel._ct_policy.mode == 'error'
    assert kernel.signatures
    for sig in kernel.signatures:
        lib = kernel.overloads[sig].library
        # compiled in this process: checked; else loaded from the cache
        assert getattr(lib, 'ct_findings', []) == []


@pytest.mark.parametrize('name', ['x25519_kernel', 'poly1305_mac', 'aead_open_kernel'])
def test_kernel_passes_a_fresh_check(name, exercised):
    mod, secret = ENTRY[name]
    kernel = getattr(mod, name)
    fresh = secret_jit(secret=secret, nogil=True)(kernel.py_func)
    with warnings.catch_warnings():
        warnings.simplefilter('error', ConstantTimeWarning)
        for sig in kernel.signatures:
            fresh.compile(sig)
    for sig in fresh.signatures:
        lib = fresh.overloads[sig].library
        assert lib.ct_findings == []
        report = [r for r in lib.pass_reports if r.name == 'constant_time'][0]
        assert report['functions_checked'] >= 1


def test_open_without_declassify_is_flagged():
    """Control: the declassify in aead._open is what the check needs."""
    import inspect
    src = inspect.getsource(aead._open)
    assert 'declassify(ok) == 1' in src
    ns = dict(vars(aead))
    exec(compile(src.replace('declassify(ok) == 1', 'ok == 1'),
                 aead.__file__, 'exec'), ns)
    leaky = ns['_open']

    def open_kernel(key, nonce, ciphertext_and_tag, aad, out):
        return leaky(key, nonce, ciphertext_and_tag, aad, out)
    fresh = secret_jit(secret=('key',))(open_kernel)
    from secretjit import SecretPolicyError
    with pytest.raises(SecretPolicyError, match=r'aead.py:\d+: branch'):
        fresh(np.frombuffer(KEY, u8).copy(), np.zeros(12, u8), np.zeros(40, u8),
              np.zeros(0, u8), np.empty(24, u8))


# -- through the Python API: BytesArg parameters ----------------------------------

def _leaky_api(key, out):
    k = np.frombuffer(key, np.uint8)
    o = np.frombuffer(out, np.uint8)
    for i in range(k.size):
        if k[i] == 0:               # CT: branch on the key's bytes
            o[0] = 1


def test_api_kernel_branching_on_bytesarg_data_fires():
    """Taint reaches through a BytesArg (and a buffer) parameter's data."""
    import inspect
    from secretjit import SecretPolicyError
    from secretjit.kernels._bytesarg import AVAILABLE
    from secretjit.kernels._util import IN, OUT, Entry, new_bytes
    line = inspect.getsourcelines(_leaky_api)[1] + 4
    entry = Entry(secret_jit(secret=('key',), nogil=True)(_leaky_api), IN, OUT)
    if AVAILABLE:
        assert entry.fast_sig != entry.sig          # BytesArg types
    for call in (entry.fast, entry.call):
        with pytest.raises(SecretPolicyError,
                           match=r'test_kernels_constant_time.py:%d: branch' % line):
            call(KEY, new_bytes(1))
    # control: the same kernel without secret= compiles and runs
    plain = Entry(secret_jit(nogil=True)(_leaky_api), IN, OUT)
    out = new_bytes(1)
    plain.fast(bytes(4), out)
    assert out == b'\x01'


@pytest.mark.parametrize('entry', ['aead._OPEN', 'hmac._HMAC'])
def test_vetted_api_kernel_passes_a_fresh_check_with_bytesarg(entry):
    """Must not fire: API kernels compiled afresh for their BytesArg signature."""
    mod, name = entry.split('.')
    e = getattr({'aead': aead, 'hmac': hmac}[mod], name)
    policy = e.kernel._ct_policy
    fresh = secret_jit(secret=policy.secret, nogil=True)(e.kernel.py_func)
    with warnings.catch_warnings():
        warnings.simplefilter('error', ConstantTimeWarning)
        fresh.compile(e.fast_sig)
    lib = fresh.overloads[e.fast_sig].library
    assert lib.ct_findings == []
    report = [r for r in lib.pass_reports if r.name == 'constant_time'][0]
    assert report['functions_checked'] >= 1
