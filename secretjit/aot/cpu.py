"""The CPU an AOT library is built for (``--cpu``, ``build(..., cpu=...)``).

A library is built for one CPU feature set, chosen at build time: the
architecture's baseline (the default: x86-64 without AVX, ARMv8-A), an
x86-64 psABI level (``x86-64-v2``, ``x86-64-v3`` = AVX2/BMI2/FMA,
``x86-64-v4`` = AVX-512 F/BW/CD/DQ/VL), ``host`` (every feature of the
table below the build machine has: AVX-512, SHA-NI, AES, VAES, GFNI...),
optionally followed by ``+feature`` words (``x86-64-v3+sha+aes``).

Why one build per ``--cpu`` and not function multiversioning (one library
with several builds and a dispatch on cpuid at load): the secret passes,
the stack bound, the constant-time check and the audit run per build, so N
versions cost N times the build time and the library's size, while the
user who ships for a known fleet picks its level once.  A library built
for features the running CPU lacks never executes them: a constructor
(generated per build, :func:`check_source`) tests every feature with GCC's
``__builtin_cpu_supports`` (which also checks that the OS enabled the
AVX/AVX-512 state) when the library is loaded, prints what is missing to
stderr, and every export then returns ``SECRETJIT_ECPU`` (3) without
running any of the build's code: the exports are GNU ifuncs, resolved by
the dynamic loader to the build's code or to a baseline stub.

The target machine gets exactly these features on LLVM's generic
``x86-64`` CPU (tuning stays generic), so the load-time check covers every
feature the code may use.  Register zeroing follows the features: LLVM's
``zero-call-used-regs`` clears what the build's ISA has (ymm with AVX,
zmm0-31 and k0-k7 with AVX-512), and ``secretjit_aot_clear_vregs``
(``csrc/nrt_aot.c``) clears only what the running CPU has beyond that,
decided once at load time; an export whose tree is exact with known
written registers has no clear (``passes.drop_clears``): its code, built
for the library's ISA, cannot write what lies beyond it.
"""

from dataclasses import dataclass

from . import AotError

# LLVM feature name -> GCC __builtin_cpu_supports name (the load-time check).
X86_FEATURES = {
    'cx16': 'cmpxchg16b', 'sahf': 'lahf_lm', 'popcnt': 'popcnt',
    'sse3': 'sse3', 'ssse3': 'ssse3', 'sse4.1': 'sse4.1', 'sse4.2': 'sse4.2',
    'avx': 'avx', 'avx2': 'avx2', 'bmi': 'bmi', 'bmi2': 'bmi2', 'f16c': 'f16c',
    'fma': 'fma', 'lzcnt': 'lzcnt', 'movbe': 'movbe', 'xsave': 'xsave',
    'avx512f': 'avx512f', 'avx512bw': 'avx512bw', 'avx512cd': 'avx512cd',
    'avx512dq': 'avx512dq', 'avx512vl': 'avx512vl',
    'avx512vbmi': 'avx512vbmi', 'avx512vbmi2': 'avx512vbmi2',
    'avx512ifma': 'avx512ifma', 'avx512vnni': 'avx512vnni',
    'avx512bitalg': 'avx512bitalg', 'avx512vpopcntdq': 'avx512vpopcntdq',
    'sha': 'sha', 'aes': 'aes', 'pclmul': 'pclmul', 'vaes': 'vaes',
    'vpclmulqdq': 'vpclmulqdq', 'gfni': 'gfni', 'adx': 'adx',
}
_V2 = ('cx16', 'sahf', 'popcnt', 'sse3', 'ssse3', 'sse4.1', 'sse4.2')
_V3 = _V2 + ('avx', 'avx2', 'bmi', 'bmi2', 'f16c', 'fma', 'lzcnt', 'movbe',
             'xsave')
_V4 = _V3 + ('avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl')
X86_LEVELS = {'x86-64': (), 'x86-64-v2': _V2, 'x86-64-v3': _V3,
              'x86-64-v4': _V4}
BASELINE = {'x86_64': 'x86-64', 'aarch64': 'generic'}
HOST = 'host'


@dataclass(frozen=True)
class Cpu:
    """A build's CPU: the name asked for, LLVM's CPU and the features."""
    name: str                   # as given (normalised): 'x86-64-v3+sha', 'host'
    arch: str
    llvm_cpu: str
    features: tuple = ()        # LLVM feature names, all in X86_FEATURES

    @property
    def baseline(self):
        return not self.features

    @property
    def vlevel(self):
        """Vector registers the build's own zeroing clears whole: 0 xmm
        (legacy SSE), 1 ymm0-15 (VEX), 2 zmm0-31 and k0-k7."""
        return 2 if 'avx512f' in self.features else int('avx' in self.features)

    @property
    def sha_ni(self):
        """Whether the build may use the SHA-NI SHA-256 kernel."""
        return all(f in self.features for f in ('sha', 'ssse3', 'sse4.1'))

    def feature_string(self):
        return ','.join('+' + f for f in self.features)

    def describe(self):
        if self.baseline:
            return '%s (the %s baseline)' % (self.name, self.arch)
        return '%s (LLVM cpu %s, features %s)' % (
            self.name, self.llvm_cpu, ' '.join(self.features))


