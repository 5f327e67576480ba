"""``secret_jit``: numba's ``@njit`` for kernels whose secrets must not outlive them."""

from numba.core.decorators import jit

from . import constant_time, policy
from .target import TARGET


def secret_jit(*args, **kws):
    """Compile a numba nopython kernel whose registers, stack and heap are erased.

    A drop-in for ``numba.njit``: ``@secret_jit``, ``@secret_jit(sig)``,
    ``@secret_jit([sig, ...], **options)`` with numba's options (``nogil``,
    ``cache``, ``fastmath``, ``boundscheck``, ``error_model``, ...).  The
    dispatcher it returns is numba's (``signatures``, ``overloads``,
    ``inspect_llvm``, ``inspect_asm`` showing the code after the secret
    passes) plus ``stack_bound()`` and ``pass_reports()``.

    When a call from Python into the kernel returns (normally or by raising):

    - Registers: every call-clobbered register except the return register is
      zero: general-purpose, vector (xmm/ymm/zmm 0-31 as the CPU has them),
      AVX-512 mask registers k0-k7 and the x87 stack on x86-64; x1-x18 and
      the vector registers (z0-z31 and p0-p15 with SVE) on AArch64, where
      the low halves of v8-v15 are callee-saved.  Functions of
      the call tree zero the registers they used; the boundary zeroes all.
    - Stack: the call tree runs on the thread's secret stack, and every byte
      it wrote there is zero, up to a depth bound computed from the machine
      code of the whole call tree (numba helpers, the secret allocator, and
      a measured allowance per libc/libm/NRT C function it calls).  Without
      a secret stack (no address space) it runs in place and the same depth
      below the caller's stack pointer is zeroed.
    - Heap: every buffer the call tree allocates through numba's runtime
      (arrays, temporaries, lists, strings) comes from the secret arena and
      is overwritten with zeros when it is freed: at the end of the call for
      temporaries, or when Python drops the last reference to a returned
      array.  Plain numba code keeps numba's allocator.
    - While the call runs, the secret stack and the arena are locked in RAM
      (never swapped), left out of core dumps and zero in forked children,
      with guard pages (``SECRETJIT_STACK_SIZE``, ``SECRETJIT_ARENA_SIZE``;
      see :mod:`secretjit.secretmem`).
    - Plain ``@njit`` functions the kernel calls are compiled again for the
      secret target and get the same treatment.  Nested secret kernels run
      inside the outer call's protection.

    Limitations:

    - The arguments and the return value belong to the caller: numba's
      wrapper unboxes and boxes them outside the protected call, and input
      arrays are the caller's memory.
    - Registers of a thread interrupted mid-call (signals, preemption) are
      saved by the OS kernel wherever it saves them (a core dump's thread
      notes, a signal frame on the secret stack); a debugger or
      ``/proc/<pid>/mem`` can read the process's memory during the call.
    - Memory allocated by C code the kernel reaches outside numba's runtime
      (typed List/Dict C helpers, BLAS/LAPACK through np.linalg, libc's own
      buffers) is not wiped.
    - The stack allowance for external C functions is measured on Linux
      x86-64 and AArch64 with glibc (see tests/test_stack_bound.py and
      tests/test_aarch64.py), not proven.
    - Recursion, variable-sized stack frames, ``parallel=True``/``prange``,
      object mode, calls into the interpreter, generator kernels and jitclass
      are rejected at compile time with :class:`~secretjit.SecretPolicyError`,
      as are calls to a secret kernel from plain numba code.
    """
    policy.check_options(kws)
    ct_policy = constant_time.pop_options(kws)
    if kws.pop('_target', TARGET) != TARGET:
        raise TypeError("secret_jit always compiles for the secret target; "
                        "drop the _target option")
    return constant_time.attach(jit(*args, _target=TARGET, **kws), ct_policy)
