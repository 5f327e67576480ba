"""How the tests run Python in a child process: one function, one style.

``run_python(script_or_args..., code=...)`` runs this interpreter
(``sys.executable``) with captured text output and a timeout, in this
process's environment updated by ``env`` and without the variables in
``drop``; ``wrapper`` prefixes the command (``setpriv ...``).  Tests that
talk to a child while it runs (core dumps of a live process) use
``subprocess.Popen`` directly.
"""

import os
import subprocess
import sys


def run_python(*args, code=None, env=None, drop=(), wrapper=(), timeout=300,
               check=False, **kwargs):
    """``subprocess.run`` of ``python [-c code] args...``; returns its result."""
    full_env = dict(os.environ)
    for name in drop:
        full_env.pop(name, None)
    full_env.update(env or {})
    argv = [*wrapper, sys.executable] + (['-c', code] if code is not None else [])
    return subprocess.run(argv + [str(a) for a in args], env=full_env,
                          capture_output=True, text=True, timeout=timeout,
                          check=check, **kwargs)
