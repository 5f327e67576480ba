"""Keep linked-in copies of helper functions private to the secret module.

numba links callee libraries in as ``linkonce_odr`` definitions::

    define linkonce_odr void @NRT_decref(ptr %.1) #2 {   ==>   define internal void @NRT_decref(ptr %.1) #2 {

Left ``linkonce_odr``, the JIT may bind a call to another module's copy of
the same symbol: one compiled without the secret passes, or one whose stack
frame the depth analysis of this module never saw.  ``internal`` pins every
call to the copy in this module.
"""

from .report import PassReport
from .textir import Module, set_linkage


def internalize_linkonce(ir_text):
    report = PassReport('internalize_linkonce')
    mod = Module.parse(ir_text)
    for fn in mod.defined():
        if fn.linkage == 'linkonce_odr':
            fn.header = set_linkage(fn.header, 'internal')
            report.count('internalized')
    return mod.text(), report
