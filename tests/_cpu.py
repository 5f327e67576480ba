"""The host CPU's flags (from /proc/cpuinfo), for tests that check machine code."""

import platform
import re

X86 = platform.machine() in ("x86_64", "AMD64")


def _flags():
    try:
        with open("/proc/cpuinfo") as f:
            return set(re.search(r"^flags\s*:(.*)$", f.read(), re.M).group(1).split())
    except (OSError, AttributeError):
        return set()


FLAGS = _flags()
