"""Make every definition but the exported ones internal (AOT builds).

An AOT library exports its C ABI wrappers and nothing else: kernels,
linked-in helpers, the runtime and their globals become ``internal``, so the
library's code binds every call to its own, secret copy.  This pass works on
the parsed LLVM module (llvmlite's binding API sets linkage)::

    define linkonce_odr void @NRT_decref(ptr %p)   ==>  define internal void @NRT_decref(ptr %p)
    @global = common global i64 0                  ==>  @global = internal global i64 0
    define i32 @toy_mix(ptr %key, i64 %len, ...)   ==>  unchanged (in ``keep``)

Declarations and ``private`` definitions are left alone.
"""

import llvmlite.binding as ll

from .report import PassReport

_LOCAL = (ll.Linkage.internal, ll.Linkage.private)


def internalize_all_but(module, keep):
    """Give internal linkage to every definition of ``module`` not in ``keep``.

    ``module`` is an llvmlite ``ModuleRef`` (edited in place, returned) or IR
    text (parsed; the result is returned as text).
    """
    as_text = isinstance(module, str)
    mod = ll.parse_assembly(module) if as_text else module
    report = PassReport('internalize_all_but')
    keep = set(keep)
    for kind, values in (('functions', mod.functions),
                         ('globals', mod.global_variables)):
        for v in values:
            if v.is_declaration or v.name in keep or v.linkage in _LOCAL:
                continue
            v.linkage = ll.Linkage.internal
            report.count('internalized_' + kind)
    return (str(mod) if as_text else mod), report
