"""The C runtime's source files: one list for every build of it.

``setup.py`` (the host's shared library), :mod:`secretjit.aot._link` (the
runtime linked into AOT libraries), the tests that build the runtime
themselves and ``tools/aarch64/run.sh`` (the AArch64 build under qemu) all
take the file names from here.  This module imports nothing from the
package, so ``setup.py`` can run it before secretjit is installed, and run as
a script it prints the paths (``sources`` or ``headers``, for shell scripts).
"""

import os

CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'csrc')

# The runtime every secret build links: page source (memfd_secret or mlock),
# the secret arena, its small-block slabs and the per-thread secret stacks.
RUNTIME = ('common.c', 'marked.c', 'lock.c', 'backing.c', 'arena.c', 'arena_spans.c',
           'arena_setup.c', 'slab.c', 'slab_threads.c', 'secretstack.c',
           'secretstack_setup.c')
# Files of RUNTIME a control (non-secret) AOT build leaves out: it allocates
# with malloc through nrt_aot.c's stubs.
SECRET_ONLY = ('arena.c', 'arena_spans.c', 'arena_setup.c', 'slab.c',
               'slab_threads.c')
# numba's runtime entry points for AOT libraries (no CPython in them).
AOT_ONLY = ('nrt_aot.c',)
HEADERS = ('secretmem.h', 'arena_internal.h', 'slab.h',
           'secretstack_internal.h', 'marked.h')


def paths(names=RUNTIME):
    """Absolute paths of the source files ``names``."""
    return [os.path.join(CSRC, name) for name in names]


if __name__ == '__main__':       # python3 secretjit/_csrc.py sources|headers
    import sys
    print(' '.join(paths(HEADERS if sys.argv[1:] == ['headers'] else RUNTIME)))
