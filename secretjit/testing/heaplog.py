"""A log of the heap blocks one call allocates, with its freed blocks held back.

numba's runtime allocates every MemInfo and array through CPython's raw
allocator (``PyMem_RawMalloc``: numba's ``_nrt_python`` binds its allocator
to it at import).  For one call this module puts a hook in front of that
allocator (``PyMem_SetAllocator(PYMEM_DOMAIN_RAW)``): every block allocated
while the hook is armed is recorded with its size, and a recorded block
freed while armed is not freed but *quarantined*, so nothing can reuse it
before the detector has read it.  Blocks allocated before the window go to
the real ``free`` as usual; ``realloc`` of a recorded block moves it to a new
recorded block and quarantines the old one.

The hooks are machine code (built with llvmlite, like the probes), thread
safe through an atomic slot counter; the window opens and closes in machine
code around a kernel's CPython wrapper (:meth:`HeapLog.call`), so no Python
code runs inside it; :meth:`HeapLog.release` frees the quarantined blocks.
:meth:`HeapLog.window` opens a window around Python code instead.

Limitations: memory a C function obtains from ``malloc`` directly (not
through numba's runtime or CPython's raw allocator) is not logged; at most
:data:`CAPACITY` blocks per window (``overflowed`` says when more came).
"""

import contextlib
import ctypes

import llvmlite.binding as ll
import numpy as np
from llvmlite import ir

CAPACITY = 1 << 14
# state words: the wrapped allocator (ctx, malloc, calloc, realloc, free),
# armed, slot count, capacity, then (address, size, freed) per slot
_CTX, _MALLOC, _CALLOC, _REALLOC, _FREE, _ARMED, _COUNT, _CAP = range(8)
_SLOTS = 16
_i64 = ir.IntType(64)
_i1 = ir.IntType(1)
_ptr = ir.IntType(8).as_pointer()
_MALLOC_T = ir.FunctionType(_ptr, [_ptr, _i64])
_CALLOC_T = ir.FunctionType(_ptr, [_ptr, _i64, _i64])
_REALLOC_T = ir.FunctionType(_ptr, [_ptr, _ptr, _i64])
_FREE_T = ir.FunctionType(ir.VoidType(), [_ptr, _ptr])
_RAW_DOMAIN = 0                     # PYMEM_DOMAIN_RAW


class _Allocator(ctypes.Structure):
    """CPython's ``PyMemAllocatorEx``."""
    _fields_ = [('ctx', ctypes.c_void_p), ('malloc', ctypes.c_void_p),
                ('calloc', ctypes.c_void_p), ('realloc', ctypes.c_void_p),
                ('free', ctypes.c_void_p)]


def _word(b, st, i):
    return b.gep(st, [i if isinstance(i, ir.Value) else _i64(i)])


def _original(b, st, index, fnty):
    """The wrapped allocator's function ``index`` and its context."""
    fn = b.inttoptr(b.load(_word(b, st, index)), fnty.as_pointer())
    return fn, b.inttoptr(b.load(_word(b, st, _CTX)), _ptr)


def _armed(b, st):
    return b.icmp_unsigned('!=', b.load_atomic(_word(b, st, _ARMED),
                                               'monotonic', 8), _i64(0))


def _state(b, ctx):
    return b.bitcast(ctx, _i64.as_pointer())


def _define_record(mod):
    """``void record(i64* st, i8* p, i64 size)``: take a slot for ``p``."""
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [_i64.as_pointer(),
                                                          _ptr, _i64]),
                     'secretjit_heaplog_record')
    st, p, size = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    n = b.atomic_rmw('add', _word(b, st, _COUNT), _i64(1), 'seq_cst')
    with b.if_then(b.icmp_unsigned('<', n, b.load(_word(b, st, _CAP)))):
        base = b.add(_i64(_SLOTS), b.mul(n, _i64(3)))
        b.store(b.ptrtoint(p, _i64), _word(b, st, base))
        b.store(size, _word(b, st, b.add(base, _i64(1))))
        b.store(_i64(0), _word(b, st, b.add(base, _i64(2))))
    b.ret_void()
    return fn


