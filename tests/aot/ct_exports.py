"""Exports for the AOT constant-time tests (built by tests/test_aot_constant_time.py).

The kernels are the JIT check's own (tests/_ct_kernels.py, with their
``# CT: kind`` markers).  ``CT_EXPORTS_MODE`` (the build's environment)
is the ``constant_time`` mode of every export: ``warn`` builds all of them
in one library and reports every finding; ``error`` must fail the build.
"""
import os
import sys

import numpy as np

from secretjit import secret_jit
from secretjit.aot import export

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import _ct_kernels as ck  # noqa: E402

MODE = os.environ.get('CT_EXPORTS_MODE', 'warn')
B = 'uint8[::1]'
SIGNATURES = {
    # must not fire
    'or_accumulated_compare': 'boolean(%s, %s)' % (B, B),
    'rotations_and_multiplications': 'uint64(%s)' % B,
    'branch_on_public_scalar': 'uint64(%s, int64)' % B,
    'branch_on_declassified': 'boolean(%s, %s, %s)' % (B, B, B),
    # must fire
    'early_exit_compare': 'boolean(%s, %s)' % (B, B),
    'sbox_lookup': 'void(%s, %s)' % (B, B),
    'secret_trip_count': 'int64(%s)' % B,
    'violation_in_helper': 'uint8(%s)' % B,
    'secret_division': 'uint64(%s, uint64)' % B,
}
for _name, _sig in SIGNATURES.items():
    export('ct_' + _name, _sig, secret=ck.SECRET[_name],
           constant_time=MODE)(getattr(ck, _name))

# secret= and constant_time= taken from the secret_jit dispatcher
export('ct_inherited_early_exit', SIGNATURES['early_exit_compare'])(
    secret_jit(secret=('key',), constant_time=MODE)(ck.early_exit_compare))
# the same kernel without secret=: not checked (the build must succeed)
export('ct_unchecked_early_exit', SIGNATURES['early_exit_compare'])(
    ck.early_exit_compare)


@export('ct_mod_by_constant', 'uint64(%s)' % B, secret=('key',),
        constant_time=MODE)
def mod_by_constant(key):
    acc = np.uint64(0)
    for i in range(key.size):
        h = np.uint64(key[i]) * np.uint64(0x9E3779B97F4A7C15)
        acc += h % np.uint64(1000003)       # CT-WARN: constant-division
    return acc


# Unchecked (no secret=): what the hardened backend changes, against the
# same build with SECRETJIT_CT_HARDENING=0.
export('ct_select_loop', 'uint64(uint64[::1], uint64[::1], uint64)')(
    ck.select_loop)


@export('ct_signed_division', 'int64(int64, int64)')
def signed_division(a, b):
    return a // b
