"""Exceptions secretjit raises."""

from numba.core.errors import TypingError


class SecretPolicyError(TypingError):
    """A secret kernel breaks a rule of the secret target.

    Raised at compile time.  ``rule`` names the rule (e.g. ``no-parallel``),
    the message says what broke it and how to get out.
    """

    def __init__(self, rule, problem, fix):
        self.rule = rule
        self.problem = problem
        self.fix = fix
        super().__init__("secretjit policy [%s]: %s. Fix: %s." % (rule, problem, fix),
                         highlighting=False)

    def with_context(self, wrapper):
        """A copy whose message also says where numba met the violation."""
        where = [line.strip() for line in str(wrapper).splitlines()
                 if line.strip().startswith(('File "', 'During: typing of call'))]
        err = type(self)(self.rule, self.problem, self.fix)
        if where:
            err.args = (err.args[0] + '\n' + '\n'.join(where),)
        return err

    def __reduce__(self):
        return (type(self), (self.rule, self.problem, self.fix))


class ConstantTimeWarning(UserWarning):
    """A constant-time finding of a kernel compiled with ``constant_time="warn"``.

    Also issued for findings that are warnings in any mode (floating-point
    division or square root of a secret).
    """