def _define_find(mod):
    """``i64* find(i64* st, i8* p)``: the freed flag of ``p``'s live slot, or NULL."""
    fn = ir.Function(mod, ir.FunctionType(_i64.as_pointer(),
                                          [_i64.as_pointer(), _ptr]),
                     'secretjit_heaplog_find')
    st, p = fn.args
    entry, loop, body, hit, miss = (fn.append_basic_block(n) for n in
                                    ('entry', 'loop', 'body', 'hit', 'miss'))
    b = ir.IRBuilder(entry)
    count = b.load_atomic(_word(b, st, _COUNT), 'seq_cst', 8)
    cap = b.load(_word(b, st, _CAP))
    top = b.select(b.icmp_unsigned('<', count, cap), count, cap)
    want = b.ptrtoint(p, _i64)
    b.branch(loop)
    b.position_at_end(loop)
    i = b.phi(_i64)
    i.add_incoming(top, entry)
    b.cbranch(b.icmp_unsigned('==', i, _i64(0)), miss, body)
    b.position_at_end(body)
    j = b.sub(i, _i64(1))
    i.add_incoming(j, body)
    base = b.add(_i64(_SLOTS), b.mul(j, _i64(3)))
    flag = _word(b, st, b.add(base, _i64(2)))
    same = b.icmp_unsigned('==', b.load(_word(b, st, base)), want)
    live = b.icmp_unsigned('==', b.load(flag), _i64(0))
    b.cbranch(b.and_(same, live), hit, loop)
    b.position_at_end(hit)
    b.ret(flag)
    b.position_at_end(miss)
    b.ret(ir.Constant(_i64.as_pointer(), None))
    return fn


def _define_alloc_hooks(mod, record):
    """The malloc and calloc hooks: call the wrapped allocator, record if armed."""
    for name, fnty, index in (('malloc', _MALLOC_T, _MALLOC),
                              ('calloc', _CALLOC_T, _CALLOC)):
        fn = ir.Function(mod, fnty, 'secretjit_heaplog_' + name)
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        st = _state(b, fn.args[0])
        real, ctx = _original(b, st, index, fnty)
        p = b.call(real, [ctx] + list(fn.args[1:]))
        size = fn.args[1] if index == _MALLOC else b.mul(fn.args[1], fn.args[2])
        keep = b.and_(_armed(b, st), b.icmp_unsigned('!=', p, _ptr(None)))
        with b.if_then(keep):
            b.call(record, [st, p, size])
        b.ret(p)


def _define_free_hook(mod, find):
    """The free hook: an armed free of a recorded block only marks it freed."""
    fn = ir.Function(mod, _FREE_T, 'secretjit_heaplog_free')
    ctx, p = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    st = _state(b, ctx)
    with b.if_then(_armed(b, st)):
        flag = b.call(find, [st, p])
        with b.if_then(b.icmp_unsigned('!=', flag, ir.Constant(flag.type, None))):
            b.store(_i64(1), flag)
            b.ret_void()
    real, rctx = _original(b, st, _FREE, _FREE_T)
    b.call(real, [rctx, p])
    b.ret_void()


def _define_realloc_hook(mod, record, find):
    """The realloc hook: a recorded block moves to a new one, the old is quarantined."""
    fn = ir.Function(mod, _REALLOC_T, 'secretjit_heaplog_realloc')
    ctx, p, size = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    st = _state(b, ctx)
    armed = _armed(b, st)
    with b.if_then(armed):
        flag = b.call(find, [st, p])
        with b.if_then(b.icmp_unsigned('!=', flag, ir.Constant(flag.type, None))):
            real, rctx = _original(b, st, _MALLOC, _MALLOC_T)
            new = b.call(real, [rctx, size])
            with b.if_then(b.icmp_unsigned('!=', new, _ptr(None))):
                old = b.load(b.gep(flag, [_i64(-1)]))
                n = b.select(b.icmp_unsigned('<', old, size), old, size)
                b.call(mod.declare_intrinsic('llvm.memcpy', [_ptr, _ptr, _i64]),
                       [new, p, n, _i1(0)])
                b.store(_i64(1), flag)
                b.call(record, [st, new, size])
            b.ret(new)
    real, rctx = _original(b, st, _REALLOC, _REALLOC_T)
    q = b.call(real, [rctx, p, size])
    with b.if_then(b.and_(armed, b.icmp_unsigned('!=', q, _ptr(None)))):
        b.call(record, [st, q, size])
    b.ret(q)


def _define_window(mod):
    """``ptr call(ptr wrapper, ptr args, i64* st)``: the wrapper, armed."""
    fn = ir.Function(mod, ir.FunctionType(_ptr, [_ptr, _ptr, _i64.as_pointer()]),
                     'secretjit_heaplog_call')
    fn.attributes.add('noinline')
    wrapper, args, st = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    b.store_atomic(_i64(1), _word(b, st, _ARMED), 'seq_cst', 8)
    wty = ir.FunctionType(_ptr, [_ptr, _ptr, _ptr])
    res = b.call(b.bitcast(wrapper, wty.as_pointer()), [_ptr(None), args, _ptr(None)])
    b.store_atomic(_i64(0), _word(b, st, _ARMED), 'seq_cst', 8)
    b.ret(res)


