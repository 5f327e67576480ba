"""Run a compile on one roomy chunk of CPython's frame stack (3.11 and later).

CPython 3.11+ keeps Python frames on a per-thread stack of chunks, 16 KiB
each, taken with ``mmap`` and returned with ``munmap`` as soon as the frame
that opened a chunk returns (``_PyThreadState_PopFrame``).  Code whose call
depth keeps crossing a chunk's end pays a system call pair and a page fault
per crossing.  numba's compiler is such code: which depth its hot loops
(type inference, lowering) sit at depends on how deep the caller was, and a
secret compile starts a few frames deeper than numba's own.  Measured on
``sha256_into`` in a fresh process: 29,000 ``mmap``/``munmap`` pairs and
33,700 page faults under ``secret_jit`` against 1,500 and 4,700 under
``njit``, about 0.15 s CPU of a 1.0 s compile; 0.9 s of the AEAD seal's 9 s.

:func:`call_in_roomy_chunk` calls a function from a frame that asks for
about 1 MiB of stack slots it never uses.  CPython gives that frame a chunk
of its own (2 MiB of address space, touched only where frames land), so the
frames of everything called from it fit in the one chunk and no crossing
happens.  The big frame is a copy of a two-line function whose code object
declares a larger value stack (``CodeType.replace(co_stacksize=...)``);
nothing else about the interpreter changes.  Before 3.11 (heap frames) the
plain function is used.
"""

import mmap
import sys
import types

# Stack slots (8 bytes each) the roomy frame reserves: 1 MiB.  CPython rounds
# the chunk up to a power of two, 2 MiB; about 1 MiB of it is left for the
# frames called from it, a few thousand numba frames deep.
ROOMY_SLOTS = 1 << 17


def _call(fn, args, kws):
    return fn(*args, **kws)


def _roomy(func):
    if sys.version_info < (3, 11):
        return func
    code = func.__code__.replace(co_stacksize=func.__code__.co_stacksize
                                 + ROOMY_SLOTS)
    return types.FunctionType(code, func.__globals__, func.__name__)


_call_roomy = _roomy(_call)
ROOMY_CODE = _call_roomy.__code__


def call_in_roomy_chunk(fn, *args, **kws):
    """``fn(*args, **kws)``, called from a frame that opens a 2 MiB frame chunk.

    Already inside such a frame (a nested compile), or where the chunk could
    not be mapped now (:func:`_room_for_chunk`), ``fn`` is called directly.
    """
    if in_roomy_chunk() or not _room_for_chunk():
        return fn(*args, **kws)
    return _call_roomy(fn, args, kws)


def _room_for_chunk():
    """Whether 4 MiB of address space can be mapped now (twice the chunk).

    CPython 3.11 cannot fail a frame push cleanly: without room for the
    chunk (an address-space limit, ``RLIMIT_AS``) it returns an error with no
    exception set and leaves its frame stack corrupt, and the interpreter
    crashes later.  So the roomy frame is pushed only where the mapping is
    known to fit: an anonymous mapping, never touched, unmapped at once.
    """
    try:
        mmap.mmap(-1, 4 << 20).close()
    except OSError:
        return False
    return True


def in_roomy_chunk():
    """Whether the calling thread runs below a :func:`call_in_roomy_chunk` frame."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is ROOMY_CODE:
            return True
        frame = frame.f_back
    return False
