"""Cases for ``python -m secretjit ctcheck``: the vetted kernels and two leaks.

The vetted entry kernels must give no finding; ``leaky_branch`` and
``leaky_index`` (compiled with the static check off) must each give one at
the line marked ``# CTCHECK``.  :func:`vetted_entry_kernels` reads the
vetted entry kernels off ``secretjit.kernels`` itself (the one list of them),
and the tests check that ``ctcheck_cases()`` holds a case for each.
"""

import importlib

import numpy as np

from secretjit import secret_jit
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519

TABLE = np.arange(256, dtype=np.uint8)[::-1].copy()


@secret_jit(secret=('key',), constant_time='off', cache=True)
def leaky_branch(key, tag):
    for i in range(key.size):
        if key[i] != tag[i]:            # CTCHECK: branch
            return 0
    return 1


@secret_jit(secret=('key',), constant_time='off', cache=True)
def leaky_index(key, out):
    for i in range(key.size):
        out[i] = TABLE[key[i]]          # CTCHECK: secret-index


def vetted_entry_kernels():
    """{name: dispatcher} of every public ``secret_jit`` kernel that a module of
    ``secretjit.kernels`` defines (its entry kernels; the Python API's buffer
    kernels are private names)."""
    from secretjit import kernels
    found = {}
    for modname in kernels.__all__:
        if modname == 'InvalidTag':
            continue
        mod = importlib.import_module('secretjit.kernels.' + modname)
        for name, obj in vars(mod).items():
            if (not name.startswith('_') and hasattr(obj, 'stack_bound')
                    and getattr(obj, 'py_func', None) is not None
                    and obj.py_func.__module__ == mod.__name__):
                found[name] = obj
    return found


def ctcheck_cases(vetted=True):
    u8 = np.uint8
    key = np.arange(32, dtype=u8)
    msg = np.arange(100, dtype=u8)
    nonce = np.zeros(12, u8)
    aad = np.arange(5, dtype=u8)
    ct = np.empty(116, u8)
    leaks = [
        (leaky_branch, (key.copy(), key.copy())),
        (leaky_index, (key.copy(), np.empty(32, u8))),
    ]
    if not vetted:
        return leaks
    aead.aead_seal_kernel(key, nonce, msg, aad, ct)
    xnonce = np.arange(24, dtype=u8)
    xct = np.empty(116, u8)
    aead.xaead_seal_kernel(key, xnonce, msg, aad, xct)
    return leaks + [
        (aead.aead_seal_kernel, (key.copy(), nonce, msg.copy(), aad, np.empty(116, u8))),
        (aead.aead_open_kernel, (key.copy(), nonce, ct.copy(), aad, np.empty(100, u8))),
        (aead.xaead_seal_kernel, (key.copy(), np.zeros(24, u8), msg.copy(), aad,
                                  np.empty(116, u8))),
        (aead.xaead_open_kernel, (key.copy(), xnonce, xct.copy(), aad, np.empty(100, u8))),
        (blake2b.blake2b_into, (msg.copy(), key.copy(), np.empty(64, u8))),
        (chacha20.chacha20_xor, (key.copy(), nonce, 1, msg.copy(), np.empty(100, u8))),
        (chacha20.chacha20_block, (key.copy(), nonce, 7, np.empty(64, u8))),
        (chacha20.hchacha20_kernel, (key.copy(), np.zeros(16, u8), np.empty(32, u8))),
        (hmac.hmac_sha256_into, (key.copy(), msg.copy(), np.empty(32, u8))),
        (hmac.hkdf_sha256_into, (key.copy(), np.zeros(3, u8), np.zeros(4, u8),
                                 np.empty(42, u8))),
        (poly1305.poly1305_mac, (key.copy(), msg.copy(), np.empty(16, u8))),
        (poly1305.poly1305_verify_kernel, (key.copy(), msg.copy(), np.zeros(16, u8))),
        (sha256.sha256_into, (msg.copy(), np.empty(32, u8))),
        (x25519.x25519_kernel, (np.empty(32, u8), key.copy(), np.full(32, 9, u8))),
    ]
