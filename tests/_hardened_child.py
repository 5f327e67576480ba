"""Subprocess cases of tests/test_hardened_memory.py (each may crash on purpose).

    python tests/_hardened_child.py CASE [MODE]

Prints one JSON object per line; the last line is the result.
"""

import json
import os
import sys
import threading


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _hardened_kernels as hk  # noqa: E402
import secretjit  # noqa: E402


def emit(**kw):
    print(json.dumps(kw), flush=True)


def fork():
    """A forked child reads zeros in the secret kernel's buffer and can run kernels."""
    secret, plain = hk.both(hk.alloc_fill)
    lcg = hk.both(hk.lcg_array)[0]
    a = secret(4096, 0xA5)
    b = plain(4096, 0xA5)
    expect = hk.both(hk.lcg_array)[1](7, 100).tolist()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = {'secret_buffer_sum': int(a.sum()), 'plain_buffer_sum': int(b.sum())}
            c = secret(256, 3)                            # allocates in the child
            out['child_alloc_ok'] = bool((c == 3).all())
            out['child_kernel_ok'] = lcg(7, 100).tolist() == expect
            res = []
            th = threading.Thread(target=lambda: res.append(lcg(7, 100).tolist() == expect))
            th.start()
            th.join()
            out['child_thread_ok'] = res == [True]
            del c
            out['status'] = secretjit.memory_status()
        except BaseException as e:                        # report, never return to pytest
            out = {'error': repr(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(pid, 0)
    child = json.loads(data)
    child['parent_secret_buffer_sum_after'] = int(a.sum())
    child['parent_plain_buffer_sum_after'] = int(b.sum())
    child['expected_sum'] = 0xA5 * 4096
    child['buffer_in_arena'] = _in_arena(a.ctypes.data)
    emit(**child)


def _in_arena(addr):
    st = secretjit.memory_status()
    return st['arena_start'] <= addr < st['arena_end']


def guard(mode):
    """Write 2 KiB past the end of a 4 KiB buffer (bounds checking off; a
    buffer over 2 KiB is an arena span with its own guard page).

    The secret buffer is one whose guard page has another span right after
    it (hk.guarded), so the fault comes from the guard page, not from the
    unused rest of the arena.
    """
    fills = hk.both(hk.alloc_fill)
    writes = hk.both(hk.write_at, boundscheck=False)
    i = 0 if mode == 'secret' else 1
    fill, write = fills[i], writes[i]
    arrays = [fill(4096, 1) for _ in range(16)]
    targets = hk.guarded(arrays, 4096) if mode == 'secret' else arrays
    if not targets:
        emit(state='no buffer with a guard page between two spans')
        return
    a = targets[0]
    write(a, 10, 2)                                       # compile, in bounds
    emit(state='writing', addr=a.ctypes.data)
    write(a, 4096 + 2048, 1)
    emit(state='survived', first=int(a[0]))
    os._exit(0)                                           # do not walk a corrupted heap


def exhaust():
    """SECRETJIT_ARENA_SIZE=1M: a 4 MiB allocation raises MemoryError."""
    secret, plain = hk.both(hk.alloc_sum)
    out = {'small_before': int(secret(1024))}
    try:
        secret(4 << 20)
        out['big'] = 'no error'
    except MemoryError as e:
        out['big'] = 'MemoryError'
        out['message'] = str(e)
    except Exception as e:                                # noqa: BLE001 - reported
        out['big'] = repr(e)
    out['small_after'] = int(secret(1024))
    out['plain_big'] = int(plain(4 << 20))
    out['status'] = secretjit.memory_status()
    emit(**out)


def frame():
    """A 1 MiB stack frame: compile-time SecretPolicyError (or a guard-page fault)."""
    out = {}
    fits, fits_plain = hk.both(hk.fitting_frame)
    out['fits'] = int(fits(9))
    out['fits_plain'] = int(fits_plain(9))
    big, big_plain = hk.both(hk.big_frame)
    out['plain_big'] = int(big_plain(7))
    before = secretjit.memory_status()
    emit(state='calling', **out)
    try:
        out['big'] = int(big(7))
        out['outcome'] = 'ran'
    except secretjit.SecretPolicyError as e:
        out['outcome'] = 'SecretPolicyError'
        out['message'] = str(e)
    except Exception as e:                                # noqa: BLE001 - reported
        out['outcome'] = type(e).__name__
        out['message'] = str(e)
    out['status_before'] = before
    out['status'] = secretjit.memory_status()
    emit(**out)


def main():
    case = sys.argv[1]
    if case == 'fork':
        fork()
    elif case == 'guard':
        guard(sys.argv[2])
    elif case == 'exhaust':
        exhaust()
    elif case == 'frame':
        frame()
    else:
        raise SystemExit('unknown case %r' % case)


if __name__ == '__main__':
    main()
