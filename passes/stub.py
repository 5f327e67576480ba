"""Replace function bodies by ``unreachable`` in a copy compiled for analysis.

The stack analysis needs the machine code of the secret call trees only.
numba's wrappers (argument unboxing, result boxing: the bulk of a small
kernel's module) run outside the secret call, so the pipeline compiles them
as stubs in the copy it analyses::

    define ptr @cpython.K(ptr %py_closure, ptr %py_args, ptr %py_kws) {
    entry:
      <unbox, call the boundary, box>       ==>    unreachable
    }

The module that is loaded or emitted keeps the real bodies.  Names that are
not defined in the module are ignored.
"""

from .report import PassReport
from .textir import text_pass


@text_pass
def stub_functions(mod, names):
    """Give each defined function in ``names`` the body ``unreachable``."""
    report = PassReport('stub_functions')
    for name in names:
        fn = mod.functions.get(name)
        if fn is not None:
            fn.body = ['  unreachable']
            report.count('stubbed')
    return mod, report
