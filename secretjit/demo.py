"""``python -m secretjit demo``: the erasure evidence, in a few seconds.

One kernel derives a session key from a seed and keeps it where real code
does: in registers, in a stack buffer, in a heap temporary.  It is compiled
twice from the same source, with plain ``@njit`` and with ``@secret_jit``,
and the probes of :mod:`secretjit.testing.probes` count the secret words each build
leaves behind once the call has returned.
"""

import ctypes
import statistics
import time

import numpy as np
from numba import njit

from . import secretmem
from .testing import probes
from .testing.heaplog import heap_log
from .decorators import secret_jit
from .intrinsics import wipe

MIX = np.uint64(0x9E3779B97F4A7C15)
WORDS = 256


def session_key_words(seed):
    """What the kernel derives from ``seed``, computed in Python."""
    key = (seed ^ int(MIX)) & 0xFFFFFFFFFFFFFFFF
    words = {key}
    for i in range(WORDS):
        words.add((key * (2 * i + 1) + i) & 0xFFFFFFFFFFFFFFFF)
    return key, words


def derive_session(seed):
    """The demo kernel: the session key lives in registers, stack and heap."""
    key = seed ^ MIX
    probes.fill_registers(key)                     # every register holds it
    stack = probes.stack_scratch(256)              # a 2 KiB buffer in the frame
    heap = np.empty(WORDS, np.uint64)              # a 2 KiB heap temporary
    for i in range(WORDS):
        stack[i] = key * np.uint64(2 * i + 1) + np.uint64(i)
        heap[i] = stack[(i * 7) % WORDS]
    tag = np.uint64(0)
    for i in range(WORDS):
        tag ^= heap[i] >> np.uint64(i % 61)
    return tag, heap.ctypes.data                   # heap dies here


def zero_at_end(seed):
    """Clears its buffer with a plain store: dead code to the optimizer."""
    buf = probes.stack_scratch(256)
    for i in range(WORDS):
        buf[i] = (seed ^ MIX) * np.uint64(2 * i + 1) + np.uint64(i)
    tag = np.uint64(0)
    for i in range(WORDS):
        tag ^= buf[(i * 7) % WORDS]
    buf[:] = 0
    return tag


def wipe_at_end(seed):
    """Clears its buffer with ``secretjit.wipe``: a volatile write."""
    buf = probes.stack_scratch(256)
    for i in range(WORDS):
        buf[i] = (seed ^ MIX) * np.uint64(2 * i + 1) + np.uint64(i)
    tag = np.uint64(0)
    for i in range(WORDS):
        tag ^= buf[(i * 7) % WORDS]
    wipe(buf)
    return tag


def trivial(x):
    return x + 1


def _leaks(dispatcher, seed):
    key, words = session_key_words(seed)
    result, stack = probes.stack_after_call(dispatcher, np.uint64(seed))
    stack_hits = probes.count_words(stack, words)
    secret_stack = secretmem.stack_range()     # where secret_jit's calls run
    if secret_stack:
        lo, hi = secret_stack
        stack_hits += probes.count_words(ctypes.string_at(lo, hi - lo), words)
    spill = probes.registers_after_call(dispatcher, key ^ int(MIX))
    regs = len(probes.canary_registers(spill, canary=key))
    with heap_log().window():       # the freed temporary is not reused meanwhile
        tag, addr = dispatcher(np.uint64(seed))
        heap_hits = probes.count_words(probes.freed_memory(addr, WORDS * 8), words)
    return {'stack': stack_hits, 'registers': regs, 'heap': heap_hits}


def _dead_store(dispatcher, seed):
    _, words = session_key_words(seed)
    _, stack = probes.stack_after_call(dispatcher, np.uint64(seed))
    return probes.count_words(stack, words)


_FLAG_NAMES = (('lo', 'locked in RAM'), ('dd', 'not in core dumps'))
_MLOCK_FORK = ('wf', 'zero in forked children')
# memfd_secret backing: shared pages of no file, which the atfork handler
# replaces with zero pages in a child (VmFlags "sh", name /secretmem)
_MEMFD = 'memfd_secret: unreadable to other processes, zero in forked children'