class HeapLog:
    """The hooks' machine code and the state of one logging window."""

    def __init__(self, capacity=CAPACITY):
        mod = ir.Module('secretjit.testing.heaplog')
        mod.triple = ll.get_process_triple()
        record, find = _define_record(mod), _define_find(mod)
        _define_alloc_hooks(mod, record)
        _define_free_hook(mod, find)
        _define_realloc_hook(mod, record, find)
        _define_window(mod)
        llmod = ll.parse_assembly(str(mod))
        llmod.verify()
        tm = ll.Target.from_default_triple().create_target_machine(
            codemodel='jitdefault', reloc='static')
        self.engine = ll.create_mcjit_compiler(llmod, tm)
        self.engine.finalize_object()
        addr = self.engine.get_function_address
        self.state = (ctypes.c_uint64 * (_SLOTS + 3 * capacity))()
        self.state[_CAP] = capacity
        self.hooks = _Allocator(ctypes.addressof(self.state),
                                *(addr('secretjit_heaplog_' + n) for n in
                                  ('malloc', 'calloc', 'realloc', 'free')))
        self.saved = _Allocator()
        self._call = ctypes.PYFUNCTYPE(
            ctypes.c_void_p, ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p)(
                addr('secretjit_heaplog_call'))
        self._free = None
        self.overflowed = False

    def _install(self):
        if self.count():
            raise RuntimeError("release() the quarantined blocks of the last "
                               "window before opening another")
        get = ctypes.pythonapi.PyMem_GetAllocator
        get.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
        get(_RAW_DOMAIN, ctypes.byref(self.saved))
        for i, name in enumerate(('ctx', 'malloc', 'calloc', 'realloc', 'free')):
            self.state[i] = getattr(self.saved, name) or 0
        self._free = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(
            self.saved.free)
        ctypes.pythonapi.PyMem_SetAllocator.argtypes = [
            ctypes.c_int, ctypes.POINTER(_Allocator)]
        ctypes.pythonapi.PyMem_SetAllocator(_RAW_DOMAIN, ctypes.byref(self.hooks))

    def _uninstall(self):
        ctypes.pythonapi.PyMem_SetAllocator(_RAW_DOMAIN, ctypes.byref(self.saved))
        self.overflowed = self.state[_COUNT] > self.state[_CAP]

    def call(self, wrapper, args):
        """Call a CPython wrapper ``wrapper(NULL, args, NULL)`` inside a window.

        Returns the result object (a new reference, as an int) or raises the
        kernel's exception; the blocks stay logged until :meth:`release`.
        """
        self._install()
        try:
            return self._call(wrapper, args, ctypes.addressof(self.state))
        finally:
            self._uninstall()

    @contextlib.contextmanager
    def window(self):
        """Hold back every block freed inside the ``with`` body, Python code included.

        For tests that read a freed block at a known address after the call
        (``probes.freed_memory``): inside the window nothing can reuse it.
        The blocks are released when the body ends.
        """
        self._install()
        self.state[_ARMED] = 1
        try:
            yield self
        finally:
            self.state[_ARMED] = 0
            self._uninstall()
            self.release()

    def count(self):
        return min(self.state[_COUNT], self.state[_CAP])

    def blocks(self):
        """``(address, size, freed)`` of every block the window logged."""
        n = self.count()
        rows = np.frombuffer(self.state, np.uint64)[_SLOTS:_SLOTS + 3 * n]
        return [tuple(int(v) for v in row) for row in rows.reshape(-1, 3)]

    def freed(self):
        """``(address, size)`` of the quarantined blocks: allocated and freed in the window."""
        return [(a, s) for a, s, f in self.blocks() if f]

    def release(self):
        """Free the quarantined blocks with the wrapped allocator; empty the log."""
        for a, _ in self.freed():
            self._free(self.saved.ctx, a)
        ctypes.memset(ctypes.addressof(self.state) + 8 * _SLOTS, 0,
                      24 * self.count())
        self.state[_COUNT] = 0


_log = None


def heap_log():
    """The process's one :class:`HeapLog` (built on first use)."""
    global _log
    if _log is None:
        _log = HeapLog()
    return _log
