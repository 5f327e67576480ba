"""A non-recursive stable merge sort for the secret target.

numba implements ``kind='mergesort'``/``'stable'`` of ``ndarray.sort``,
``ndarray.argsort`` and ``np.argsort`` with ``numba.misc.mergesort``, a
recursive top-down merge sort, which the stack bound must refuse
(``bounded-stack``: the depth of data-dependent recursion is not in the
machine code).  Secret kernels get this bottom-up merge sort instead: the
same runs of insertion sort (numba's ``SMALL_MERGESORT`` elements), then
passes that merge neighbouring runs of doubling width, with a workspace of
``n // 2`` items as numba's (each merge copies its shorter side out).  It is
stable and uses numba's own comparison (``lessthan``, NaNs last as NumPy),
so it gives NumPy's result: a stable sort under one strict weak order has a
single answer.

The substitution happens where the secret typing context re-targets plain
dispatchers (:func:`secretjit.target._retarget`): numba's lowering of the
sort methods calls the entry dispatcher of ``numba.misc.mergesort``
(``mergesort`` or ``argmergesort``), which is swapped for the one here, built
with the same ``lessthan``.  Plain numba code keeps numba's sort.
"""

import inspect
import weakref

import numpy as np
from numba.core.decorators import jit
from numba.core.dispatcher import Dispatcher
from numba.misc import mergesort as _numba_mergesort

SMALL = _numba_mergesort.SMALL_MERGESORT

_replacements = weakref.WeakKeyDictionary()


_INNER = dict(nopython=True, no_cpython_wrapper=True, _nrt=False)


def make_bottom_up_mergesort(lessthan, is_argsort):
    """Entry dispatcher sorting with ``lessthan(a, b, vals)``, no recursion."""
    bottom_up = _make_bottom_up(lessthan, _make_merge(lessthan))
    if is_argsort:
        @jit(nopython=True, no_cpython_wrapper=True)
        def argmergesort(arr):
            "Out-of-place"
            idxs = np.arange(arr.size)
            ws = np.empty(arr.size // 2, dtype=idxs.dtype)
            bottom_up(idxs, arr, ws)
            return idxs
        return argmergesort

    @jit(nopython=True, no_cpython_wrapper=True)
    def mergesort(arr):
        "Inplace"
        ws = np.empty(arr.size // 2, dtype=arr.dtype)
        bottom_up(arr, None, ws)
        return arr
    return mergesort


def _make_merge(lessthan):
    """``merge(arr, vals, ws, lo, mid, hi)`` of two neighbouring sorted runs."""
    @jit(**_INNER)
    def merge(arr, vals, ws, lo, mid, hi):
        """Merge the sorted runs arr[lo:mid] and arr[mid:hi] in place."""
        if mid - lo <= hi - mid:
            # Left run to the workspace, merge forwards.
            n_left = mid - lo
            for t in range(n_left):
                ws[t] = arr[lo + t]
            i, j, k = 0, mid, lo
            while i < n_left and j < hi:
                if lessthan(arr[j], ws[i], vals):
                    arr[k] = arr[j]
                    j += 1
                else:                   # ties: the left item first (stable)
                    arr[k] = ws[i]
                    i += 1
                k += 1
            while i < n_left:
                arr[k] = ws[i]
                i += 1
                k += 1
        else:
            # Right run to the workspace, merge backwards.
            n_right = hi - mid
            for t in range(n_right):
                ws[t] = arr[mid + t]
            i, j, k = mid - 1, n_right - 1, hi - 1
            while i >= lo and j >= 0:
                if lessthan(ws[j], arr[i], vals):
                    arr[k] = arr[i]
                    i -= 1
                else:                   # ties: the right item last (stable)
                    arr[k] = ws[j]
                    j -= 1
                k -= 1
            while j >= 0:
                arr[k] = ws[j]
                j -= 1
                k -= 1
    return merge


def _make_bottom_up(lessthan, merge):
    """``bottom_up(arr, vals, ws)``: insertion-sorted runs, then merge passes."""
    @jit(**_INNER)
    def bottom_up(arr, vals, ws):
        """Sort ``arr`` in place; ``ws`` holds at least ``arr.size // 2``."""
        n = arr.size
        for start in range(0, n, SMALL):
            stop = min(start + SMALL, n)
            for i in range(start + 1, stop):
                j = i
                while j > start and lessthan(arr[j], arr[j - 1], vals):
                    arr[j - 1], arr[j] = arr[j], arr[j - 1]
                    j -= 1
        width = SMALL
        while width < n:
            lo = 0
            while n - lo > width:
                mid = lo + width
                hi = mid + min(width, n - mid)
                merge(arr, vals, ws, lo, mid, hi)
                lo = hi
            if width > n - width:       # the next pass would not merge
                break
            width *= 2
    return bottom_up


def _numba_lessthan(disp):
    """numba's comparison inside one of its mergesort entry dispatchers."""
    inner = inspect.getclosurevars(disp.py_func).nonlocals['argmergesort_inner']
    return inspect.getclosurevars(inner.py_func).nonlocals['lessthan']


def replace_recursive(val):
    """The non-recursive sort for numba's mergesort entry ``val``, else ``val``."""
    if not isinstance(val, Dispatcher):
        return val
    fn = val.py_func
    if (getattr(fn, '__module__', None) != _numba_mergesort.__name__
            or fn.__name__ not in ('mergesort', 'argmergesort')):
        return val
    ours = _replacements.get(val)
    if ours is None:
        ours = make_bottom_up_mergesort(_numba_lessthan(val),
                                        is_argsort=fn.__name__ == 'argmergesort')
        _replacements[val] = ours
    return ours
