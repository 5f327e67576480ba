"""``assert_erased``: check that a secret kernel leaves nothing behind, with a control.

The kernel runs once under plain numba (the control: its Python source with
``njit``, secret callees made plain and ``wipe`` a no-op) and once under
``secret_jit``.  After each call three detectors look for the secret words:

- ``stack``: the 64 KiB below the caller's stack pointer, poisoned before
  the call and copied right after the CPython wrapper returned, plus the
  calling thread's secret stack;
- ``registers`` (x86-64): every call-clobbered register (GPRs, XSAVE area:
  x87, SSE, AVX, AVX-512, masks) spilled the instant the wrapper returned;
- ``heap``: every heap block the call allocated and freed (logged by a hook
  in front of the allocator numba's runtime uses, and held back from reuse
  until it is read: :mod:`~secretjit.testing.heaplog`), plus the secret
  arena, scanned in place before and after the call (a word counts there
  where its address did not hold it before).  Neither depends on what the
  allocator reuses, so the control and the secret run are deterministic.

Secret words (8-byte values) default to every 8-byte window of every array
argument (all byte offsets; integer arguments themselves are the caller's:
numba's wrapper unboxes them outside the protected call), plus the *scratch
words*: what the control leaves in its stack window and its registers that
changes when the array arguments change (the control runs three times on them and twice on
copies XORed with random bytes, integers of 2**32 or more too: stack canaries, pointers and constants stay
the same and drop out), minus what the caller gets back (the arrays after
the call, the result).  Only high-entropy words count: not within 2**32 of 0
or of 2**64, not a pointer into a mapping, at least four distinct bytes (so
``np.zeros`` or ``np.full(32, 7)`` carry no detectable secret).  A detector
counts only when the control leaves at least one secret word under it; a
detector whose control saw nothing is reported as blind, and when every
requested detector is blind the assertion fails with "the detector cannot
see this kernel's secret".  All words are held masked (``(w ^ m) * k`` with
random ``m`` and odd ``k``) and memory is compared in the same form, so the
checker leaves no plain copy for its own scans to find (the entropy filter's
one plain temporary is zeroed before it is freed).
"""

import numpy as np
from numba import typeof

from .. import SecretDispatcher
from . import probes
from .control import plain_kernel
from .detectors import _heap_run, _register_run, _scratch_words, _stack_run
from .report import MECHANISMS, Report
from .words import _fresh, _high_entropy, _input_words, _Mask, _mask_words, _windows


def _run_detectors(dispatcher, args, wanted, mask, mechanisms):
    """One run of ``dispatcher`` under each requested detector, on fresh copies of ``args``."""
    found = {}
    if 'heap' in mechanisms:
        _, found['heap'] = _heap_run(dispatcher, args, wanted, mask)
    if 'stack' in mechanisms:
        _, found['stack'], _ = _stack_run(dispatcher, _fresh(args), wanted, mask)
    if 'registers' in mechanisms:
        _, found['registers'] = _register_run(dispatcher, _fresh(args), wanted, mask)
    return found


def _secret_run(kernel):
    """The dispatcher the secret run calls: ``kernel`` (tests replace this)."""
    return kernel


def _checked_mechanisms(kernel, args, mechanisms):
    """The requested mechanisms as a tuple; clear errors for bad arguments."""
    if not isinstance(kernel, SecretDispatcher):
        raise TypeError("assert_erased needs a @secret_jit kernel, got %r; "
                        "decorate it with secretjit.secret_jit" % (kernel,))
    if mechanisms is None:
        mechanisms = MECHANISMS
    elif isinstance(mechanisms, str):
        mechanisms = (mechanisms,)
    mechanisms = tuple(mechanisms)
    unknown = [m for m in mechanisms if m not in MECHANISMS]
    if unknown or not mechanisms:
        raise ValueError("unknown mechanism(s) %s: choose from %s"
                         % (', '.join(map(repr, unknown)) or '(none given)',
                            ', '.join(MECHANISMS)))
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
            raise ValueError("argument %d is not C-contiguous: the detectors read "
                             "its bytes; pass np.ascontiguousarray(...)" % i)
    return mechanisms


def _given_words(secret_words, mask):
    """Masked words of an explicit ``secret_words``: ints, or every window of bytes/arrays."""
    parts = [np.empty(0, np.uint64)]
    for w in secret_words:
        if isinstance(w, (bytes, bytearray, memoryview, np.ndarray)):
            parts.append(_windows(np.frombuffer(bytes(w), np.uint8)
                                  if not isinstance(w, np.ndarray) else w, mask))
        else:
            parts.append(_mask_words([w], mask))
    return np.unique(np.concatenate(parts))


def check_erased(kernel, *args, mechanisms=None, secret_words=None, name=None):
    """Run the control and the secret kernel under the detectors; return a :class:`Report`.

    Same arguments as :func:`assert_erased`, which raises on a failing report.
    """
    mechanisms = _checked_mechanisms(kernel, args, mechanisms)
    mask = _Mask()
    sig = tuple(typeof(a) for a in args)
    control = plain_kernel(kernel, keep_wipe=False)
    control.compile(sig)
    kernel.compile(sig)
    probes._probes()
    if secret_words is None:
        wanted = _input_words(args, mask)
        wanted = np.unique(np.concatenate([wanted, _scratch_words(
            control, args, wanted, mask)]))
    else:
        wanted = _given_words(secret_words, mask)
    wanted = wanted[_high_entropy(wanted, mask)]
    report = Report(name or getattr(kernel.py_func, '__qualname__', str(kernel)),
                    mechanisms, len(wanted))
    report.control = _run_detectors(control, args, wanted, mask, mechanisms)
    report.secret = _run_detectors(_secret_run(kernel), args, wanted, mask,
                                   mechanisms)
    return report


def assert_erased(kernel, *args, mechanisms=None, secret_words=None):
    """Assert that ``kernel(*args)`` leaves no secret word behind, with a control.

    Parameters
    ----------
    kernel : a ``@secret_jit`` dispatcher
        Its ``py_func`` compiled with plain ``njit`` (``wipe`` a no-op) is
        the control.
    *args
        Arguments for one call; arrays must be C-contiguous.  Each run gets
        fresh copies of the arrays.
    mechanisms : iterable of str, optional
        Any of ``'stack'``, ``'registers'``, ``'heap'`` (default: all).
    secret_words : iterable, optional
        The 8-byte words to look for: ints, or bytes/arrays (every 8-byte
        window).  Default: the arguments' words and the control's scratch
        words (module docstring).

    Raises
    ------
    AssertionError
        When the secret run left secret words (the message names the
        mechanism, the count and where), or when no requested detector's
        control found anything (the detector cannot see the secret).
    """
    report = check_erased(kernel, *args, mechanisms=mechanisms,
                          secret_words=secret_words)
    if not report.passed:
        raise AssertionError(report.explain())
    return report
