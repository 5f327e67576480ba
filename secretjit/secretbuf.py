"""Secret buffers: numpy arrays whose memory is a block of the secret arena.

A key that must outlive one kernel call (a session key, a long-term key read
from a file) can live in a :class:`SecretArray` instead of a ``bytes``
object.  Its memory is a block of the C runtime's secret arena
(``secretjit_arena_alloc``), so it gets the arena's guarantees:

- the pages are locked (never swapped) and left out of core dumps
  (``MADV_DONTDUMP``);
- a forked child sees zeros in them (``MADV_WIPEONFORK``);
- ``wipe()`` zeroes the buffer now; leaving a ``with`` block wipes it; when
  the last array using the block is gone the block is wiped and returned to
  the arena (a ``weakref.finalize``, which also runs at interpreter exit).

``pickle``, ``bytes()``, ``tobytes()`` and ``copy.copy``/``deepcopy`` of a
secret array are refused with ``SecretCopyError``; ``reveal()`` is the
explicit way to get a ``bytes`` copy.

Limitations: numpy operations that make a new array (``a + 0``, ``a.copy()``,
``np.array(a)``, fancy indexing) put their result in ordinary memory (the
result is a plain ``ndarray``, never a ``SecretArray``); a view outlives
``with``: the block is wiped on exit but freed only when the last view goes.
"""

import ctypes
import operator
import os
import weakref

import numpy as np

from . import secretmem

__all__ = ['SecretArray', 'SecretBuffer', 'SecretCopyError', 'read_secret',
           'secret_empty', 'secret_zeros', 'wipe_buffer']


class SecretCopyError(TypeError):
    """A secret buffer was about to be copied into ordinary memory."""


_REFUSED = ("%s of a secret buffer is refused: it would copy the secret into "
            "ordinary (swappable, dumpable, never wiped) memory; call "
            ".reveal() if a bytes copy is really wanted")

_lib_ready = False


def _lib():
    global _lib_ready
    lib = secretmem.lib()
    if not _lib_ready:
        lib.secretjit_arena_alloc.argtypes = [ctypes.c_size_t]
        lib.secretjit_arena_alloc.restype = ctypes.c_void_p
        lib.secretjit_arena_free.argtypes = [ctypes.c_void_p]
        lib.secretjit_arena_free.restype = None
        lib.secretjit_arena_owns.argtypes = [ctypes.c_void_p]
        lib.secretjit_arena_owns.restype = ctypes.c_int
        _lib_ready = True
    return lib


class _RefusesCopies:
    """``bytes()``, pickling and ``copy`` raise :class:`SecretCopyError`."""

    def __bytes__(self):
        raise SecretCopyError(_REFUSED % 'bytes()')

    def __reduce__(self):
        raise SecretCopyError(_REFUSED % 'pickling')

    def __reduce_ex__(self, protocol):
        raise SecretCopyError(_REFUSED % 'pickling')

    def __copy__(self):
        raise SecretCopyError(_REFUSED % 'copy.copy()')

    def __deepcopy__(self, memo):
        raise SecretCopyError(_REFUSED % 'copy.deepcopy()')


def _release(address, nbytes):
    # The finalizer: arena_free wipes every byte handed out; zero first anyway
    # so the wipe does not depend on the free path.
    ctypes.memset(address, 0, nbytes)
    _lib().secretjit_arena_free(address)


class SecretBuffer(_RefusesCopies):
    """One block of the secret arena; the ``.base`` of every array using it.

    ``nbytes`` bytes, 16-byte aligned, zero when handed out.  The block is
    freed (after a wipe) when this object is garbage: when no array using it
    is left.  ``bytes()`` and pickling are refused (:class:`SecretCopyError`).
    """

    def __init__(self, nbytes):
        nbytes = operator.index(nbytes)
        if nbytes < 0:
            raise ValueError("a secret buffer needs nbytes >= 0, got %d" % nbytes)
        address = _lib().secretjit_arena_alloc(max(nbytes, 1))
        if not address:
            raise MemoryError(
                "the secret arena has no room for %d bytes (arena size %d bytes: "
                "raise SECRETJIT_ARENA_SIZE, or free secret buffers)"
                % (nbytes, secretmem.arena_size()))
        self.address = address
        self.nbytes = nbytes
        self.released = False        # wiped by a with-exit; freed by the finalizer
        self._finalizer = weakref.finalize(self, _release, address, max(nbytes, 1))

    @property
    def __array_interface__(self):
        return {'shape': (self.nbytes,), 'typestr': '|u1',
                'data': (self.address, False), 'version': 3}

    def wipe(self):
        """Zero every byte of the block now."""
        ctypes.memset(self.address, 0, max(self.nbytes, 1))

    def reveal(self):
        """A ``bytes`` copy of the block: ordinary memory, the caller's to erase."""
        if self.released:
            raise ValueError("this secret buffer was wiped when its with block ended")
        return ctypes.string_at(self.address, self.nbytes)

    def __repr__(self):
        return '<SecretBuffer %d bytes at 0x%x%s>' % (
            self.nbytes, self.address, ', released' if self.released else '')


