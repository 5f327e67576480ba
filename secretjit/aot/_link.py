"""The C side of an AOT build: the target's C compiler, the C runtime, the header.

:func:`toolchain` finds the C compiler driver for a target,
:func:`link_library` compiles ``secretjit/csrc`` for it and links the
library (``-shared``, libc and libm only, only the exports visible), and
:func:`header_text` writes the C header.
"""

import os
import re
import shutil
import subprocess

from . import AotError, STATUS, TARGETS, resolve_target
from .. import _csrc
from .._csrc import CSRC
from ..pipeline import host_arch

CFLAGS = ['-O2', '-fPIC', '-fvisibility=hidden', '-std=gnu11', '-Wall']

def toolchain(target):
    """The C compiler driver for ``target`` (AotError naming the package if absent).

    ``SECRETJIT_AOT_CC`` overrides it; for the host architecture ``CC`` (or
    ``cc``) is used, for another one the Debian cross compiler.
    """
    arch, _, _, cross, package = TARGETS[resolve_target(target)]
    override = os.environ.get('SECRETJIT_AOT_CC')
    if override:
        cc, hint = override, 'SECRETJIT_AOT_CC=%s' % override
    elif arch == host_arch():
        cc, hint = os.environ.get('CC') or 'cc', 'apt-get install gcc'
    else:
        cc, hint = cross, 'apt-get install %s' % package
    argv = cc.split()
    exe = shutil.which(argv[0])
    if exe is None:
        raise AotError("C compiler %r for target %s not found; install it "
                       "with `%s`" % (argv[0], target, hint)
                       if not override else
                       "C compiler %r (from SECRETJIT_AOT_CC) not found"
                       % argv[0])
    return [exe] + argv[1:]


def header_text(stem, exports, target, cpu=None):
    guard = 'SECRETJIT_AOT_%s_H' % re.sub(r'\W', '_', stem).upper()
    out = ['/* %s.h: secret kernels compiled ahead of time by secretjit for %s.'
           % (stem, target),
           ' * CPU: %s.' % (cpu.describe() if cpu else 'the baseline'),
           ' * Link with -l%s (lib%s.so; it needs only libc and libm).'
           % (stem, stem),
           ' *',
           ' * C ABI of every function below:',
           ' *  - it returns an int32_t status: SECRETJIT_OK (0) on success,',
           ' *    SECRETJIT_ERAISED (1) when the kernel raised an exception',
           ' *    (exceptions never unwind into C), SECRETJIT_EINVAL (2) for a',
           ' *    NULL pointer with a positive length, a negative length or a',
           ' *    NULL result pointer (the kernel did not run), SECRETJIT_ECPU',
           ' *    (3) when the library was built for CPU features this CPU',
           ' *    lacks (named on stderr when it is loaded; nothing ran);',
           ' *  - a 1-D array parameter x becomes (T *x, int64_t x_len), x_len',
           ' *    counting elements; arrays are read and written in place;',
           ' *  - a scalar parameter has the C type of the same width;',
           ' *  - a non-void result is written through the trailing pointer',
           ' *    ret, only when the status is SECRETJIT_OK.',
           ' * Erasure: when a call returns, the secretjit erasure contract holds',
           ' * (registers, stack, heap; stated once in secretjit\'s README.md,',
           ' * section "The contract").  Run-time settings: SECRETJIT_STACK_SIZE',
           ' * (secret stack per thread, default 256K), SECRETJIT_ARENA_SIZE',
           ' * (secret heap, default 256M).',
           ' * Thread-safe: functions may run concurrently on different threads.',
           ' */',
           '#ifndef %s' % guard, '#define %s' % guard, '',
           '#include <stdbool.h>', '#include <stdint.h>', '']
    for name, value, doc in STATUS:
        out.append('#define %s %d  /* %s */' % (name, value, doc))
    if cpu is not None and not cpu.baseline:
        out.append('#define SECRETJIT_AOT_%s_CPU "%s"' % (
            re.sub(r'\W', '_', stem).upper(), cpu.name))
    out += ['', '#ifdef __cplusplus', 'extern "C" {', '#endif', '']
    for exp in exports:
        doc = (getattr(exp.pyfunc, '__doc__', None) or '').strip()
        doc = doc.splitlines()[0] if doc else ''
        out.append('/* %s%s  [%s.%s: %s] */' % (
            doc.replace('*/', '* /'), ' ' if doc else '',
            exp.pyfunc.__module__, exp.pyfunc.__qualname__, exp.signature))
        params = ', '.join('%s%s%s' % (t, '' if t.endswith('*') else ' ', n)
                           for t, n in exp.c_params) or 'void'
        out.append('int32_t %s(%s);' % (exp.c_name, params))
        out.append('')
    out += ['#ifdef __cplusplus', '}', '#endif', '', '#endif', '']
    return '\n'.join(out)


def _run(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AotError("%s failed (%s):\n%s%s" % (
            what, ' '.join(argv), proc.stdout, proc.stderr))
    return proc


def link_library(obj_path, exports, target, outpath, tmp, secret=True,
                 cpu=None):
    cc = toolchain(target)
    objs = [obj_path]
    # Control builds (tests only) swap the arena for malloc without wiping.
    extra = [] if secret else ['-DSECRETJIT_AOT_CONTROL']
    # What the build's own register zeroing clears (nrt_aot.c clears the rest)
    extra.append('-DSECRETJIT_AOT_VLEVEL=%d' % (cpu.vlevel if cpu else 0))
    if cpu is not None and not cpu.baseline:
        from .cpu import check_source
        src = os.path.join(tmp, 'cpu_check.c')
        with open(src, 'w') as f:
            f.write(check_source(cpu, os.path.basename(outpath),
                                 [e.c_name for e in exports]))
        objs.append(os.path.join(tmp, 'cpu_check.o'))
        _run(cc + CFLAGS + ['-c', src, '-o', objs[-1]], 'compiling the CPU check')
    for src in _csrc.RUNTIME + _csrc.AOT_ONLY:
        path = os.path.join(CSRC, src)
        if not secret and src in _csrc.SECRET_ONLY:
            continue
        o = os.path.join(tmp, src[:-2] + '.o')
        _run(cc + CFLAGS + extra + ['-I', CSRC, '-c', path, '-o', o],
             'compiling %s' % src)
        objs.append(o)
    script = os.path.join(tmp, 'exports.map')
    with open(script, 'w') as f:
        f.write('{\n  global:\n%s  local: *;\n};\n' % ''.join(
            '    %s;\n' % e.c_name for e in exports))
    _run(cc + ['-shared', '-o', outpath] + objs + [
        '-Wl,--version-script=' + script, '-Wl,-z,noexecstack',
        '-Wl,--no-undefined', '-Wl,-z,relro', '-Wl,-z,now', '-lm'],
        'linking %s' % os.path.basename(outpath))
