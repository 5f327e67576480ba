"""Keep linked-in copies of helper functions private to the secret module.

numba links callee libraries in as ``linkonce_odr`` definitions::

    define linkonce_odr void @NRT_decref(ptr %.1) #2 {   ==>   define internal void @NRT_decref(ptr %.1) #2 {

Left ``linkonce_odr``, the JIT may bind a call to another module's copy of
the same symbol: one compiled without the secret passes, or one whose stack
frame the depth analysis of this module never saw.  ``internal`` pins every
call to the copy in this module.
"""

from .report import PassReport
from .textir import set_linkage, text_pass


@text_pass
def internalize_linkonce(mod):
    """Make every ``linkonce_odr`` definition ``internal`` (weak_odr,
    linkonce and available_externally are left alone)."""
    report = PassReport('internalize_linkonce')
    for fn in mod.defined():
        if fn.linkage == 'linkonce_odr':
            fn.header = set_linkage(fn.header, 'internal')
            report.count('internalized')
    return mod, report
