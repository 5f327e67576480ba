"""In-kernel randomness: ``random_bytes(out)`` fills a uint8 array from the OS CSPRNG (getrandom).

``random_bytes`` is a numba-compiled function, callable from Python and from inside
any nopython kernel.  It calls libc ``getrandom(buf, len, 0)`` through a numba
intrinsic, looping until the buffer is full and retrying on EINTR; any other failure
raises ``OSError`` (the buffer is never returned partially filled).

The libc addresses are registered with ``llvmlite.binding.add_symbol`` under private
names at import time, so the external symbols always resolve (MCJIT would silently
bind an unresolved external to address 0), including for cached kernels.
"""
import ctypes
import errno

import llvmlite.binding as ll
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["random_bytes"]

_SYM_GETRANDOM = "secretjit_libc_getrandom"
_SYM_ERRNO = "secretjit_libc_errno_location"
_EINTR = errno.EINTR


def _register_symbols():
    libc = ctypes.CDLL(None)
    try:
        getrandom = libc.getrandom
        errno_location = libc.__errno_location
    except AttributeError as exc:  # pragma: no cover - glibc < 2.25 / non-Linux
        raise ImportError("secretjit.kernels._random needs libc getrandom() and "
                          "__errno_location() (Linux, glibc >= 2.25 or musl)") from exc
    for name, fn in ((_SYM_GETRANDOM, getrandom), (_SYM_ERRNO, errno_location)):
        addr = ctypes.cast(fn, ctypes.c_void_p).value
        if not addr:  # pragma: no cover
            raise ImportError(f"cannot resolve the address of libc symbol for {name}")
        ll.add_symbol(name, addr)


_register_symbols()


def _is_u8_buffer(ty):
    return (isinstance(ty, types.Buffer) and ty.dtype == types.uint8 and ty.ndim == 1
            and ty.layout == "C" and ty.mutable)


@intrinsic
def _getrandom_into(typingctx, buf, off, n):
    """ssize_t getrandom(&buf[off], n, 0) -> int64 (no bounds check: callers guarantee it)."""
    if not (_is_u8_buffer(buf) and isinstance(off, types.Integer) and isinstance(n, types.Integer)):
        return None
    sig = types.int64(buf, off, n)

    def codegen(context, builder, signature, args):
        bufty, offty, nty = signature.args
        ary = context.make_array(bufty)(context, builder, args[0])
        offv = context.cast(builder, args[1], offty, types.intp)
        nv = context.cast(builder, args[2], nty, types.intp)
        i8 = ir.IntType(8)
        ptr = builder.gep(builder.bitcast(ary.data, i8.as_pointer()), [offv])
        fnty = ir.FunctionType(ir.IntType(64), [i8.as_pointer(), ir.IntType(64), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYM_GETRANDOM)
        return builder.call(fn, [ptr, nv, ir.Constant(ir.IntType(32), 0)])

    return sig, codegen


@intrinsic
def _errno(typingctx):
    """The calling thread's errno (via __errno_location)."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32.as_pointer(), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYM_ERRNO)
        return builder.load(builder.call(fn, []))

    return sig, codegen


@njit(cache=True, nogil=True)
def random_bytes(out):
    """Fill the writable 1-D C-contiguous uint8 buffer ``out`` with OS CSPRNG bytes.

    Callable from Python and from nopython kernels.  Raises OSError if getrandom fails
    with anything other than EINTR (which is retried).
    """
    n = len(out)
    pos = 0
    while pos < n:
        r = _getrandom_into(out, pos, n - pos)
        if r > 0:
            pos += r
        elif r < 0 and _errno() == _EINTR:
            continue
        else:
            raise OSError("getrandom failed")
