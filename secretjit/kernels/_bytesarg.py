"""``BytesArg``: a CPython ``bytes`` object as an API kernel's 1-D uint8 buffer, unboxed by two loads.

numba unboxes a generic buffer argument with ``PyObject_GetBuffer``, a new
MemInfo (a ``malloc``) and, after the call, ``PyBuffer_Release`` and a free:
tens of nanoseconds per argument.  For an exact ``bytes`` object the data and
the length sit at fixed offsets of the object (``ob_sval``, ``ob_size``), and
the caller's reference keeps the object alive for the whole call, so the
array structure is filled from the object itself, with no MemInfo (a borrowed
array, as numba makes for buffers without a runtime).  The API functions pass
only objects whose type is exactly ``bytes`` to such a parameter (``OUT_BYTES``
only fresh ones, see :func:`secretjit.kernels._util.new_bytes`).
"""
import sys

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.datamodel import models, register_default
from numba.extending import NativeValue, unbox
from numba.np.arrayobj import populate_array

# CPython's PyBytesObject: PyVarObject (refcount, type, ob_size), ob_shash, ob_sval[].
OB_SIZE = 2 * 8
OB_SVAL = bytes.__basicsize__ - 1            # the trailing NUL is counted in the basic size
AVAILABLE = (sys.implementation.name == "cpython" and sys.maxsize == 2 ** 63 - 1
             and OB_SVAL == 32)


class BytesArg(types.Buffer):
    """A ``bytes`` object viewed as uint8[::1]; ``mutable`` only for fresh output objects."""

    def __init__(self, mutable=False):
        super().__init__(types.uint8, 1, "C", readonly=not mutable,
                         name="BytesArg(%s)" % ("out" if mutable else "in"))


register_default(BytesArg)(models.ArrayModel)


@unbox(BytesArg)
def _unbox_bytes(typ, obj, c):
    b = c.builder
    i64 = ir.IntType(64)
    base = b.bitcast(obj, ir.IntType(8).as_pointer())
    n = b.load(b.bitcast(b.gep(base, [ir.Constant(i64, OB_SIZE)]), i64.as_pointer()))
    data = b.gep(base, [ir.Constant(i64, OB_SVAL)])
    ary = c.context.make_array(typ)(c.context, b)
    populate_array(ary, data=b.bitcast(data, ary.data.type),
                   shape=cgutils.pack_array(b, [n]),
                   strides=cgutils.pack_array(b, [ir.Constant(i64, 1)]),
                   itemsize=ir.Constant(i64, 1), meminfo=None, parent=obj)
    return NativeValue(ary._getvalue())


IN_BYTES = BytesArg(mutable=False)
OUT_BYTES = BytesArg(mutable=True)