def _secret_memory(out):
    """Where secret_jit's calls keep their frames and buffers, per the kernel."""
    st = secretmem.memory_status()
    lo, hi = secretmem.stack_range()
    places = [('secret stack', '%d KiB, this thread' % ((hi - lo) >> 10), lo, hi),
              ('secret heap', '%d KiB in use of %d MiB' % (
                  st['arena_in_use'] >> 10, st['arena_limit'] >> 20),
               st['arena_start'], st['arena_end'])]
    out("secret memory while a call runs (VmFlags in /proc/self/smaps):")
    ok = True
    for name, size, start, end in places:
        flags, _, _ = secretmem.mapping_flags(start, end)
        have = [text for flag, text in _FLAG_NAMES if flag in flags]
        if _all_memfd(start, end):
            have.append(_MEMFD)
        elif _MLOCK_FORK[0] in flags:
            have.append(_MLOCK_FORK[1])
        ok = ok and len(have) == len(_FLAG_NAMES) + 1
        out("  %-13s %-28s %s" % (name, size, ', '.join(have) or 'no flags'))
    return ok


def _all_memfd(lo, hi):
    """Every readable mapping of ``[lo, hi)`` is memfd_secret memory."""
    maps = [m for m in secretmem.mappings()
            if m['start'] < hi and m['end'] > lo and m['perms'][0] == 'r']
    return bool(maps) and all(m['name'] == '/secretmem' and 'sh' in m['flags']
                              for m in maps)


def call_overhead(rounds=15, calls=20000):
    """Median ns per call of ``x + 1`` under njit and secret_jit, interleaved."""
    plain, secret = njit(trivial), secret_jit(trivial)
    plain(1)
    secret(1)
    times = {'njit': [], 'secret_jit': []}
    for _ in range(rounds):
        for name, f in (('njit', plain), ('secret_jit', secret)):
            t0 = time.perf_counter_ns()
            for i in range(calls):
                f(i)
            times[name].append((time.perf_counter_ns() - t0) / calls)
    return {k: statistics.median(v) for k, v in times.items()}


def run(seed=0x5EC2E7D00DF00D42, out=print):
    """Run the demo, print the table; return True if the evidence holds."""
    t0 = time.perf_counter()
    out("secretjit demo on %s" % probes.describe_machine())
    out("kernel: derive a session key from a seed, keep it in registers, a "
        "2 KiB stack buffer and a 2 KiB heap temporary")
    out("")
    plain = _leaks(njit(derive_session), seed)
    secret = _leaks(secret_jit(derive_session), seed)
    dead_plain = _dead_store(njit(zero_at_end), seed)
    dead_wiped = _dead_store(njit(wipe_at_end), seed)
    rows = [
        ('stack', 'key words below the caller + secret stack', 'stack'),
        ('registers', 'registers holding the key after return', 'registers'),
        ('heap', 'key words in the freed heap temporary', 'heap'),
    ]
    out("%-11s %-44s %7s %12s" % ('mechanism', 'secret words left behind',
                                  '@njit', '@secret_jit'))
    for label, text, k in rows:
        out("%-11s %-44s %7d %12d" % (label, text, plain[k], secret[k]))
    out("%-11s %-44s %7d %12d" % (
        'dead store', 'buf[:] = 0 (njit) vs wipe(buf) (njit)', dead_plain,
        dead_wiped))
    out("")
    hardened = _secret_memory(out)
    out("")
    ns = call_overhead()
    out("call overhead, trivial kernel x + 1 (median, interleaved): "
        "njit %.0f ns, secret_jit %.0f ns (%.2fx)"
        % (ns['njit'], ns['secret_jit'], ns['secret_jit'] / ns['njit']))
    ok = (all(secret[k] == 0 for k in secret) and all(plain[k] > 0 for k in plain)
          and dead_plain > 0 and dead_wiped == 0 and hardened)
    out("")
    out("evidence: %s (%.1f s)" % (
        "secret_jit left 0 secret words; every njit control leaked" if ok
        else "UNEXPECTED: see the table above", time.perf_counter() - t0))
    return ok
