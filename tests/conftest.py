"""Shared fixtures: key material and the two decorators every erasure test runs."""

import numpy as np
import pytest
from numba import njit

from secretjit import secret_jit

KEY = np.array([0x0123456789ABCDEF, 0x1122334455667788,
                0x99AABBCCDDEEFF00, 0x0F1E2D3C4B5A6978], dtype=np.uint64)


@pytest.fixture
def key():
    return KEY.copy()


@pytest.fixture(params=['njit', 'secret_jit'])
def decorator(request):
    """Both decorators: njit is the control that must leak."""
    return request.param, {'njit': njit, 'secret_jit': secret_jit}[request.param]
