"""``assert_erased``: check that a secret kernel leaves nothing behind, with a control.

The kernel runs once under plain numba (the control: its Python source with
``njit``, secret callees made plain and ``wipe`` a no-op) and once under
``secret_jit``.  After each call three detectors look for the secret words:

- ``stack``: the 64 KiB below the caller's stack pointer, poisoned before
  the call and copied right after the CPython wrapper returned, plus the
  calling thread's secret stack;
- ``registers`` (x86-64): every call-clobbered register (GPRs, XSAVE area:
  x87, SSE, AVX, AVX-512, masks) spilled the instant the wrapper returned;
- ``heap``: the whole writable memory of the process (heap, anonymous
  mappings, the secret arena; stacks and the arguments' own buffers left
  out), scanned before and after the call: a secret word counts where its
  address did not hold it before the call (the scans run in forked children,
  which see a snapshot of the heap; the arena is scanned in-process).  A
  secret run's heap finding is re-measured up to three times and the
  smallest count kept.  This is the only detector that sees
  freed temporaries of a kernel whose addresses a test cannot know.

Secret words (8-byte values) default to every 8-byte window of every array
argument (all byte offsets; integer arguments themselves are the caller's:
numba's wrapper unboxes them outside the protected call), plus the *scratch
words*: what the control leaves in its stack window and its registers that
changes when the array arguments change (the control runs three times on them and twice on
copies XORed with random bytes, integers of 2**32 or more too: stack canaries, pointers and constants stay
the same and drop out), minus what the caller gets back (the arrays after
the call, the result).  Only high-entropy words count: not within 2**32 of 0
or of 2**64, not a pointer into a mapping, at least four distinct bytes (so
``np.zeros`` or ``np.full(32, 7)`` carry no detectable secret).  A detector
counts only when the control leaves at least one secret word under it; a
detector whose control saw nothing is reported as blind, and when every
requested detector is blind the assertion fails with "the detector cannot
see this kernel's secret".  All words are held masked (``(w ^ m) * k`` with
random ``m`` and odd ``k``) and memory is compared in the same form, so the
checker leaves no plain copy for its own scans to find (the entropy filter's
one plain temporary is zeroed before it is freed).
"""

import ctypes
import os
import secrets as _secrets

import numpy as np
from numba import typeof

from .. import SecretDispatcher, secretmem
from ..codegen import host_arch
from . import probes
from .control import plain_kernel

MECHANISMS = ('stack', 'registers', 'heap')
DESCRIPTIONS = {
    'stack': 'stack below the caller + secret stack',
    'registers': 'call-clobbered registers after return',
    'heap': 'whole-process scan (heap, arena, mappings)',
}
_CHUNK = 1 << 20
_scan_buffer = None


class Finding:
    """What one detector found after one run: a count and where."""

    def __init__(self, mechanism, count, where=(), available=True, note=''):
        self.mechanism = mechanism
        self.count = count
        self.where = list(where)
        self.available = available
        self.note = note

    def __repr__(self):
        return 'Finding(%s, %d, %s)' % (self.mechanism, self.count, self.where[:4])