def _owner(arr):
    base = arr
    while base is not None and not isinstance(base, SecretBuffer):
        base = getattr(base, 'base', None)
    return base


class SecretArray(_RefusesCopies, np.ndarray):
    """A numpy array whose memory is a :class:`SecretBuffer` (secret arena).

    Views of it (slices, ``.view(dtype)``, reshapes) are ``SecretArray`` too
    and keep the block alive.  Results of numpy operations that allocate
    (ufuncs, ``copy()``) are in ordinary memory and come back as a plain
    ``ndarray``.  ``with`` returns the array and wipes it on exit.
    """

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # Ufunc results: a SecretArray only when written into a secret block
        # (out=); a new array is ordinary memory and says so by its type.
        out = arr.view(SecretArray if _owner(arr) is not None else np.ndarray)
        return out[()] if return_scalar else out

    def __getitem__(self, index):
        out = super().__getitem__(index)
        if isinstance(out, SecretArray) and _owner(out) is None:
            return out.view(np.ndarray)     # fancy indexing copies
        return out

    @property
    def secret_buffer(self):
        """The :class:`SecretBuffer` holding this array's memory (None: ordinary memory)."""
        return _owner(self)

    def wipe(self):
        """Zero this array's bytes now (not the rest of the block)."""
        self.view(np.ndarray)[...] = 0

    def reveal(self):
        """A ``bytes`` copy of this array's data: ordinary memory, the caller's to erase."""
        return self.view(np.ndarray).tobytes()

    def copy(self, order='C'):
        """A copy in ordinary memory, as a plain ``ndarray``."""
        return self.view(np.ndarray).copy(order)

    def astype(self, dtype, *args, **kwargs):
        """``ndarray.astype`` into ordinary memory (a plain ``ndarray``)."""
        return self.view(np.ndarray).astype(dtype, *args, **kwargs)

    def tobytes(self, order='C'):
        raise SecretCopyError(_REFUSED % 'tobytes()')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.wipe()                         # also when numpy copied it (no owner)
        owner = _owner(self)
        if owner is not None:
            owner.wipe()
            owner.released = True
        return False


def secret_empty(shape, dtype=np.uint8):
    """A new :class:`SecretArray` of ``shape`` and ``dtype`` in the secret arena.

    The memory is zero (arena blocks are wiped on free), but do not rely on
    it: use :func:`secret_zeros` when zeros are meant.  Object dtypes are
    refused (``TypeError``).
    """
    dt = np.dtype(dtype)
    if dt.hasobject:
        raise TypeError("a secret buffer cannot hold Python objects (dtype %s): "
                        "use a numeric dtype such as np.uint8" % dt)
    shape = (operator.index(shape),) if not isinstance(shape, tuple) else \
        tuple(operator.index(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError("negative dimensions are not allowed, got shape %r" % (shape,))
    count = 1
    for n in shape:
        count *= n
    buf = SecretBuffer(count * dt.itemsize)
    flat = np.asarray(buf)                          # base is buf, no copy
    return flat.view(dt).reshape(shape).view(SecretArray)


def secret_zeros(shape, dtype=np.uint8):
    """:func:`secret_empty`, zero-filled."""
    a = secret_empty(shape, dtype)
    a.wipe()
    return a


def wipe_buffer(a):
    """Zero the whole secret block under ``a`` (a SecretArray or SecretBuffer)."""
    owner = a if isinstance(a, SecretBuffer) else _owner(a)
    if owner is None:
        raise TypeError("wipe_buffer needs a secret buffer (from secret_empty or "
                        "secret_zeros), got %s" % type(a).__name__)
    owner.wipe()


def read_secret(path_or_fd, nbytes):
    """Read exactly ``nbytes`` from a file straight into a new secret uint8 array.

    ``path_or_fd`` is a path (opened read-only, closed afterwards) or an open
    file descriptor (read from its current offset, left open).  The bytes go
    from the kernel into the secret arena with ``os.readv``: no ``bytes`` or
    file buffer holds them.  A file shorter than ``nbytes`` raises
    ``ValueError`` (and the partial read is wiped).
    """
    nbytes = operator.index(nbytes)
    if isinstance(path_or_fd, bool) or not isinstance(path_or_fd, (int, str, bytes, os.PathLike)):
        raise TypeError("read_secret needs a path or a file descriptor (int), got %s"
                        % type(path_or_fd).__name__)
    own = not isinstance(path_or_fd, int)
    fd = os.open(path_or_fd, os.O_RDONLY | os.O_CLOEXEC) if own else path_or_fd
    out = secret_empty(nbytes)
    try:
        view = memoryview(out.view(np.ndarray))
        pos = 0
        while pos < nbytes:
            try:
                got = os.readv(fd, [view[pos:]])
            except InterruptedError:        # pragma: no cover - PEP 475 retries
                continue
            if got == 0:
                out.wipe()
                raise ValueError("%r holds %d bytes, read_secret wanted %d"
                                 % (path_or_fd, pos, nbytes))
            pos += got
        view.release()
    finally:
        if own:
            os.close(fd)
    return out
