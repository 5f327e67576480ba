"""numba's on-disk cache for secret kernels, without the context refresh on a hit.

numba's ``FunctionCache.load_overload`` refreshes the target context before
every load: the first refresh of a context installs every typing and
lowering registry numba has (~0.15 s here), which a process that only loads
cached kernels never uses.  Rebuilding a cached overload (object code,
environment, entry point) needs none of it, and every compile refreshes the
context itself (``numba.core.compiler.CompilerBase``), so a secret kernel
compiled later in the process, or calling a cached one, still sees them.
The cache's index, keys and checks are numba's own.
"""

from numba.core.caching import FunctionCache


class SecretFunctionCache(FunctionCache):
    """``FunctionCache`` whose hits skip the registry refresh."""

    def load_overload(self, sig, target_context):
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
