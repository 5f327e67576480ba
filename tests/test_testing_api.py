"""secretjit.testing.assert_erased on users' kernels: pass, fail naming the mechanism, blind.

Each outcome has its case: a correct kernel passes with every control
leaking; the same kernel with the secret run replaced by plain numba (the
erasure taken away) fails naming each mechanism; a kernel whose arguments
carry no high-entropy word fails with "cannot see".
"""

import os

import numpy as np
import pytest
from numba import njit

from secretjit import secret_jit, wipe
from secretjit.testing import assert_erased, check_erased, erasure, sample_args, samples_of
from secretjit.testing import detectors, memscan
from secretjit.testing.control import plain_kernel
from secretjit.demo import derive_session

from _child import run_python
from _cpu import FLAGS, X86

SEED = np.uint64(0x5EC2E7D00DF00D42)


def _user_kernel(key, out):
    """A user's kernel: no test intrinsics; secrets in a heap temporary and registers."""
    tmp = np.empty(256, np.uint64)      # 2 KiB: glibc keeps a freed block this size
    for i in range(256):
        tmp[i] = (key[i % 4] * np.uint64(2 * i + 1)) ^ np.uint64(0x9E3779B97F4A7C15)
    acc = np.uint64(0)
    for i in range(256):
        acc += tmp[(i * 5) % 256]
    out[0] = acc
    wipe(tmp)                       # a no-op in the control: it must still leak
    return acc


user_kernel = secret_jit(_user_kernel)
KEY = np.array([0x0123456789ABCDEF, 0xF1E2D3C4B5A69788,
                0x13579BDF02468ACE, 0x7766554433221100], np.uint64)


@pytest.fixture(scope='module')
def derive():
    return secret_jit(derive_session)


# Half the 64-bit words of the vector registers the control can leave secret
# words in: 32 zmm with AVX-512 (256 words), 16 ymm with AVX (64), else 16 xmm.
VECTOR_WORDS = (256 if 'avx512f' in FLAGS else 64 if 'avx' in FLAGS else 32) if X86 else 64


def test_correct_kernel_passes_and_every_control_leaks(derive):
    report = assert_erased(derive, SEED)
    assert report.control['stack'].count > 100, report.table()
    assert report.control['registers'].count >= VECTOR_WORDS // 2, report.table()
    # the freed 2 KiB heap temporary, held back by the heap log: 129 words
    # of it are secret words (scratch words the stack and registers show too)
    assert report.control['heap'].count > 100, report.table()
    for m in ('stack', 'registers', 'heap'):
        assert report.secret[m].count == 0, report.table()


def test_kernel_without_erasure_fails_naming_each_mechanism(derive, monkeypatch):
    # the secret run gets the plain build: what a kernel compiled without erasure does
    monkeypatch.setattr(erasure, '_secret_run',
                        lambda k: plain_kernel(k, keep_wipe=False))
    with pytest.raises(AssertionError) as info:
        assert_erased(derive, SEED)
    text = str(info.value)
    for m in ('stack', 'registers', 'heap'):
        assert 'secret words under %s' % m in text, text
    assert 'sp-' in text and ('st0' in text or 'xmm' in text)


def _user_words(key):
    return [((int(key[i % 4]) * (2 * i + 1)) & 0xFFFFFFFFFFFFFFFF) ^ 0x9E3779B97F4A7C15
            for i in range(256)]


def test_user_kernel_heap_passes_and_fails_without_erasure(monkeypatch):
    # values only a heap temporary holds are not default secret words: name them
    args = (KEY, np.zeros(1, np.uint64))
    with pytest.raises(AssertionError, match='cannot see'):
        assert_erased(user_kernel, *args, mechanisms=['heap'])
    report = check_erased(user_kernel, *args, mechanisms=['heap'],
                          secret_words=_user_words(KEY))
    # the control's freed 2 KiB temporary is held back and read whole
    assert report.control['heap'].count == 256, report.explain()
    assert report.secret['heap'].count == 0, report.explain()
    monkeypatch.setattr(erasure, '_secret_run',
                        lambda k: plain_kernel(k, keep_wipe=False))
    with pytest.raises(AssertionError) as info:
        assert_erased(user_kernel, *args, mechanisms='heap',
                      secret_words=_user_words(KEY))
    assert 'secret_jit left 256 secret words under heap: freed block' \
        in str(info.value), str(info.value)


def _perturbed_heap_case():
    """Child of the test below: the heap case's counts, one line."""
    report = check_erased(user_kernel, KEY, np.zeros(1, np.uint64), mechanisms=['heap'],
                          secret_words=_user_words(KEY))
    print('control %d secret %d' % (report.control['heap'].count,
                                    report.secret['heap'].count))


