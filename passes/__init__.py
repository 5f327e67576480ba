"""LLVM module passes that make compiled secret kernels forget.

Each pass takes a parsed module (:class:`passes.textir.Module`; a few work on
llvmlite's own objects) and returns it with a :class:`~passes.report.PassReport`
of what it changed; given IR text instead, it returns text.  The order they
run in, for the JIT and the AOT build, is ``secretjit.pipeline``'s; each
module's docstring shows an input and its output, and ``tests/golden`` holds
their golden cases.
"""

from .boundary import (BOUNDARY_PREFIX, DEPTH_PREFIX, SECRET_CALL,
                       THUNK_PREFIX, boundary_name, depth_symbol,
                       insert_boundaries, thunk_name)
from .atomics import neutral_atomics
from .c_wrapper import WrapperSpec, c_abi_wrappers, drop_clears
from .constant_time import Finding, find_ct_violations
from .debug_info import line_tables_for_dwarf, strip_debug_info
from .empty_asm import empty_inline_asm, restore_scrubs
from .declassify import DECLASSIFY_ASM, lower_declassify
from .epilogue import register_epilogue
from .exact_call import SECRET_CALL_EXACT, exact_depth, exact_kernels, use_exact_calls
from .internalize import internalize_linkonce
from .linkage import internalize_all_but
from .outline_scrub import SCRUB_FN, outline_scrub
from .report import PassReport
from .refcount import generic_refcount
from .stack_depth import placeholders, write_depths
from .stub import stub_functions
from .target_attrs import strip_target_attributes
from .zero_regs import zero_call_used_regs

__all__ = ['BOUNDARY_PREFIX', 'DECLASSIFY_ASM', 'DEPTH_PREFIX', 'Finding',
           'PassReport', 'SECRET_CALL', 'SECRET_CALL_EXACT', 'SCRUB_FN', 'THUNK_PREFIX',
           'WrapperSpec', 'boundary_name', 'c_abi_wrappers', 'depth_symbol', 'drop_clears',
           'exact_depth', 'exact_kernels', 'find_ct_violations', 'generic_refcount', 'insert_boundaries',
           'internalize_all_but', 'internalize_linkonce', 'line_tables_for_dwarf',
           'empty_inline_asm', 'lower_declassify', 'restore_scrubs',
           'neutral_atomics', 'outline_scrub', 'placeholders', 'register_epilogue',
           'strip_debug_info', 'strip_target_attributes', 'stub_functions',
           'thunk_name', 'use_exact_calls', 'write_depths', 'zero_call_used_regs']
