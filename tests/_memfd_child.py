"""Child process of tests/test_secret_memory_memfd.py: one backing setup, exercised.

    python tests/_memfd_child.py [seccomp] [memlock=BYTES] [import-only]

``seccomp``: before secretjit is loaded, install a seccomp filter that makes
memfd_secret (syscall 447) fail with ENOSYS, as on a kernel without it.
``memlock=BYTES``: set RLIMIT_MEMLOCK first (the parent drops CAP_IPC_LOCK).
``SECRETJIT_SECRET_MEMORY`` comes from the environment.  Prints one JSON
line: ``{"error": ...}`` when loading secretjit raised, else the backing and
what the workload saw:

- a secret buffer holding PATTERN and a kernel (aead.seal with the key in a
  secret buffer) that must match ``cryptography``, on the main thread and on
  a second thread that stays alive across the forks;
- ``fork``: an os.fork child reads the buffer (must be zeros), lists its
  memfd_secret mappings (must be none), allocates, frees and seals;
- ``raw``: a child made by the clone system call, which skips the atfork
  handlers (the control): it reads what the parent's buffer holds for it;
- the parent still reads PATTERN, and subprocess and a multiprocessing fork
  worker run.
"""

import ctypes
import json
import os
import platform
import resource
import struct
import sys
import threading

PATTERN = bytes(range(1, 33)) * 2
NR_MEMFD_SECRET = 447


def install_seccomp():
    """memfd_secret -> ENOSYS for this process and the threads it starts."""
    arch = {'x86_64': 0xC000003E, 'aarch64': 0xC00000B7}[platform.machine()]
    ld, jeq, ret = 0x20, 0x15, 0x06
    prog = [(ld, 0, 0, 4), (jeq, 0, 3, arch), (ld, 0, 0, 0),
            (jeq, 0, 1, NR_MEMFD_SECRET), (ret, 0, 0, 0x00050000 | 38),   # ERRNO(ENOSYS)
            (ret, 0, 0, 0x7FFF0000)]                                        # ALLOW
    code = b''.join(struct.pack('=HBBI', *ins) for ins in prog)
    filt = ctypes.create_string_buffer(code)

    class Fprog(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    fprog = Fprog(len(prog), ctypes.addressof(filt))
    assert libc.prctl(38, 1, 0, 0, 0) == 0, 'PR_SET_NO_NEW_PRIVS'
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, \
        'PR_SET_SECCOMP: errno %d' % ctypes.get_errno()
    assert libc.syscall(NR_MEMFD_SECRET, 0) == -1 and ctypes.get_errno() == 38


def raw(buf):
    """The bytes of a secret buffer as a ctypes array (bytes() of it is refused)."""
    return (ctypes.c_char * buf.nbytes).from_address(buf.ctypes.data)


def fill(buf, data):
    ctypes.memmove(buf.ctypes.data, data, len(data))


def secretmem_maps():
    with open('/proc/self/maps') as f:
        return [l.split()[0] for l in f if l.rstrip().endswith('/secretmem (deleted)')]


def seal_ok(aead, key, ref, i):
    nonce = i.to_bytes(12, 'little')
    return aead.seal(key, nonce, PATTERN, b'') == ref.encrypt(nonce, PATTERN, b'')


def raw_fork_reads(buf):
    """What a child of the clone system call (no atfork handlers) reads in buf."""
    libc = ctypes.CDLL(None, use_errno=True)
    nr = {'x86_64': 56, 'aarch64': 220}[platform.machine()]
    r, w = os.pipe()
    pid = libc.syscall(nr, 17, 0, 0, 0, 0)              # clone(SIGCHLD)
    if pid == 0:
        os.write(w, raw(buf))
        os._exit(0)
    os.close(w)
    got = os.read(r, len(PATTERN))
    os.close(r)
    os.waitpid(pid, 0)
    return got


def fork_child_report(secretjit, aead, buf, ref):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = {'zeros': raw(buf).raw == bytes(len(buf)), 'memfd_maps': len(secretmem_maps()),
                   'backing': secretjit.memory_status()['backing']}
            more = secretjit.secret_zeros(10000)
            fill(more, b'\x07' * 10000)
            secretjit.wipe_buffer(more)
            del more
            k2 = secretjit.secret_zeros(32)
            fill(k2, bytes(range(32)))
            out['seal'] = all(seal_ok(aead, k2, ref, i) for i in range(3))
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = json.loads(data) if data else {}
    out['exit'] = status
    return out


def mp_worker(q):
    from secretjit.kernels import aead
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    q.put(seal_ok(aead, bytes(range(32)), ChaCha20Poly1305(bytes(range(32))), 5))


def main():
    args = sys.argv[1:]
    if 'seccomp' in args:
        install_seccomp()
    for a in args:
        if a.startswith('memlock='):
            n = int(a.split('=')[1])
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (n, n))
    try:
        import secretjit
        st = secretjit.memory_status()
    except (OSError, ValueError) as e:
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}), flush=True)
        return
    out = {'backing': st['backing'], 'reason': st['backing_reason'],
           'memfd_maps': len(secretmem_maps())}
    if 'import-only' in args:
        print(json.dumps(out), flush=True)
        return
    import multiprocessing
    import subprocess
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from secretjit.kernels import aead
    ref = ChaCha20Poly1305(bytes(range(32)))
    key = secretjit.secret_zeros(32)
    fill(key, bytes(range(32)))
    buf = secretjit.secret_zeros(len(PATTERN))
    fill(buf, PATTERN)
    out['seal'] = seal_ok(aead, key, ref, 0)
    hold, done = threading.Event(), []
    th = threading.Thread(target=lambda: (done.append(seal_ok(aead, key, ref, 1)), hold.wait()))
    th.start()
    while not done:
        pass
    out['thread_seal'] = done[0]
    out['memfd_maps'] = len(secretmem_maps())
    out['fork'] = fork_child_report(secretjit, aead, buf, ref)
    out['raw_fork_sees_pattern'] = raw_fork_reads(buf) == PATTERN
    out['parent_pattern'] = raw(buf).raw == PATTERN
    out['parent_seal'] = seal_ok(aead, key, ref, 2)
    out['subprocess'] = subprocess.run(['true']).returncode
    ctx = multiprocessing.get_context('fork')
    q = ctx.Queue()
    p = ctx.Process(target=mp_worker, args=(q,))
    p.start()
    out['mp_seal'] = q.get(timeout=120)
    p.join()
    hold.set()
    th.join()
    st = secretjit.memory_status()
    out['after'] = {k: st[k] for k in ('backing', 'mlock_errno', 'stack_fallbacks',
                                        'arena_failures')}
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
