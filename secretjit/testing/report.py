"""What the erasure detectors found: one :class:`Finding` per detector and run, a :class:`Report`."""

MECHANISMS = ('stack', 'registers', 'heap')
DESCRIPTIONS = {
    'stack': 'stack below the caller + secret stack',
    'registers': 'call-clobbered registers after return',
    'heap': 'blocks the call freed + secret arena',
}


class Finding:
    """What one detector found after one run: a count and where."""

    def __init__(self, mechanism, count, where=(), available=True, note=''):
        self.mechanism = mechanism
        self.count = count
        self.where = list(where)
        self.available = available
        self.note = note

    def __repr__(self):
        return 'Finding(%s, %d, %s)' % (self.mechanism, self.count, self.where[:4])


class Report:
    """Both runs of one kernel: ``control`` and ``secret`` findings per mechanism."""

    def __init__(self, name, mechanisms, nwords):
        self.name = name
        self.mechanisms = mechanisms
        self.nwords = nwords
        self.control = {}
        self.secret = {}

    def visible(self):
        """Mechanisms whose control found at least one secret word."""
        return [m for m in self.mechanisms
                if self.control[m].available and self.control[m].count > 0]

    def leaks(self):
        """Mechanisms where the secret run left secret words."""
        return [m for m in self.visible() if self.secret[m].count > 0]

    @property
    def passed(self):
        return bool(self.visible()) and not self.leaks()

    def table(self):
        """The report as a table, one line per mechanism."""
        lines = ['%-10s %-44s %7s %12s' % ('mechanism', 'secret words left behind',
                                         '@njit', '@secret_jit')]
        for m in self.mechanisms:
            c, s = self.control[m], self.secret[m]
            if not c.available:
                lines.append('%-10s %-44s %7s %12s  (%s)' % (
                    m, DESCRIPTIONS[m], '-', '-', c.note))
                continue
            flag = '' if c.count else '  (control saw nothing: not counted)'
            flag += ''.join('  (%s: %s)' % (run, f.note) for run, f in
                            (('@njit', c), ('@secret_jit', s)) if f.note)
            lines.append('%-10s %-44s %7d %12d%s' % (m, DESCRIPTIONS[m], c.count,
                                                     s.count, flag))
        return '\n'.join(lines)

    def explain(self):
        """The failure message: what was found, where, or why nothing can be seen."""
        head = '%s: %d secret words sought' % (self.name, self.nwords)
        if not self.visible():
            return ('%s\n%s\nthe detector cannot see this kernel\'s secret: the '
                    'plain-numba control left none of the secret words under any '
                    'requested detector (%s); choose arguments that make it, or '
                    'pass secret_words=' % (head, self.table(), ', '.join(self.mechanisms)))
        out = ['%s\n%s' % (head, self.table())]
        for m in self.leaks():
            f = self.secret[m]
            out.append('secret_jit left %d secret words under %s: %s%s' % (
                f.count, m, ', '.join(f.where[:8]),
                ' ...' if len(f.where) > 8 else ''))
        return '\n'.join(out)