def test_heap_control_does_not_depend_on_the_allocator():
    # With MALLOC_PERTURB_ glibc overwrites a block as it frees it (outside
    # its tcache, as for this 2 KiB temporary): a detector that reads freed
    # blocks after the allocator took them back sees nothing here.  The heap
    # log holds them back until they are read.
    code = ('import sys; sys.path.insert(0, %r); import test_testing_api as t; '
            't._perturbed_heap_case()' % os.path.dirname(__file__))
    r = run_python(code=code, env={'MALLOC_PERTURB_': '90'})
    assert r.returncode == 0 and 'control 256 secret 0' in r.stdout, r.stdout + r.stderr


def test_no_detectable_secret_says_the_detector_cannot_see():
    # all-zero key: every word the kernel writes is a constant or small
    blind = secret_jit(lambda key: key[0] + key[1])
    with pytest.raises(AssertionError, match="cannot see this kernel's secret"):
        assert_erased(blind, np.zeros(4, np.uint64))


def test_explicit_secret_words_and_mechanism_subset(derive):
    key = (int(SEED) ^ 0x9E3779B97F4A7C15)
    words = [(key * (2 * i + 1) + i) & 0xFFFFFFFFFFFFFFFF for i in range(256)]
    report = assert_erased(derive, SEED, mechanisms=('stack',), secret_words=words)
    assert report.mechanisms == ('stack',) and report.control['stack'].count >= 200
    # words nothing ever holds: the control sees none of them
    with pytest.raises(AssertionError, match='cannot see'):
        assert_erased(derive, SEED, mechanisms=('stack',),
                      secret_words=[0x0123456789ABCDEF ^ 0x5555AAAA5555AAAA])


def test_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match='needs a @secret_jit kernel'):
        assert_erased(njit(_user_kernel), KEY, np.zeros(1, np.uint64))
    with pytest.raises(ValueError, match="unknown mechanism.*'cache'.*stack"):
        assert_erased(user_kernel, KEY, np.zeros(1, np.uint64), mechanisms=['cache'])
    with pytest.raises(ValueError, match='argument 0 is not C-contiguous'):
        assert_erased(user_kernel, np.zeros((4, 2), np.uint64)[:, 0],
                      np.zeros(1, np.uint64))


@secret_jit
def keep(key):
    """Returns a 64-word array of key-derived words: it lives in the secret arena."""
    out = np.empty(64, np.uint64)
    for i in range(64):
        out[i] = key[i % 4] * np.uint64(2 * i + 1)
    return out


def test_heap_scan_sees_the_secret_arena():
    """Must-fire case for the arena scan: a live arena array's words are found there."""
    live = keep(KEY)
    mask = erasure._Mask()
    found = memscan.scan_arena(np.unique(mask(live)), mask)
    lo, hi = live.ctypes.data, live.ctypes.data + live.nbytes
    assert sum(lo <= a < hi for a, _ in found) == 64, sorted(found)[:4]
    del live


def test_heap_detector_leaves_out_the_result_and_sees_new_arena_words(monkeypatch):
    """The arena diff: a returned arena array is the caller's; not left out, it counts."""
    words = [(int(KEY[i % 4]) * (2 * i + 1)) & 0xFFFFFFFFFFFFFFFF for i in range(64)]
    mask = erasure._Mask()
    wanted = erasure._mask_words(words, mask)
    _, clean = detectors._heap_run(keep, (KEY,), wanted, mask)
    assert clean.count == 0, clean.where[:4]
    monkeypatch.setattr(detectors, '_buffers', lambda objs: [])
    _, seen = detectors._heap_run(keep, (KEY,), wanted, mask)
    assert seen.count == 64 and all(w.startswith('secret arena') for w in seen.where)


def test_sample_args_registry_and_module_dict():
    import types
    k = secret_jit(lambda x: x)
    sample_args(k, np.ones(2))
    sample_args(k, lambda: (np.zeros(3),))
    mod = types.ModuleType('m')
    mod.k = k
    mod.__secretjit_samples__ = {'k': (np.ones(5),)}
    got = samples_of(k, mod)
    assert [a[0].size for a in got] == [2, 3, 5]


def test_probes_live_only_in_secretjit_testing():
    import importlib
    with pytest.raises(ImportError):
        importlib.import_module('secretjit.probes')
    from secretjit.testing import probes
    assert probes.stack_after_call and probes.fill_registers
