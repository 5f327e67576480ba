"""Core dumps of a live process and a fast search of them for many keys.

Used by tests/test_core_dump.py.  gdb's ``gcore`` writes the dump; gdb leaves
out mappings marked MADV_DONTDUMP (VmFlags ``dd``) the way the kernel does:
checked by tests/test_core_dump.py::test_gcore_leaves_out_dontdump_mappings.

The search: a key copy in memory is >= 32 contiguous bytes at any alignment,
so it covers at least three 8-byte-aligned words, each of which is one of the
25 eight-byte substrings of the key.  Memory is read as aligned uint64 words;
a hashed bitmap of all substrings of all keys drops almost every word in a
few vectorised numpy passes, and the few candidates are looked up exactly.
Register notes are small and scanned at all eight byte offsets (a 16-byte
xmm half of a key holds an aligned word too, but a GPR holds exactly one
word, at whatever offset of the key it was loaded from).
"""

import mmap
import os
import platform
import struct
import subprocess
import tempfile

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from _core_child import INFO_PREFIX  # noqa: E402

_MIX = np.uint64(0x9E3779B97F4A7C15)
_SALT = np.uint64(0x243F6A8885A308D3)
_BITS = 26
_SHIFT = np.uint64(64 - _BITS)

NOTE_NAMES = {1: 'NT_PRSTATUS', 2: 'NT_FPREGSET', 3: 'NT_PRPSINFO', 6: 'NT_AUXV',
              0x202: 'NT_X86_XSTATE', 0x405: 'NT_ARM_SVE',
              0x53494749: 'NT_SIGINFO', 0x46494C45: 'NT_FILE'}
REGISTER_NOTES = (1, 2, 0x202, 0x405)


def derive(seed, tid, ctr):
    """key(t, c) of tests/_core_child.py, computed with cryptography."""
    info = INFO_PREFIX + struct.pack('<II', tid, ctr)
    return HKDF(hashes.SHA256(), 32, None, info).derive(seed)


class KeyIndex:
    """Every 8-byte substring of every key, hashed into a bitmap + exact table."""

    def __init__(self, keys):
        self.keys = list(keys)
        owner = {}
        for k, key in enumerate(self.keys):
            for off in range(len(key) - 7):
                owner.setdefault(int.from_bytes(key[off:off + 8], 'little'), (k, off))
        self.owner = owner
        self.sorted = np.array(sorted(owner), dtype=np.uint64)
        self.bitmap = np.zeros(1 << _BITS, dtype=np.bool_)
        self.bitmap[self._hash(self.sorted)] = True

    @staticmethod
    def _hash(words):
        with np.errstate(over='ignore'):
            return (((words ^ _SALT) * _MIX) >> _SHIFT).astype(np.intp)

    def hits(self, words, chunk=1 << 20):
        """Indices into ``words`` (uint64 array) of words that are key substrings."""
        out = []
        for lo in range(0, words.size, chunk):
            w = words[lo:lo + chunk]
            if not w.any():                 # untouched pages: most of a core
                continue
            cand = np.flatnonzero(self.bitmap[self._hash(w)])
            if cand.size:
                cw = w[cand]
                pos = np.searchsorted(self.sorted, cw)
                pos[pos >= self.sorted.size] = 0
                out.append(lo + cand[self.sorted[pos] == cw])
        return np.concatenate(out) if out else np.empty(0, np.intp)

    def keys_of(self, words):
        return {self.owner[int(w)][0] for w in words}


