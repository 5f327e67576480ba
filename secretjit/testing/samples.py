"""Sample arguments declared next to a kernel, for ``python -m secretjit verify``.

Either call ``sample_args(kernel, *args)`` after defining the kernel, or
give the module a dict ``__secretjit_samples__ = {'kernel_name': (args,
...)}`` (a callable returning the tuple also works: fresh arrays each run).
"""

_REGISTRY = {}


def sample_args(kernel, *args):
    """Declare one set of sample arguments for ``kernel``; returns ``kernel``.

    ``args`` may be the arguments themselves or a single callable taking no
    arguments and returning the argument tuple.
    """
    _REGISTRY.setdefault(id(kernel), (kernel, []))[1].append(
        args[0] if len(args) == 1 and callable(args[0]) else args)
    return kernel


def _materialize(entry):
    return tuple(entry()) if callable(entry) else tuple(entry)


def samples_of(kernel, module=None):
    """The sample argument tuples declared for ``kernel`` (registry and module dict)."""
    out = [_materialize(e) for e in _REGISTRY.get(id(kernel), (None, []))[1]]
    table = getattr(module, '__secretjit_samples__', None) or {}
    for name, value in table.items():
        if getattr(module, name, None) is kernel:
            entries = value if isinstance(value, list) else [value]
            out += [_materialize(e) for e in entries]
    return out
