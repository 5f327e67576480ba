"""The Python API users call (issue 16): secretjit's public functions against cryptography's.

For every kernel, at 64 B and 1 MiB (X25519: per call), three callables are
timed interleaved in one process (api, kernel, reference, api, ...; batches of
about 2 ms; medians) in CPU time of the benchmarking thread
(``time.thread_time``: user + system time, so the time slices the OS gives other
processes on a shared machine are not counted; all three run in this thread):

- ``api``: secretjit's public function on ``bytes`` (``aead.seal(key, nonce,
  data)``, ``sha256(data)``, ...): argument checks, the API kernel, the
  returned ``bytes``;
- ``kernel``: the array-typed entry kernel with prepared arrays, called through
  its compiled entry point (no dispatch, no conversion): what the API's own
  cost is measured against (``api - kernel``);
- ``reference``: the same work through the public API of ``cryptography``
  (OpenSSL) or ``hashlib``/``hmac``: ``ChaCha20Poly1305(key)`` made once, then
  ``.encrypt(nonce, data, None)`` per call; a new ``Cipher(...).encryptor()``
  per ChaCha20 call (that is how its API streams with a fresh nonce);
  ``Poly1305.generate_tag``, ``hashlib.sha256(data).digest()``,
  ``hmac.digest``, ``HKDF(...).derive``, ``hashlib.blake2b``,
  ``X25519PrivateKey.exchange`` on prepared key objects.

    python benchmarks/api.py            # Markdown table on stdout
    python benchmarks/api.py --quick    # fewer rounds
"""

import functools
import hashlib
import hmac
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _timing  # noqa: E402
from _timing import interleaved  # noqa: E402
from run import _fmt_time, machine  # noqa: E402

SIZES = (64, 1 << 20)

# Issue 16's targets for the Python API (reference = cryptography/hashlib).
TARGETS = {
    'throughput_1MiB': {          # our throughput / the reference's, at 1 MiB
        'chacha20': 1.0, 'chacha20-poly1305 seal': 0.8, 'poly1305': 0.8,
        'blake2b-512': 0.9, 'sha256': 0.95},
    'x25519_time': 1.25,          # our time / OpenSSL's
    'seal_64_time': 1.0,          # 64-byte AEAD seal: our time / OpenSSL's
    'overhead_64_ns': 300,        # api - kernel at 64 B, every kernel
}


def _entry(kernel, *args):
    """The entry kernel's compiled entry point for these argument types."""
    kernel(*args)                                   # compile / load from the cache
    from numba import typeof
    sig = tuple(typeof(a) for a in args)
    return kernel.overloads[sig].entry_point


def _case(label, nbytes, name, api, kernel, kargs, ref=None, ref_name=''):
    """One case: the public call, the entry kernel on the prepared arrays ``kargs``, the reference."""
    return (name, label, nbytes, api, functools.partial(_entry(kernel, *kargs), *kargs), ref,
            ref_name)


