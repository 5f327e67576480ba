"""The audit's human table, its JSON report and ``python -m secretjit audit``."""

import json
import sys
from dataclasses import asdict

from .. import stack_bound
from .elf import AuditError
from .targets import audit_dispatcher, audit_library, fresh_copy


def table(results, out=print):
    out('%-44s %-9s %-30s %-8s %s' % ('boundary', 'registers', 'scrub: scrubbed/needed/stack_bound',
                                      'calls', 'verdict'))
    for r in results:
        out('%-44s %-9s %-30s %-8s %s' % (
            stack_bound.readable(r.name)[:44],
            'ok' if r.registers_ok else 'MISSING',
            '%s %d/%d/%d' % ('ok' if r.scrub_ok else 'SHORT', r.depth_scrubbed,
                             r.depth_required, r.stack_bound_depth),
            'ok' if r.calls_ok else 'UNLISTED', 'PASS' if r.ok else 'FAIL'))
        if r.registers_missing:
            out('    registers not zeroed on some path to ret: %s'
                % ', '.join(r.registers_missing))
        for p in r.scrub_problems:
            out('    scrub: %s' % p)
        for u in r.unlisted:
            out('    call leaves the audited code: %s' % u)


def report(results):
    """JSON-ready dict of the results."""
    return {'ok': bool(results) and all(r.ok for r in results),
            'boundaries': [dict(asdict(r), ok=r.ok) for r in results]}


def _audit_module(target):
    """Compile and audit every secret kernel of ``MODULE.py[:KERNEL]``."""
    from numba import typeof

    from .. import SecretDispatcher
    from ..testing import samples_of
    from ..testing.verify import VerifyError, load_module
    path, _, only = target.partition(':')
    try:
        module = load_module(path)
    except VerifyError as exc:
        raise AuditError(str(exc)) from None
    results = []
    for name, value in vars(module).items():
        if not isinstance(value, SecretDispatcher) or (only and name != only):
            continue
        sigs = [tuple(typeof(a) for a in args) for args in samples_of(value, module)]
        sigs += [s for s in value.signatures if s not in sigs]
        if not sigs:
            print('audit: %s: no sample arguments and no compiled '
                  'signature (declare them with secretjit.testing.'
                  'sample_args): skipped' % name, file=sys.stderr)
            continue
        print('audit: compiling %s (%d signatures)' % (name, len(sigs)),
              file=sys.stderr, flush=True)
        results += audit_dispatcher(fresh_copy(value, sigs))
    return results


def main(target, json_path=None):
    """``python -m secretjit audit``: exit 0 when every boundary passes."""
    try:
        if target.endswith('.so') or '.so.' in target:
            results = audit_library(target)
        else:
            results = _audit_module(target)
    except (AuditError, OSError) as exc:
        print('secretjit audit: error: %s' % exc, file=sys.stderr)
        return 2
    if not results:
        print('secretjit audit: error: no boundary found in %s' % target, file=sys.stderr)
        return 2
    table(results)
    rep = report(results)
    if json_path == '-':
        print(json.dumps(rep, indent=1))
    elif json_path:
        with open(json_path, 'w') as fh:
            json.dump(rep, fh, indent=1)
    return 0 if rep['ok'] else 1