class Report:
    """Both runs of one kernel: ``control`` and ``secret`` findings per mechanism."""

    def __init__(self, name, mechanisms, nwords):
        self.name = name
        self.mechanisms = mechanisms
        self.nwords = nwords
        self.control = {}
        self.secret = {}

    def visible(self):
        """Mechanisms whose control found at least one secret word."""
        return [m for m in self.mechanisms
                if self.control[m].available and self.control[m].count > 0]

    def leaks(self):
        """Mechanisms where the secret run left secret words."""
        return [m for m in self.visible() if self.secret[m].count > 0]

    @property
    def passed(self):
        return bool(self.visible()) and not self.leaks()

    def table(self):
        """The report as a table, one line per mechanism."""
        lines = ['%-10s %-44s %7s %12s' % ('mechanism', 'secret words left behind',
                                         '@njit', '@secret_jit')]
        for m in self.mechanisms:
            c, s = self.control[m], self.secret[m]
            if not c.available:
                lines.append('%-10s %-44s %7s %12s  (%s)' % (
                    m, DESCRIPTIONS[m], '-', '-', c.note))
                continue
            flag = '' if c.count else '  (control saw nothing: not counted)'
            lines.append('%-10s %-44s %7d %12d%s' % (m, DESCRIPTIONS[m], c.count,
                                                     s.count, flag))
        return '\n'.join(lines)

    def explain(self):
        """The failure message: what was found, where, or why nothing can be seen."""
        head = '%s: %d secret words sought' % (self.name, self.nwords)
        if not self.visible():
            return ('%s\n%s\nthe detector cannot see this kernel\'s secret: the '
                    'plain-numba control left none of the secret words under any '
                    'requested detector (%s); choose arguments that make it, or '
                    'pass secret_words=' % (head, self.table(), ', '.join(self.mechanisms)))
        out = ['%s\n%s' % (head, self.table())]
        for m in self.leaks():
            f = self.secret[m]
            out.append('secret_jit left %d secret words under %s: %s%s' % (
                f.count, m, ', '.join(f.where[:8]),
                ' ...' if len(f.where) > 8 else ''))
        return '\n'.join(out)


class _Mask:
    """The one-way-ish form secret words are kept and compared in: ``(w ^ m) * k``.

    Scanning memory applies the same map to every memory word; a masked copy
    the checker holds maps to something else again, never to the plain word,
    so the scan itself leaves no plain copy (an XOR mask alone would).
    """

    def __init__(self):
        self.m = np.uint64(_secrets.randbits(64))
        self.xor = int(self.m)
        self.k = np.uint64(_secrets.randbits(64) | 1)
        self.kinv = np.uint64(pow(int(self.k), -1, 1 << 64))

    def __call__(self, words):
        return (np.asarray(words, np.uint64) ^ self.m) * self.k

    def inplace(self, words):
        words ^= self.m
        words *= self.k
        return words

    def after_xor(self, words):
        """Finish masking words a probe already XORed with ``self.xor``."""
        return np.asarray(words, np.uint64) * self.k

    def plain(self, masked):
        return (masked * self.kinv) ^ self.m


def _mask_words(words, mask):
    return np.unique(mask(np.array([int(w) & 0xFFFFFFFFFFFFFFFF for w in words],
                                   dtype=np.uint64)))


def _windows(arr, mask):
    """Every 8-byte window of a contiguous array's bytes, masked."""
    raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
    if raw.size < 8:
        return np.empty(0, np.uint64)
    win = np.ndarray(shape=(raw.size - 7,), dtype=np.uint64, buffer=raw,
                     strides=(1,))
    return mask(win)


def _input_words(args, mask):
    """Every 8-byte window of the array arguments, masked.

    Integer arguments are not sought themselves: numba's CPython wrapper
    unboxes them into its own frame, outside the protected call (the
    contract's first limitation); what the kernel derives from them is.
    """
    parts = [np.empty(0, np.uint64)]
    for a in args:
        if isinstance(a, np.ndarray) and a.size:
            parts.append(_windows(a, mask))
    return np.unique(np.concatenate(parts))


def _maps():
    with open('/proc/self/maps') as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split('-'))
            yield lo, hi, parts[1], parts[5] if len(parts) > 5 else ''


def _high_entropy(masked, mask):
    """Which masked words look like data: not small, not pointers, varied bytes."""
    plain = mask.plain(masked)
    keep = ((plain >> np.uint64(32)) != 0) & ((~plain >> np.uint64(32)) != 0)
    keep &= plain != np.uint64(probes.POISON)
    b = np.sort(plain.view(np.uint8).reshape(-1, 8), axis=1)
    keep &= (np.diff(b, axis=1) != 0).sum(axis=1) >= 3
    for lo, hi, _, _ in _maps():
        keep &= ~((plain >= np.uint64(lo)) & (plain < np.uint64(hi)))
    plain.fill(0)
    b.fill(0)
    return keep