def _sized_cases(n, rb, key, nonce, xnonce):
    """The rows of one input size ``n``: API, kernel and reference per kernel."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    from secretjit.kernels import aead, blake2b, chacha20, hmac as khmac
    from secretjit.kernels import poly1305, sha256
    from secretjit.kernels._util import as_u8

    K, N, XN, EMPTY = as_u8(key, 'k'), as_u8(nonce, 'n'), as_u8(xnonce, 'x'), as_u8(b'', 'e')
    cipher = ChaCha20Poly1305(key)
    label = '%d B' % n if n < 1024 else '%d MiB' % (n >> 20)
    data = rb(n)
    D = as_u8(data, 'd')
    sealed = aead.seal(key, nonce, data)
    S = as_u8(sealed, 's')
    xsealed = aead.xseal(key, xnonce, data)
    XS = as_u8(xsealed, 's')
    o16 = np.empty(n + 16, np.uint8)
    on = np.empty(n, np.uint8)
    o32 = np.empty(32, np.uint8)
    o64 = np.empty(64, np.uint8)
    t16 = np.empty(16, np.uint8)
    stream_nonce = (1).to_bytes(4, 'little') + nonce
    salt, info = rb(32), rb(16)
    SALT, INFO = as_u8(salt, 's'), as_u8(info, 'i')
    return [_case(label, n, *c) for c in (
        ('chacha20', lambda: chacha20.chacha20(key, nonce, data, 1),
         chacha20.chacha20_xor, (K, N, 1, D, on),
         lambda: Cipher(algorithms.ChaCha20(key, stream_nonce), None).encryptor()
         .update(data), 'cryptography ChaCha20'),
        ('poly1305', lambda: poly1305.poly1305(key, data), poly1305.poly1305_mac,
         (K, D, t16), lambda: Poly1305.generate_tag(key, data),
         'cryptography Poly1305.generate_tag'),
        ('chacha20-poly1305 seal', lambda: aead.seal(key, nonce, data),
         aead.aead_seal_kernel, (K, N, D, EMPTY, o16),
         lambda: cipher.encrypt(nonce, data, None), 'cryptography ChaCha20Poly1305.encrypt'),
        ('chacha20-poly1305 open', lambda: aead.open(key, nonce, sealed),
         aead.aead_open_kernel, (K, N, S, EMPTY, on),
         lambda: cipher.decrypt(nonce, sealed, None), 'cryptography ChaCha20Poly1305.decrypt'),
        ('xchacha20-poly1305 seal', lambda: aead.xseal(key, xnonce, data),
         aead.xaead_seal_kernel, (K, XN, D, EMPTY, o16)),
        ('xchacha20-poly1305 open', lambda: aead.xopen(key, xnonce, xsealed),
         aead.xaead_open_kernel, (K, XN, XS, EMPTY, on)),
        ('sha256', lambda: sha256.sha256(data), sha256.sha256_into, (D, o32),
         lambda: hashlib.sha256(data).digest(), 'hashlib.sha256'),
        ('hmac-sha256', lambda: khmac.hmac_sha256(key, data), khmac.hmac_sha256_into,
         (K, D, o32), lambda: hmac.digest(key, data, 'sha256'), 'hmac.digest'),
        ('hkdf-sha256 (ikm size)', lambda: khmac.hkdf_sha256(data, salt, info, 32),
         khmac.hkdf_sha256_into, (D, SALT, INFO, o32),
         lambda: HKDF(hashes.SHA256(), 32, salt, info).derive(data), 'cryptography HKDF'),
        ('blake2b-512', lambda: blake2b.blake2b(data), blake2b.blake2b_into,
         (D, EMPTY, o64), lambda: hashlib.blake2b(data).digest(), 'hashlib.blake2b'))]


def _x25519_case(rb):
    """The X25519 row: API, kernel and OpenSSL's exchange, per call."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey, X25519PublicKey)

    from secretjit.kernels import x25519
    from secretjit.kernels._util import as_u8

    scalar = rb(32)
    peer = X25519PrivateKey.from_private_bytes(rb(32))
    u = peer.public_key().public_bytes_raw()
    priv = X25519PrivateKey.from_private_bytes(scalar)
    pub = X25519PublicKey.from_public_bytes(u)
    SC, U = as_u8(scalar, 's'), as_u8(u, 'u')
    o32 = np.empty(32, np.uint8)
    assert x25519.x25519(scalar, u) == priv.exchange(pub)
    return _case('per call', 0, 'x25519', lambda: x25519.x25519(scalar, u),
                 x25519.x25519_kernel, (o32, SC, U), lambda: priv.exchange(pub),
                 'cryptography X25519 exchange')


def cases(quick=False):
    """(kernel, size label, nbytes, api, kernel, reference, reference name) tuples."""
    rng = np.random.default_rng(16)

    def rb(n):
        return rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    key, nonce, xnonce = rb(32), rb(12), rb(24)
    out = []
    for n in (SIZES[:1] if quick else SIZES):
        out += _sized_cases(n, rb, key, nonce, xnonce)
    out.append(_x25519_case(rb))
    return out


