"""The three detectors of ``assert_erased``, and the control's scratch words.

- :func:`_stack_run`: the poisoned 64 KiB below the caller, copied right
  after the CPython wrapper returned, plus the calling thread's secret stack;
- :func:`_register_run` (x86-64): every call-clobbered register and the
  XSAVE area, spilled the instant the wrapper returned;
- :func:`_heap_run`: every heap block the call allocated and freed, held
  back from reuse by :mod:`~secretjit.testing.heaplog` and read before it
  is released, plus the secret arena, scanned before and after the call.
"""

import ctypes

import numpy as np

from .. import secretmem
from ..codegen import host_arch
from . import memscan, probes
from .heaplog import heap_log
from .report import Finding
from .words import _buffers, _fresh, _perturbed, _public_words


def _wrapper(dispatcher, args):
    """Address of the CPython wrapper of ``dispatcher``'s overload for ``args``."""
    cres = probes._overload(dispatcher, args)
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_cpython_wrapper_name)


def _unboxed(res):
    """The object a probed wrapper call returned (a new reference, as an address)."""
    if not res:
        raise RuntimeError("probed call returned NULL without an exception")
    obj = ctypes.cast(res, ctypes.py_object).value
    ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(res))
    return obj


def _stack_run(dispatcher, args, wanted, mask, window=probes.STACK_WINDOW):
    """Stack detector: poisoned window below the caller plus the secret stack."""
    wrapper = _wrapper(dispatcher, args)
    dump = (ctypes.c_uint64 * (window // 8))()
    try:
        result = _unboxed(probes._probes().stack(
            wrapper, tuple(args), ctypes.addressof(dump), window, probes.POISON))
    except Exception as exc:        # the kernel raised: the snapshot still counts
        result = exc
    words = np.frombuffer(dump, dtype=np.uint64)
    mask.inplace(words)              # from here on only masked words exist
    hits = np.nonzero(np.isin(words, wanted))[0]
    where = ['sp-%d' % ((len(words) - i) * 8) for i in hits]
    count = len(hits)
    rng = secretmem.stack_range()
    if rng:
        lo, hi = rng
        sec = mask(np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64))
        shits = np.nonzero(np.isin(sec, wanted))[0]
        where += ['secret stack top-%d' % (hi - lo - 8 * i) for i in shits]
        count += len(shits)
    return result, Finding('stack', count, where), words.copy()


def _register_run(dispatcher, args, wanted, mask):
    if host_arch() != 'x86_64':
        return None, Finding('registers', 0, available=False,
                             note='register detector for any arguments: x86-64 only')
    result, spill = probes.registers_after_python_call(dispatcher, *args,
                                                       mask=mask.xor)
    gprs = mask.after_xor(list(spill['gpr'].values()))
    where = [n for n, v in zip(spill['gpr'], gprs) if np.isin(v, wanted)]
    xs = mask.after_xor(np.frombuffer(spill['xsave'], dtype=np.uint64))
    where += [probes._xsave_slot(int(i) * 8)
              for i in np.nonzero(np.isin(xs, wanted))[0]]
    return result, Finding('registers', len(where), where)


def _leftovers(control, args, mask):
    """Masked words the control leaves in its stack window and registers."""
    fresh = _fresh(args)
    result, _, window = _stack_run(control, fresh, np.empty(0, np.uint64), mask)
    parts = [window]
    if host_arch() == 'x86_64':
        _, spill = probes.registers_after_python_call(control, *_fresh(args),
                                                      mask=mask.xor)
        parts.append(mask.after_xor(list(spill['gpr'].values())))
        parts.append(mask.after_xor(np.frombuffer(spill['xsave'], np.uint64)))
    return np.unique(np.concatenate(parts)), _public_words([result] + fresh, mask)


def _scratch_words(control, args, inputs, mask):
    """Scratch words: what the control leaves that changes with the array arguments.

    The control runs on ``args`` and on a copy whose array bytes are XORed
    with random nonzero bytes (and integers of 2**32 or more with random high
    bits: smaller integers may be sizes or indexes); a word left by three runs
    on ``args`` and by neither of two perturbed ones depends on the arguments (stack
    canaries, pointers and constants do not) and is no leftover of earlier
    work that one run happened to carry.  Words of what the caller gets back (arrays after the call, the
    result) are public and dropped unless they are also input words.
    """
    first, public = _leftovers(control, args, mask)
    keep = np.ones(len(first), bool)
    for _ in range(2):
        again, _ = _leftovers(control, args, mask)
        other, _ = _leftovers(control, _perturbed(args), mask)
        keep &= np.isin(first, again) & ~np.isin(first, other)
    cand = first[keep]
    return cand[~np.isin(cand, public) | np.isin(cand, inputs)]


def _heap_run(dispatcher, args, wanted, mask):
    """Heap detector: secret words in the blocks the call freed, or new in the arena.

    The call runs in a :class:`~secretjit.testing.heaplog.HeapLog` window,
    so every block numba's runtime (or CPython's raw allocator) gave it and
    took back is still there, unreused, when it is read; the arena is
    scanned in place before and after, and a word counts there where its
    address did not hold it before.  The arrays passed in and the result
    are the caller's and left out.
    """
    fresh = _fresh(args)
    wrapper = _wrapper(dispatcher, fresh)
    skip = _buffers(fresh)
    if secretmem.stack_range():
        skip.append(secretmem.stack_range())
    before = memscan.scan_arena(wanted, mask, skip)
    log = heap_log()
    try:
        result = _unboxed(log.call(wrapper, tuple(fresh)))
    except Exception as exc:        # the kernel raised: its blocks still count
        result = exc
    try:
        freed = log.freed()
        rows = memscan.scan_regions([(a, a + n) for a, n in freed], wanted, mask)
        note = ('more than %d blocks in one call: the rest were not held back'
                % log.count()) if log.overflowed else ''
    finally:
        log.release()
    where = ['freed block 0x%x+%d' % next((a, int(x) - a) for a, n in freed
                                          if a <= int(x) < a + n)
             for x, _ in rows]
    after = memscan.scan_arena(wanted, mask, skip + _buffers([result]))
    where += ['secret arena 0x%x' % a for a, _ in sorted(after - before)]
    return result, Finding('heap', len(where), where, note=note)
