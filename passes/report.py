"""Counters a pass returns to say what it did."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PassReport:
    """What one pass changed in one module, as named counters."""
    name: str
    counters: Counter = field(default_factory=Counter)

    def count(self, what, n=1):
        if n:                   # a counter that stays zero is not reported
            self.counters[what] += n

    def __getitem__(self, what):
        return self.counters[what]

    def __str__(self):
        items = ', '.join('%s=%d' % kv for kv in sorted(self.counters.items()))
        return '%s: %s' % (self.name, items or 'nothing to do')
