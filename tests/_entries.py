"""Which secret entries a compiled kernel's boundaries call (the exact-entry tests)."""

from secretjit import passes


def secret_calls(kernel):
    """Sorted names of the runtime entries (``secretjit_secret_call``,
    ``secretjit_secret_call_exact``) called in ``kernel``'s final module."""
    lib = kernel.overloads[kernel.signatures[0]].library
    return sorted({name for line in str(lib._final_module).splitlines()
                   if ' call ' in line
                   for name in (passes.SECRET_CALL, passes.SECRET_CALL_EXACT)
                   if '@%s(' % name in line})
