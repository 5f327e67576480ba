"""The secret engine's MemInfo blocks (secretjit/arena_nrt.py): one slab slot
holding the 48-byte MemInfo and, aligned after it, the array's data.

Slots are aligned to their size class (at least 16 bytes), so data aligned
to numba's 32 bytes pads by at most 16: a 64-byte array takes a 128-byte
slot.  Before issue 15's change the block asked for MemInfo + data + the
whole alignment (144 bytes: a 256-byte slot, twice the wipe on free).
"""
import numpy as np
import pytest

from secretjit import secret_jit, secretmem
from secretjit.arena_nrt import BLOCK_ALIGN, MEMINFO_SIZE

NUMBA_ALIGN = 32        # numba's get_preferred_array_alignment


@secret_jit
def make(n):
    return np.empty(n, np.uint8)


def slot_of(size):
    """The slot size that serves `size` (as tests/test_slab.py: slab.c's classes)."""
    return max(16, 1 << (size - 1).bit_length())


def in_use():
    return secretmem.memory_status()['slab_in_use']


@pytest.mark.parametrize('n', [1, 15, 16, 17, 63, 64, 65, 80, 81, 200, 464, 465, 1984])
def test_array_block_is_the_smallest_slot_that_holds_it(n):
    make(n)                                         # compiled, slots cached
    before = in_use()
    a = make(n)
    taken = in_use() - before
    want = slot_of(MEMINFO_SIZE + n + NUMBA_ALIGN - BLOCK_ALIGN)
    assert taken == want, (n, taken, want)
    # the data is aligned as numba asks and lies inside the slot
    assert a.ctypes.data % NUMBA_ALIGN == 0
    a[:] = 0xA5                                     # every byte writable
    assert int(a.sum()) == 0xA5 * n
    del a
    assert in_use() == before


def test_a_64_byte_array_takes_a_128_byte_slot():
    """The case the padding rule is for (a 16-word ChaCha state); must fail
    with the old request of MemInfo + data + alignment (256)."""
    make(64)
    before = in_use()
    a = make(64)
    assert in_use() - before == 128
    del a


def test_data_of_blocks_of_every_class_is_aligned():
    """Many live arrays at once (slots all over each slab): each data
    pointer 32-byte aligned, each array intact after the others are written."""
    arrays = [make(n) for n in range(1, 2000, 37)]
    for i, a in enumerate(arrays):
        assert a.ctypes.data % NUMBA_ALIGN == 0, a.size
        a[:] = i & 0xFF
    for i, a in enumerate(arrays):
        assert (a == (i & 0xFF)).all(), a.size


# -- the JIT runtime module's call chain ---------------------------------------

def _calls_per_function(mod, tm):
    """{function: number of call instructions} of module ``mod`` compiled by
    ``tm`` (x86-64), read with the stack analysis's own function splitter."""
    from secretjit.pipeline import module_symbols
    from secretjit.stack_bound.core import ARCHES, function_bodies
    funcs, _ = module_symbols(mod)
    bodies = function_bodies(str(tm.emit_assembly(mod)), funcs, ARCHES['x86_64'])
    return {name: sum(m.startswith('call') for m, _ in body)
            for name, body in bodies.items()}


@pytest.mark.skipif(__import__('platform').machine() != 'x86_64',
                    reason='reads x86-64 assembly')
def test_jit_runtime_entries_make_one_call_into_the_c_runtime():
    """pipeline.arena_nrt_module optimises the runtime module, so an NRT entry
    is one call (secretjit_slab_alloc or _free), not a chain of four module
    functions, each with its frame and register zeroing.  The control: the
    same module unoptimised has the chain."""
    import llvmlite.binding as ll
    from secretjit import arena_nrt, passes, pipeline
    from secretjit.target import secret_target
    cg = secret_target.target_context.codegen()
    mod, _ = pipeline.arena_nrt_module(cg._tm, 'x86_64', cg._llvm_module.triple,
                                       cg._data_layout)
    calls = _calls_per_function(mod, cg._tm)
    for name in ('NRT_MemInfo_alloc_aligned', 'NRT_MemInfo_alloc_safe_aligned',
                 'NRT_Allocate', 'NRT_Free', 'secretjit_ea_free'):
        assert calls.get(name, 0) <= 1, (name, calls.get(name))
    raw = ll.parse_assembly(passes.zero_call_used_regs(str(ll.parse_assembly(
        arena_nrt.build_module(cg._llvm_module.triple, cg._data_layout))))[0])
    unoptimised = _calls_per_function(raw, cg._tm)
    assert unoptimised['NRT_MemInfo_alloc_aligned'] == 1
    assert 'secretjit_meminfo_alloc' in unoptimised      # the chain's next link
    assert 'secretjit_meminfo_alloc' not in calls        # inlined and gone
