"""Generate the C ABI function of each AOT export (``llvmlite.ir``).

Each export ``c_name`` gets a function that checks its arguments, calls the
kernel with numba's calling convention (return slot, exception slot, then
each array as numba's 7 fields) and turns numba's status into the C status::

    int32_t toy_mix(uint8_t *key, int64_t key_len, int64_t *ret)   (C view)

    define i32 @toy_mix(ptr %key, i64 %key_len, ptr %ret) {
    entry:
      %retslot = alloca [64 x i8], align 16
      %exc = alloca ptr, align 8
      <bad = key_len < 0 | (key == null & key_len > 0) | ret == null>
      br i1 %bad, label %einval, label %call      ; !prof: %call is likely
    einval:  ret i32 2                                  ; SECRETJIT_EINVAL
    call:
      store ptr null, ptr %exc
      %status = call i32 @K(ptr %retslot, ptr %exc, ptr null, ptr null,
                            i64 %key_len, i64 1, ptr %key, i64 %key_len, i64 1)
      call void @secretjit_aot_clear_vregs()            ; when ``clear`` is set
      br ((status + 2) & ~2) == 0, label %done, label %raised    ; 0 or -2, likely
    raised:  ret i32 1                                  ; SECRETJIT_ERAISED
    done:    store the result through %ret; ret i32 0   ; SECRETJIT_OK

:class:`WrapperSpec` describes one export in LLVM terms (the AOT front end,
``secretjit.aot._build``, checks the export against the kernel's signature
and builds it); :func:`c_abi_wrappers` returns the IR module, which the
pipeline links with the kernels.
"""

import re
from dataclasses import dataclass

from llvmlite import ir

from .boundary import BOUNDARY_PREFIX, LIKELY_WEIGHTS
from .report import PassReport
from .textir import called_names, text_pass

_PTR = ir.PointerType()
_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def llvm_type(name):
    """The ``llvmlite.ir`` type spelled ``name`` (``ptr``, ``i64``, ``double``...)."""
    if name == 'ptr':
        return _PTR
    if name == 'float':
        return ir.FloatType()
    if name == 'double':
        return ir.DoubleType()
    if name.startswith('i') and name[1:].isdigit():
        return ir.IntType(int(name[1:]))
    raise ValueError("no LLVM type %r in a C ABI wrapper" % name)


@dataclass
class WrapperSpec:
    """One export: C name, kernel symbol and types, parameters, result."""
    c_name: str
    kernel: str
    kernel_params: list      # LLVM type names of the kernel's parameters
    params: list             # per C parameter group: ('array', item bytes, name),
                             # ('scalar', LLVM type, name) or ('bool', 'i8', name)
    result: tuple = None     # (LLVM type in the return slot, of the C *ret)
    clear: str = None        # function called after the kernel returns


def _declare(mod, name, fnty):
    fn = mod.globals.get(name)
    return fn if fn is not None else ir.Function(mod, fnty, name)


def _arguments(b, spec, args):
    """(kernel arguments, invalid-argument checks) from the C arguments."""
    kargs, checks, it = [], [], iter(args)
    for kind, what, name in spec.params:
        if kind == 'array':
            data, n = next(it), next(it)
            data.name, n.name = name, name + '_len'
            item = _I64(what)
            kargs += [_PTR(None), _PTR(None), n, item, data, n, item]
            bad_len = b.icmp_signed('<', n, _I64(0), name=name + '.neg')
            isnull = b.icmp_unsigned('==', data, _PTR(None))
            pos = b.icmp_signed('>', n, _I64(0))
            checks += [bad_len, b.and_(isnull, pos, name=name + '.null')]
            continue
        v = next(it)
        v.name = name
        if kind == 'bool':                      # C bool (i8) -> numba i1
            v = b.icmp_unsigned('!=', v, _I8(0), name=name + '.bool')
        kargs.append(v)
    return kargs, checks


def _store_result(b, spec, slot, out):
    ret_ll, c_ll = spec.result
    r = b.load(slot, typ=llvm_type(ret_ll), name='r', align=8)
    if ret_ll == c_ll:
        b.store(r, out, align=1)
    elif c_ll == 'i8' and ret_ll == 'i1':
        b.store(b.zext(r, _I8), out, align=1)
    else:                                       # integer -> C bool
        nz = b.icmp_unsigned('!=', r, r.type(0))
        b.store(b.zext(nz, _I8), out, align=1)


