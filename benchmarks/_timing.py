"""The timing loop and command line the benchmark scripts share (``run.py``, ``api.py``, ``hardened.py``)."""

import argparse
import json
import statistics
import time
import timeit


def interleaved(fns, rounds, batch_seconds=0.02, timer=time.perf_counter, autorange=True,
                samples=None):
    """Median seconds per call of each no-argument function, sampled A B C A B C ...

    One batch is sized so that the slowest function takes about ``batch_seconds``:
    from ``timeit``'s ``autorange`` (>= 0.2 s per function), or, with
    ``autorange=False``, from 3 warm-up calls (first calls compile) and 5 timed
    ones.  Then every round times one batch of each function in turn with
    ``timer`` (``time.thread_time`` leaves out the time slices other processes get).
    Returns ``({name: median seconds per call}, calls per batch)``; a dict
    passed as ``samples`` receives every round's seconds per call, by name.
    """
    timers = {k: timeit.Timer(f, timer=timer) for k, f in fns.items()}
    per_call = []
    for t in timers.values():
        if autorange:
            number, seconds = t.autorange()
        else:
            t.timeit(3)
            number, seconds = 5, t.timeit(5)
        per_call.append(seconds / number)
    n = max(1, int(batch_seconds / max(per_call)))
    got = {k: [] for k in fns}
    for _ in range(rounds):
        for k, t in timers.items():
            got[k].append(t.timeit(number=n) / n)
    if samples is not None:
        samples.update(got)
    return {k: statistics.median(v) for k, v in got.items()}, n


def main(argv, description, collect, markdown, quick_help):
    """``script [--quick] [--json FILE]``: print ``markdown(collect(quick))``, save the data."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--quick', action='store_true', help=quick_help)
    p.add_argument('--json', help='also write the numbers to this file')
    args = p.parse_args(argv)
    data = collect(args.quick)
    print(markdown(data))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(data, f, indent=1)