def gcore(pid, directory):
    """Dump ``pid`` with gdb's ``gcore`` command; returns the core's path.

    gdb runs as the ``gcore`` script runs it, but without loading the
    shared libraries' symbols (twice as fast here; the core is the same).
    """
    path = os.path.join(directory, 'core.%d' % pid)
    r = subprocess.run(['gdb', '-nx', '-batch', '-iex', 'set auto-solib-add off',
                        '-iex', 'set debuginfod enabled off', '-p', str(pid),
                        '-ex', 'gcore ' + path], capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0 or not os.path.exists(path):
        raise RuntimeError('gdb gcore failed (%d): %s %s' % (r.returncode, r.stdout, r.stderr))
    return path


def _notes(data):
    """(type, name, desc bytes) of each note in a PT_NOTE segment."""
    i = 0
    while i + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from('<III', data, i)
        i += 12
        name = data[i:i + namesz].rstrip(b'\0')
        i += (namesz + 3) & ~3
        desc = data[i:i + descsz]
        i += (descsz + 3) & ~3
        yield ntype, name, desc


# NT_PRSTATUS: registers start at offset 112 of struct elf_prstatus, as
# user_regs_struct (x86-64: rip is word 16, rsp word 19) or user_pt_regs
# (AArch64: x0-x30, sp, pc, pstate).
_PC_SP = {'aarch64': (32, 31)}.get(platform.machine(), (16, 19))


def _prstatus(desc):
    pid, = struct.unpack_from('<i', desc, 32)
    regs = struct.unpack_from('<%dQ' % (max(_PC_SP) + 1), desc, 112)
    return {'tid': pid, 'rip': regs[_PC_SP[0]], 'rsp': regs[_PC_SP[1]]}


def scan_core(path, index, maps=None):
    """Search a core file for the keys of ``index``.

    Returns a dict: ``memory`` (key index -> list of addresses, one per
    8-byte-aligned word that is a key substring, in PT_LOAD segments),
    ``registers`` (one entry per thread: {note name: set of key indices}),
    ``dumped`` (list of (start, end) of segments with file data), ``bytes``,
    ``threads`` (tid, rip, rsp of each thread, from NT_PRSTATUS: x86-64
    ``struct elf_prstatus``, registers at offset 112 in ``user_regs_struct``
    order).
    """
    from elftools.elf.elffile import ELFFile
    memory, threads, dumped, thread_regs = {}, [], [], []
    total = 0
    with open(path, 'rb') as f:
        elf = ELFFile(f)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            for seg in elf.iter_segments():
                if seg['p_type'] == 'PT_LOAD' and seg['p_filesz'] >= 8:
                    start, n = seg['p_vaddr'], seg['p_filesz']
                    dumped.append((start, start + n))
                    total += n
                    words = np.frombuffer(mm, dtype=np.uint64, count=n // 8,
                                          offset=seg['p_offset'])
                    for i in index.hits(words):
                        w = int(words[i])
                        memory.setdefault(index.owner[w][0], []).append(start + 8 * int(i))
                    del words
                elif seg['p_type'] == 'PT_NOTE':
                    data = mm[seg['p_offset']:seg['p_offset'] + seg['p_filesz']]
                    for ntype, name, desc in _notes(data):
                        if ntype == 1:
                            threads.append({})
                            thread_regs.append(_prstatus(desc))
                        if ntype not in REGISTER_NOTES or not threads:
                            continue
                        found = set()
                        for off in range(8):
                            n = (len(desc) - off) // 8
                            w = np.frombuffer(desc, dtype=np.uint64, count=n, offset=off)
                            found |= index.keys_of(w[index.hits(w)])
                        if found:
                            threads[-1].setdefault(NOTE_NAMES[ntype], set()).update(found)
        finally:
            mm.close()
    return {'memory': memory, 'registers': threads, 'dumped': dumped, 'bytes': total,
            'threads': thread_regs}


def read_maps(pid):
    """[(start, end, perms, name)] of /proc/pid/maps."""
    out = []
    with open('/proc/%d/maps' % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            s, e = (int(x, 16) for x in parts[0].split('-'))
            out.append((s, e, parts[1], parts[5].strip() if len(parts) > 5 else ''))
    return out


def where(addr, maps, named=()):
    """Name of the mapping holding ``addr`` ((start, end, label) in ``named`` first)."""
    for s, e, label in named:
        if s <= addr < e:
            return label
    for s, e, perms, name in maps:
        if s <= addr < e:
            return name or 'anon %s %#x-%#x' % (perms, s, e)
    return 'unmapped'


def tempdir(need=3 << 30):
    """A directory for cores: /dev/shm when it has room (twice as fast)."""
    base = None
    try:
        st = os.statvfs('/dev/shm')
        if st.f_bavail * st.f_frsize >= need:
            base = '/dev/shm'
    except OSError:
        pass
    return tempfile.mkdtemp(prefix='secretjit-core-', dir=base)