def _wrapper(mod, spec):
    ktypes = [llvm_type(t) for t in spec.kernel_params]
    kernel = _declare(mod, spec.kernel, ir.FunctionType(_I32, ktypes))
    ctypes_ = []
    for kind, what, _ in spec.params:
        ctypes_ += [_PTR, _I64] if kind == 'array' else [llvm_type(what)]
    if spec.result:
        ctypes_.append(_PTR)
    fn = ir.Function(mod, ir.FunctionType(_I32, ctypes_), spec.c_name)
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    slot = b.alloca(ir.ArrayType(_I8, 64), name='retslot')
    slot.align = 16
    exc = b.alloca(_PTR, name='exc')
    exc.align = 8
    kargs, checks = _arguments(b, spec, fn.args)
    if spec.result:
        out = fn.args[-1]
        out.name = 'ret'
        checks.append(b.icmp_unsigned('==', out, _PTR(None), name='ret.null'))
    bad = _I1(0)
    for c in checks:
        bad = b.or_(bad, c)
    einval, call = fn.append_basic_block('einval'), fn.append_basic_block('call')
    b.cbranch(bad, einval, call).set_weights(LIKELY_WEIGHTS[::-1])
    b.position_at_end(einval)
    b.ret(_I32(2))
    b.position_at_end(call)
    b.store(_PTR(None), exc, align=8)
    status = b.call(kernel, [slot, exc] + kargs, name='status')
    if spec.clear:
        b.call(_declare(mod, spec.clear, ir.FunctionType(ir.VoidType(), [])), [])
    # status 0 or -2 (numba's OK and OK-returning-None), one test with no
    # branch between them: (status + 2) & ~2 == 0.
    ok = b.icmp_unsigned('==', b.and_(b.add(status, _I32(2)), _I32(~2)), _I32(0),
                         name='ok')
    raised, done = fn.append_basic_block('raised'), fn.append_basic_block('done')
    b.cbranch(ok, done, raised).set_weights(LIKELY_WEIGHTS)
    b.position_at_end(raised)
    b.ret(_I32(1))
    b.position_at_end(done)
    if spec.result:
        _store_result(b, spec, slot, out)
    b.ret(_I32(0))


@text_pass
def drop_clears(mod, kernels, clear):
    """Remove the call of ``clear`` after the kernel call from every wrapper
    whose boundaries all belong to ``kernels`` (after optimization)::

        %status = call i32 @"__secretjit.boundary.K"(ptr %retslot, ...)
        call void @secretjit_aot_clear_vregs()              ==>  (gone)

    For x86-64 libraries built without AVX-512 the export's clear zeroes
    what the build's own epilogue cannot name (ymm/zmm upper bits,
    zmm16-31, k0-k7).  ``kernels`` are the exact trees whose written
    registers :func:`secretjit.stack_bound.vregs.tree_registers` knew: only
    the module's code (built for that ISA, so it writes none of those) and
    the runtime's exact entry (which leaves no secret in a vector register)
    run in them, and the boundary's epilogue zeroes what they write.  A
    wrapper calling any other boundary keeps its clear."""
    report = PassReport('drop_clears')
    kernels = set(kernels)
    call = re.compile(r'^\s*(?:(?:tail|notail|musttail) )?call (?:[\w ]+ )?void @%s\(\)'
                      r'(?: #\d+)?\s*$' % re.escape(clear))
    for fn in mod.defined():
        at = [i for i, line in enumerate(fn.body) if call.match(line)]
        if not at:
            continue
        called = {name[len(BOUNDARY_PREFIX):] for line in fn.body
                  for name in called_names(line) if name.startswith(BOUNDARY_PREFIX)}
        if not called or not called <= kernels:
            report.count('kept')
            continue
        for i in reversed(at):
            del fn.body[i]
        report.count('dropped', len(at))
    return mod, report


def c_abi_wrappers(specs, name='secretjit.c_abi'):
    """An ``llvmlite.ir.Module`` with one C ABI function per spec."""
    report = PassReport('c_abi_wrappers')
    mod = ir.Module(name)
    for spec in specs:
        _wrapper(mod, spec)
        report.count('wrappers')
        report.count('clears', bool(spec.clear))
    return mod, report
