"""Give NRT_incref/NRT_decref target-neutral bodies (AOT builds).

numba optimizes each helper library for the host before it is linked in; on
x86 LLVM turns NRT_decref's "atomicrmw sub + compare" into an x86-only
intrinsic.  An AOT library may be built for another architecture, so the
pass replaces the two bodies by numba's own definitions, built here with
``llvmlite.ir``::

    define internal void @NRT_decref(ptr %.1) #4 {         define internal void @NRT_decref(ptr %p) noinline {
      ...llvm.x86.atomic.sub.cc.i64...              ==>    entry:
    }                                                        %isnull = icmp eq ptr %p, null
                                                             br i1 %isnull, label %done, label %dec
                                                           dec:
                                                             fence release
                                                             %old = atomicrmw sub ptr %p, i64 1 monotonic, align 8
                                                             ... (call @NRT_MemInfo_call_dtor when %old == 1)

The linkage the function had is kept.  Modules that do not define the two
functions are left alone.
"""

from .report import PassReport
from .textir import Module, attribute_groups, inline_attribute_groups, \
    set_linkage, text_pass

GENERIC = ('NRT_incref', 'NRT_decref')
_BODIES = None


def _generic_module():
    """numba's NRT_incref/NRT_decref, as LLVM prints them."""
    import llvmlite.binding as ll
    from llvmlite import ir
    ptr = ir.PointerType()
    i64 = ir.IntType(64)
    mod = ir.Module('secretjit.generic_refcount')
    dtor = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr]),
                       'NRT_MemInfo_call_dtor')
    for name, op in (('NRT_incref', 'add'), ('NRT_decref', 'sub')):
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ptr]), name)
        fn.linkage = 'linkonce_odr'
        fn.attributes.add('noinline')
        p, = fn.args
        p.name = 'p'
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        done = fn.append_basic_block('done')
        work = fn.append_basic_block('inc' if op == 'add' else 'dec')
        b.cbranch(b.icmp_unsigned('==', p, ptr(None), name='isnull'), done, work)
        b.position_at_end(work)
        if op == 'sub':
            b.fence('release')
        old = b.atomic_rmw(op, p, i64(1), 'monotonic', name='old')
        if op == 'sub':
            free = fn.append_basic_block('free')
            b.cbranch(b.icmp_unsigned('==', old, i64(1), name='last'), free, done)
            b.position_at_end(free)
            b.fence('acquire')
            b.call(dtor, [p])
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()
    return Module.parse(str(ll.parse_assembly(str(mod))))


def _bodies():
    global _BODIES
    if _BODIES is None:
        mod = _generic_module()
        groups = attribute_groups(mod)
        _BODIES = {name: (inline_attribute_groups(mod.functions[name].header,
                                                  groups),
                          mod.functions[name].body) for name in GENERIC}
    return _BODIES


@text_pass
def generic_refcount(mod):
    """Replace the bodies of NRT_incref and NRT_decref by numba's generic IR."""
    report = PassReport('generic_refcount')
    for name, (header, body) in _bodies().items():
        fn = mod.functions.get(name)
        if fn is None:
            continue
        fn.header = set_linkage(header, fn.linkage)
        fn.body = list(body)
        report.count('replaced')
    return mod, report