def _host_features():
    import llvmlite.binding as ll
    have = ll.get_host_cpu_features()
    return tuple(f for f in X86_FEATURES if have.get(f, False))


def _choices(arch):
    if arch != 'x86_64':
        return "'%s' (baseline)" % BASELINE[arch]
    return ', '.join(["'baseline'", "'host'"] + ["'%s'" % n for n in X86_LEVELS]) \
        + ", each optionally followed by +FEATURE words (%s)" % ' '.join(
            sorted(X86_FEATURES))


def resolve_cpu(arch, cpu=None):
    """The :class:`Cpu` of ``cpu`` for ``arch``; AotError naming the choices."""
    from ..pipeline import host_arch
    if cpu is None or cpu in ('baseline', BASELINE[arch]):
        return Cpu(BASELINE[arch], arch, BASELINE[arch])
    if not isinstance(cpu, str) or not cpu:
        raise AotError("--cpu must be a name such as 'x86-64-v3' or 'host', "
                       "got %r" % (cpu,))
    if arch != 'x86_64':
        raise AotError("unknown --cpu %r for %s: AArch64 libraries are built "
                       "for the baseline ARMv8-A only; supported: %s"
                       % (cpu, arch, _choices(arch)))
    base, *extra = cpu.split('+')
    if base == HOST:
        if host_arch() != arch:
            raise AotError("--cpu host builds for the machine the build runs "
                           "on (%s), not for %s; name a level such as "
                           "x86-64-v3" % (host_arch(), arch))
        feats = list(_host_features())
    elif base in X86_LEVELS or base == 'baseline':
        feats = list(X86_LEVELS.get(base, ()))
    else:
        raise AotError("unknown --cpu %r; supported: %s" % (cpu, _choices(arch)))
    for word in extra:
        if word not in X86_FEATURES:
            raise AotError("unknown CPU feature %r in --cpu %r; known: %s"
                           % (word, cpu, ' '.join(sorted(X86_FEATURES))))
        if word not in feats:
            feats.append(word)
    if not feats:
        return Cpu(BASELINE[arch], arch, BASELINE[arch])
    order = list(X86_FEATURES)
    feats.sort(key=order.index)
    return Cpu(cpu, arch, BASELINE[arch], tuple(feats))


def check_source(cpu, libname, exports, prefix='secretjit__cpu_'):
    """C source of the exports of a ``cpu`` build: GNU ifuncs.

    Each export ``f`` is an ifunc whose resolver (run by the dynamic loader
    when the library is loaded, ``-z now``) returns the build's C wrapper
    ``prefix + f`` if the running CPU has every feature of the build, or a
    baseline stub returning SECRETJIT_ECPU (3); nothing of the build's code
    runs on a CPU that lacks a feature, and calls cost what any call into a
    shared library costs.  A constructor names the missing features on
    stderr.
    """
    tests = '\n'.join(
        '    if (!__builtin_cpu_supports("%s")) n += snprintf(miss + n, '
        'sizeof miss - n, " %s");' % (X86_FEATURES[f], f) for f in cpu.features)
    funcs = '\n'.join(
        'extern int32_t %(p)s%(f)s(void);\n'
        'static void *resolve_%(f)s(void)\n'
        '{\n    return cpu_ok() ? (void *)%(p)s%(f)s : (void *)cpu_missing;\n}\n'
        'EXPORT int32_t %(f)s(void) __attribute__((ifunc("resolve_%(f)s")));\n'
        % dict(p=prefix, f=f) for f in exports)
    return r"""/* Generated by secretjit.aot.cpu: the exports of %(lib)s, built for CPU
 * %(name)s, resolved when the library is loaded. */
#include <stdint.h>
#include <stdio.h>
#define EXPORT __attribute__((visibility("default")))

static char miss[1024];

/* 1 when this CPU has every feature of the build; the missing ones in miss. */
static int cpu_ok(void)
{
    int n = 0;
    miss[0] = 0;
    __builtin_cpu_init();
%(tests)s
    return n == 0;
}

static int32_t cpu_missing(void)
{
    return 3;           /* SECRETJIT_ECPU */
}

__attribute__((constructor)) static void secretjit_aot_cpu_report(void)
{
    if (!cpu_ok())
        fprintf(stderr, "secretjit: %(lib)s was built for CPU %(name)s, and "
                "this CPU lacks:%%s.  Its functions return SECRETJIT_ECPU (3) "
                "without running.  Rebuild it for this machine (python -m "
                "secretjit aot ... --cpu host, or without --cpu for the "
                "baseline).\n", miss);
}

%(funcs)s""" % dict(lib=libname, name=cpu.name.replace('"', ''), tests=tests,
                   funcs=funcs)


__all__ = ['BASELINE', 'Cpu', 'X86_FEATURES', 'X86_LEVELS', 'check_source',
           'resolve_cpu']