def collect(quick=False):
    rounds = 5 if quick else 41
    rows = []
    for kernel, size, nbytes, api, kern, ref, ref_name in cases(quick):
        fns = {'api': api, 'kernel': kern}
        if ref is not None:
            fns['reference'] = ref
        med, batch = interleaved(fns, rounds, batch_seconds=0.002, timer=time.thread_time,
                                 autorange=False)
        row = {'kernel': kernel, 'size': size, 'bytes': nbytes, 'rounds': rounds,
               'batch': batch, 'api_ns': med['api'] * 1e9,
               'kernel_ns': med['kernel'] * 1e9,
               'overhead_ns': (med['api'] - med['kernel']) * 1e9,
               'reference': ref_name or None,
               'reference_ns': med['reference'] * 1e9 if ref is not None else None}
        if ref is not None:
            row['api_vs_reference_time'] = med['api'] / med['reference']
        rows.append(row)
        print('api %-24s %-9s api %11.1f ns  kernel %11.1f ns  (+%.0f ns)%s' % (
            kernel, size, row['api_ns'], row['kernel_ns'], row['overhead_ns'],
            '  ref %.1f ns (x%.2f)' % (row['reference_ns'], row['api_vs_reference_time'])
            if ref is not None else ''), flush=True)
    return {'quick': quick, 'rounds': rounds, 'date': time.strftime('%Y-%m-%d'),
            'machine': machine(), 'rows': rows}


def check_targets(data):
    """(what, measured, met) for each of issue 16's Python-API targets."""
    out = []
    for r in data['rows']:
        if r['size'] == '64 B':
            out.append(('API %s 64 B: api - kernel <= %d ns' % (
                r['kernel'], TARGETS['overhead_64_ns']), '%+.0f ns' % r['overhead_ns'],
                r['overhead_ns'] <= TARGETS['overhead_64_ns']))
    for r in data['rows']:
        t = r.get('api_vs_reference_time')
        if t is None:
            continue
        want = TARGETS['throughput_1MiB'].get(r['kernel'])
        if want and r['size'] == '1 MiB':
            out.append(('API %s 1 MiB throughput >= %.2fx %s' % (
                r['kernel'], want, r['reference']), '%.2fx' % (1 / t), 1 / t >= want))
        if r['kernel'] == 'chacha20-poly1305 seal' and r['size'] == '64 B':
            out.append(('API seal 64 B time <= %.2fx OpenSSL' % TARGETS['seal_64_time'],
                        '%.2fx' % t, t <= TARGETS['seal_64_time']))
        if r['kernel'] == 'x25519':
            out.append(('API x25519 time <= %.2fx OpenSSL' % TARGETS['x25519_time'],
                        '%.2fx' % t, t <= TARGETS['x25519_time']))
    return out


def markdown(data, command='python benchmarks/api.py'):
    m = data['machine']
    lines = ['## Python API against cryptography (issue 16)', '',
             'Machine: %s (LLVM cpu `%s`), %s cores; CPU flags used by the kernels or '
             'OpenSSL: %s.  Command: `%s` (%s).  Interleaved api / kernel / reference, '
             '%d rounds, medians of thread CPU time; "kernel" is the array entry kernel through its entry '
             'point with prepared arrays; overhead = api - kernel.' % (
                 m['cpu'], m['llvm_cpu'], m['cores'], ' '.join(m.get('cpu_flags', [])) or '?',
                 command, data['date'], data['rounds']), '',
             '| kernel | size | secretjit API | kernel alone | API overhead | reference '
             '| reference time | API time / reference | API MB/s | reference MB/s |',
             '|---|---|---:|---:|---:|---|---:|---:|---:|---:|']
    for r in data['rows']:
        ref = r['reference_ns']
        lines.append('| %s | %s | %s | %s | %+.0f ns | %s | %s | %s | %s | %s |' % (
            r['kernel'], r['size'], _fmt_time(r['api_ns']), _fmt_time(r['kernel_ns']),
            r['overhead_ns'], r['reference'] or '', _fmt_time(ref) if ref else '',
            '%.2f' % r['api_vs_reference_time'] if ref else '',
            '%.0f' % (r['bytes'] / r['api_ns'] * 1e3) if r['bytes'] else '',
            '%.0f' % (r['bytes'] / ref * 1e3) if r['bytes'] and ref else ''))
    lines += ['', '| Python-API target (issue 16) | measured | met |', '|---|---:|---|']
    for what, value, ok in check_targets(data):
        lines.append('| %s | %s | %s |' % (what, value, 'yes' if ok else '**no**'))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    _timing.main(argv, __doc__.split('\n')[0], collect,
                 lambda data: markdown(data, 'python benchmarks/api.py'
                                       + (' --quick' if data['quick'] else '')),
                 '64 B only, 5 rounds instead of 41')


if __name__ == '__main__':
    main()