def _buffers(objs):
    """(lo, hi) address ranges of the arrays among ``objs``."""
    out = []
    for a in objs:
        if isinstance(a, np.ndarray) and a.size:
            lo = a.ctypes.data
            out.append((lo, lo + a.nbytes))
        elif isinstance(a, tuple):
            out.extend(_buffers(a))
    return out


def _stack_run(dispatcher, args, wanted, mask, window=probes.STACK_WINDOW):
    """Stack detector: poisoned window below the caller plus the secret stack."""
    cres = probes._overload(dispatcher, args)
    wrapper = cres.library.get_pointer_to_function(
        cres.fndesc.llvm_cpython_wrapper_name)
    dump = (ctypes.c_uint64 * (window // 8))()
    try:
        res = probes._probes().stack(wrapper, tuple(args), ctypes.addressof(dump),
                                     window, probes.POISON)
        result = ctypes.cast(res, ctypes.py_object).value
        ctypes.pythonapi.Py_DecRef(ctypes.c_void_p(res))
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


def _hits(words, wanted):
    """Indexes of ``words`` that are in sorted ``wanted``, without copying ``words``.

    (``np.isin`` sorts a copy of its input: scanning memory with it leaves
    sorted copies of that memory in the heap for the next scan to find.)
    """
    if not len(wanted):
        return np.empty(0, np.intp)
    pos = np.searchsorted(wanted, words)
    np.minimum(pos, len(wanted) - 1, out=pos)
    return np.nonzero(wanted[pos] == words)[0]


def _scan_regions(regions, wanted, mask, skip, arena):
    """(address, masked word) of every ``wanted`` word in ``regions``."""
    global _scan_buffer
    if _scan_buffer is None:
        _scan_buffer = np.zeros(_CHUNK // 8, np.uint64)
    buf = _scan_buffer
    skip = list(skip) + [(buf.ctypes.data, buf.ctypes.data + buf.nbytes)]
    mv = memoryview(buf).cast('B')
    out = []
    fd = os.open('/proc/self/mem', os.O_RDONLY)
    try:
        for lo, hi in regions:
            for start in range(lo, hi, _CHUNK):
                end = min(hi, start + _CHUNK)
                try:
                    n = os.preadv(fd, [mv[:end - start]], start)
                except OSError:
                    if not arena[0] <= start < arena[1]:
                        continue
                    # memfd_secret backing: /proc/self/mem reads the arena
                    # as EIO; this process reads it directly (rw pages)
                    n = end - start
                    ctypes.memmove(buf.ctypes.data, start, n)
                words = buf[:n // 8]
                mask.inplace(words)
                idx = _hits(words, wanted)
                addrs = (start + 8 * idx).astype(np.uint64)
                keep = np.ones(len(idx), bool)
                for a, b in skip:
                    keep &= ~((addrs >= np.uint64(a)) & (addrs < np.uint64(b)))
                out.append(np.stack([addrs[keep], words[idx[keep]]], axis=1))
    finally:
        os.close(fd)
        buf.fill(0)
    return np.concatenate(out) if out else np.empty((0, 2), np.uint64)


def _scan(wanted, mask, exclude):
    """``{masked word: [(address, region), ...]}`` for the process's writable memory.

    Heap, anonymous and file-less mappings are scanned by a forked child, so
    the scan's own allocations cannot overwrite the freed blocks it looks
    for (the child reads a copy-on-write snapshot taken at the fork); the
    secret arena, which a forked child sees as zeros (``MADV_WIPEONFORK``),
    is scanned here, where no Python allocation ever lands.
    """
    st = secretmem.memory_status()
    arena = (st['arena_start'], st['arena_end'])
    skip = list(exclude)
    srange = secretmem.stack_range()
    if srange:
        skip.append(srange)
    _scan_regions([], wanted, mask, skip, arena)        # allocate the buffer now
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:                                         # the snapshot
        code = 0
        try:
            regions = [(lo, hi) for lo, hi, perms, name in _maps()
                       if perms.startswith('rw') and name in ('', '[heap]')
                       and not (arena[0] <= lo < arena[1])]
            found = _scan_regions(regions, wanted, mask, skip, arena)
            data = found.astype(np.uint64).tobytes()
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view):]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    while True:
        chunk = os.read(rfd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(rfd)
    _, status = os.waitpid(pid, 0)
    if status:
        raise RuntimeError("the memory-scan child failed (status %d)" % status)
    found = np.frombuffer(b''.join(chunks), np.uint64).reshape(-1, 2)
    regions = [(lo, hi) for lo, hi, perms, name in _maps()
               if perms.startswith('rw') and arena[0] <= lo < arena[1]]
    in_arena = _scan_regions(regions, wanted, mask, skip, arena)
    names = {}
    for lo, hi, _, name in _maps():
        names[(lo, hi)] = name or 'anonymous mapping'
    counts = {}
    for addr, word in found:
        region = next((n for (lo, hi), n in names.items() if lo <= addr < hi), '?')
        counts.setdefault(int(word), []).append((int(addr), region))
    for addr, word in in_arena:
        counts.setdefault(int(word), []).append((int(addr), 'secret arena'))
    return counts


def _heap_run(run, wanted, mask, exclude):
    """Heap detector: secret words at addresses that did not hold them before ``run()``."""
    before = _scan(wanted, mask, exclude)
    result = run()
    after = _scan(wanted, mask, exclude + _buffers([result]))
    where = []
    for w, places in after.items():
        old = set(a for a, _ in before.get(w, ()))
        where += ['%s 0x%x' % (r, a) for a, r in places if a not in old]
    return result, Finding('heap', len(where), sorted(where))


def _call(dispatcher, args):
    try:
        return dispatcher(*args)
    except Exception as exc:
        return exc


def _public_words(objs, mask):
    """Masked words of what the caller gets back: arrays, integers, tuples of them."""
    parts = [np.empty(0, np.uint64)]
    for a in objs:
        if isinstance(a, np.ndarray) and a.size:
            parts.append(_windows(a, mask))
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool):
            parts.append(mask(np.array([int(a) & 0xFFFFFFFFFFFFFFFF], np.uint64)))
        elif isinstance(a, tuple):
            parts.append(_public_words(a, mask))
    return np.unique(np.concatenate(parts))


def _perturbed(args):
    out = []
    for a in args:
        if isinstance(a, np.ndarray) and a.size:
            b = a.copy()
            flat = b.view(np.uint8).reshape(-1)
            flat ^= np.frombuffer(_secrets.token_bytes(flat.size), np.uint8) | 1
            out.append(b)
        elif isinstance(a, (int, np.integer)) and not isinstance(a, bool) \
                and abs(int(a)) >= 1 << 32:          # a key, not a size or index
            flip = _secrets.randbits(31) << 32 | 1 << 63
            out.append(type(a)(int(a) ^ flip) if isinstance(a, np.integer)
                       else int(a) ^ flip)
        else:
            out.append(a)
    return out


def _leftovers(control, args, mask):
    """Masked words the control leaves in its stack window and registers."""
    fresh = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    result, _, window = _stack_run(control, fresh, np.empty(0, np.uint64), mask)
    parts = [window]
    if host_arch() == 'x86_64':
        regs = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        _, spill = probes.registers_after_python_call(control, *regs,
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


def _fresh(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _run_detectors(dispatcher, args, wanted, mask, mechanisms, confirm=False):
    """One run: the heap detector first, then the stack and register detectors.

    Before the heap scan the kernel runs once on perturbed arguments, so the
    freed blocks earlier calls with ``args`` left hold other words and the
    measured call's copies show up as new ones.  With ``confirm`` a heap
    finding is measured up to three times and the smallest count kept: a
    leak of the kernel repeats on every call, a coincidence in the
    interpreter's own heap traffic does not.  Without ``confirm`` (the
    control) an empty heap finding is measured up to three times and the
    largest count kept: whether glibc leaves a freed block in place depends
    on the process's heap history, and one reuse must not make the detector
    look blind.
    """
    found = {}
    if 'heap' in mechanisms:
        for _ in range(3):
            _call(dispatcher, _perturbed(args))
            fresh = _fresh(args)
            _, f = _heap_run(lambda: _call(dispatcher, fresh), wanted,
                             mask, _buffers(fresh) + _buffers(args))
            if 'heap' not in found or (f.count < found['heap'].count if confirm
                                       else f.count > found['heap'].count):
                found['heap'] = f
            if bool(f.count) != confirm:    # secret: clean; control: seen
                break
    if 'stack' in mechanisms:
        _, found['stack'], _ = _stack_run(dispatcher, _fresh(args), wanted, mask)
    if 'registers' in mechanisms:
        _, found['registers'] = _register_run(dispatcher, _fresh(args), wanted, mask)
    return found


def _secret_run(kernel):
    """The dispatcher the secret run calls: ``kernel`` (tests replace this)."""
    return kernel


def check_erased(kernel, *args, mechanisms=None, secret_words=None, name=None):
    """Run the control and the secret kernel under the detectors; return a :class:`Report`.

    Same arguments as :func:`assert_erased`, which raises on a failing report.
    """
    if not isinstance(kernel, SecretDispatcher):
        raise TypeError("assert_erased needs a @secret_jit kernel, got %r; "
                        "decorate it with secretjit.secret_jit" % (kernel,))
    if mechanisms is None:
        mechanisms = MECHANISMS
    elif isinstance(mechanisms, str):
        mechanisms = (mechanisms,)
    mechanisms = tuple(mechanisms)
    unknown = [m for m in mechanisms if m not in MECHANISMS]
    if unknown or not mechanisms:
        raise ValueError("unknown mechanism(s) %s: choose from %s"
                         % (', '.join(map(repr, unknown)) or '(none given)',
                            ', '.join(MECHANISMS)))
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
            raise ValueError("argument %d is not C-contiguous: the detectors read "
                             "its bytes; pass np.ascontiguousarray(...)" % i)
    mask = _Mask()
    sig = tuple(typeof(a) for a in args)
    control = plain_kernel(kernel, keep_wipe=False)
    control.compile(sig)
    kernel.compile(sig)
    probes._probes()
    if secret_words is None:
        wanted = _input_words(args, mask)
    else:
        parts = [np.empty(0, np.uint64)]
        for w in secret_words:
            if isinstance(w, (bytes, bytearray, memoryview, np.ndarray)):
                parts.append(_windows(np.frombuffer(bytes(w), np.uint8)
                                      if not isinstance(w, np.ndarray) else w, mask))
            else:
                parts.append(_mask_words([w], mask))
        wanted = np.unique(np.concatenate(parts))
    report = Report(name or getattr(kernel.py_func, '__qualname__', str(kernel)),
                    mechanisms, 0)
    if secret_words is None:
        wanted = np.unique(np.concatenate([wanted, _scratch_words(
            control, args, wanted, mask)]))
    wanted = wanted[_high_entropy(wanted, mask)]
    report.nwords = len(wanted)
    report.control = _run_detectors(control, args, wanted, mask, mechanisms)
    report.secret = _run_detectors(_secret_run(kernel), args, wanted, mask,
                                   mechanisms, confirm=True)
    return report


def assert_erased(kernel, *args, mechanisms=None, secret_words=None):
    """Assert that ``kernel(*args)`` leaves no secret word behind, with a control.

    Parameters
    ----------
    kernel : a ``@secret_jit`` dispatcher
        Its ``py_func`` compiled with plain ``njit`` (``wipe`` a no-op) is
        the control.
    *args
        Arguments for one call; arrays must be C-contiguous.  Each run gets
        fresh copies of the arrays.
    mechanisms : iterable of str, optional
        Any of ``'stack'``, ``'registers'``, ``'heap'`` (default: all).
    secret_words : iterable, optional
        The 8-byte words to look for: ints, or bytes/arrays (every 8-byte
        window).  Default: the arguments' words and the control's scratch
        words (module docstring).

    Raises
    ------
    AssertionError
        When the secret run left secret words (the message names the
        mechanism, the count and where), or when no requested detector's
        control found anything (the detector cannot see the secret).
    """
    report = check_erased(kernel, *args, mechanisms=mechanisms,
                          secret_words=secret_words)
    if not report.passed:
        raise AssertionError(report.explain())
    return report
