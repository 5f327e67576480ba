"""LLVM module passes that make compiled secret kernels forget.

Each pass takes a module's textual IR and returns the rewritten text and a
:class:`~passes.report.PassReport` of what it changed.  They run on numba's
final module in this order (see ``secretjit.codegen``):

1. :func:`insert_boundaries` (before -O3): wrappers call kernels through a
   boundary that scrubs the stack and zeroes all registers.
2. :func:`internalize_linkonce` (after -O3): linked-in helper copies become
   private to the module.
3. :func:`zero_call_used_regs` (after -O3): every function of the call tree
   zeroes the registers it used; boundaries zero all of them.
4. :func:`write_depths` (after the stack bound is computed from the machine
   code): each boundary gets its scrub depth.
"""

from .boundary import (BOUNDARY_PREFIX, DEPTH_PREFIX, SECRET_CALL,
                       THUNK_PREFIX, boundary_name, depth_symbol,
                       insert_boundaries, thunk_name)
from .constant_time import (DECLASSIFY_ASM, Finding, find_ct_violations,
                            lower_declassify, strip_debug_info)
from .internalize import internalize_linkonce
from .report import PassReport
from .stack_depth import placeholders, write_depths
from .zero_regs import zero_call_used_regs

__all__ = ['BOUNDARY_PREFIX', 'DECLASSIFY_ASM', 'DEPTH_PREFIX', 'Finding',
           'PassReport', 'find_ct_violations', 'lower_declassify',
           'strip_debug_info', 'SECRET_CALL',
           'THUNK_PREFIX', 'boundary_name', 'depth_symbol', 'insert_boundaries',
           'internalize_linkonce', 'placeholders', 'thunk_name', 'write_depths',
           'zero_call_used_regs']
