"""Options that take one name or a tuple of names (``secret=``, ``allow=``)."""


def name_tuple(value, call, option, what, example):
    """``value`` (a name or an iterable of names) as a tuple of strings.

    ``call`` and ``option`` name where it was given (``'secret_jit'``,
    ``'secret'``), ``what`` the names it takes
    (``'parameter names'``), ``example`` a valid spelling for the message.
    Anything else is a ``TypeError`` saying so.
    """
    if isinstance(value, str):
        value = (value,)
    try:
        names = tuple(value)
    except TypeError:
        raise TypeError("%s(%s=%r): expected a tuple of %s, e.g. %s"
                        % (call, option, value, what, example)) from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError("%s(%s=...): %s are strings, got %r"
                            % (call, option, what, name))
    return names
