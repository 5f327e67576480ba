"""The roomy frame-stack chunk secret compiles run on (secretjit.frame_chunk).

CPython 3.11+ maps a 16 KiB frame-stack chunk when a call does not fit and
unmaps it when that call returns; a loop whose calls straddle a chunk's end
pays a page fault per call.  The control scans call depths on the test's
own stack and must find such a depth; the same scan under
``call_in_roomy_chunk`` must find none.
"""

import resource
import sys

import pytest

from secretjit import frame_chunk, pipeline, secret_jit

CALLS = 300
needs_chunks = pytest.mark.skipif(
    sys.version_info < (3, 11), reason='frames live on chunks from CPython 3.11')


def _leaf(a, b, c, d):
    return a


def _faults_at(depth):
    """Minor page faults of CALLS leaf calls made ``depth`` frames deeper."""
    if depth:
        return _faults_at(depth - 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(CALLS):
        _leaf(i, i, i, i)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _worst_depth():
    # 16 KiB over one _faults_at frame (about 80 bytes): a chunk's end lies
    # within 250 levels of any starting depth
    return max(_faults_at(d) for d in range(400))


@needs_chunks
def test_control_a_chunk_end_costs_a_fault_per_call():
    assert _worst_depth() >= CALLS * 0.9, (
        'no depth straddles a chunk end: the scan cannot tell the fix apart')


@needs_chunks
def test_roomy_chunk_leaves_no_chunk_end_to_straddle():
    worst = frame_chunk.call_in_roomy_chunk(_worst_depth)
    assert worst < CALLS * 0.1


def _roomy_frames():
    frame, n = sys._getframe(), 0
    while frame is not None:
        n += frame.f_code is frame_chunk.ROOMY_CODE
        frame = frame.f_back
    return n


def test_nested_calls_open_one_roomy_frame():
    assert _roomy_frames() == 0 and not frame_chunk.in_roomy_chunk()
    nested = frame_chunk.call_in_roomy_chunk(
        frame_chunk.call_in_roomy_chunk, _roomy_frames)
    assert nested == 1


def test_arguments_and_exceptions_pass_through():
    assert frame_chunk.call_in_roomy_chunk(int, '12', base=8) == 10
    with pytest.raises(ZeroDivisionError):
        frame_chunk.call_in_roomy_chunk(divmod, 1, 0)


def test_secret_compile_runs_in_the_roomy_chunk(monkeypatch):
    seen = []
    original = pipeline.before_optimization

    def spy(*args, **kws):
        seen.append(frame_chunk.in_roomy_chunk())
        return original(*args, **kws)
    monkeypatch.setattr(pipeline, 'before_optimization', spy)

    @secret_jit
    def add_one(x):
        return x + 1
    assert add_one(41) == 42
    assert seen and all(seen)



_UNDER_LIMIT = '''
import resource
from secretjit import frame_chunk
calls = []
def fn(x):
    calls.append(x)
    return x + 1
vm = int(open('/proc/self/statm').read().split()[0]) * 4096
resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 1024, resource.RLIM_INFINITY))
result = %s
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
print(result, calls)
'''


@needs_chunks
def test_no_room_for_the_chunk_runs_fn_on_the_ordinary_stack():
    # Under an address-space limit that leaves no room for the chunk,
    # call_in_roomy_chunk calls fn once, in place, and the process lives on.
    # The control: pushing the roomy frame there fails (CPython 3.11: an
    # error without an exception set, then a crash).  Found by
    # test_secret_stack's fallback test, which compiles under such a limit.
    import subprocess
    run = lambda expr: subprocess.run([sys.executable, '-c', _UNDER_LIMIT % expr],
                                      capture_output=True, text=True)
    out = run('frame_chunk.call_in_roomy_chunk(fn, 41)')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['42', '[41]']
    control = run('frame_chunk._call_roomy(fn, (41,), {})')
    assert control.returncode != 0, control.stdout
