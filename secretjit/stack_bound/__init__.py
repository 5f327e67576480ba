"""Bound how deep a kernel's call tree writes below the stack pointer.

The bound is computed from the machine code LLVM emits for the final module
(its assembly text), not from the IR: register allocation, spills, stack
realignment and libcalls only exist there.  For each function::

    depth(f) = frame(f) + max(red_zone if f is a leaf that may use it,
                              depth(g) for every g that f calls or references)

``frame(f)`` is the return address plus every decrement of the stack pointer
in ``f`` (pushes, ``sub $n, %rsp``, realignment): an upper bound on the
frame, exact for LLVM's single-prologue code.  Callees are the targets of
direct calls and tail calls, and of indirect calls through a register loaded
with a symbol's address; any other indirect call counts the unknown-callee
allowance.  A function whose address is only stored (a destructor handed to
numba's runtime, an exception unpacker the wrapper runs later) is not a
callee: destructors run inside ``NRT_MemInfo_call_dtor``, whose allowance
covers them.  Functions defined in the
module are analysed recursively; external C functions (libc, libm, numba's C
runtime) get the allowance in :data:`EXTERNAL_ALLOWANCE` or
:data:`NUMBA_HELPER_ALLOWANCE`, a per-function bound whose sufficiency the
calibration tests measure (see ``tests/test_allowance_calibration.py``); an
external listed nowhere is a ``bounded-stack`` error (:mod:`.unknown`), unless
the kernel declares it (``secret_jit(stack_allowance={name: bytes})``).  Recursion, dynamically sized frames and
calls into the Python interpreter make the depth unbounded and are rejected
with :class:`~secretjit.errors.SecretPolicyError`.

Layout: :mod:`.core` (function bodies, basic blocks, the forward data flow,
depths), one module per architecture behind the registry
:data:`~.core.ARCHES` (:mod:`.x86_64`, :mod:`.aarch64`: syntax, stack-pointer
arithmetic, loaded addresses), :mod:`.allowances` (external functions) and
:mod:`.native` (C code bounded from a shared object's machine code).
"""

from . import unknown
from .allowances import (DEFAULT_ALLOWANCE, EXTERNAL_ALLOWANCE, LIBM,
                         LIBM_ALLOWANCE, NUMBA_HELPER_ALLOWANCE, RUNS_PYTHON,
                         external_allowance, known_allowance)
from .aarch64 import parse_aarch64
from .core import ARCHES, FrameInfo, StackBound, compute_bounds, readable
from .destructors import CALL_DTOR, destructors
from .x86_64 import parse_x86_64

# Bytes below the stack pointer that a leaf function may use without moving it.
RED_ZONE = {arch: syntax.red_zone for arch, syntax in ARCHES.items()}
PARSERS = {arch: syntax.parse for arch, syntax in ARCHES.items()}

__all__ = ['ARCHES', 'CALL_DTOR', 'DEFAULT_ALLOWANCE', 'EXTERNAL_ALLOWANCE', 'FrameInfo',
           'LIBM', 'LIBM_ALLOWANCE', 'NUMBA_HELPER_ALLOWANCE', 'PARSERS', 'RED_ZONE',
           'RUNS_PYTHON', 'StackBound', 'compute_bounds', 'destructors',
           'external_allowance', 'known_allowance', 'parse_aarch64',
           'parse_x86_64', 'readable', 'unknown']
