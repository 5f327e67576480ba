#!/usr/bin/env bash
# Run the AArch64 test selection under qemu-aarch64 (builds the root first if
# needed).  Usage: bash tools/aarch64/test.sh [extra pytest arguments]
# Exit code: pytest's, except that "no tests collected" (5) is a failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"
bash "$HERE/build-root.sh"

# The files that hold AArch64 tests; others import x86-only or binary test
# dependencies (hypothesis, cryptography, capstone) the root does not have.
FILES=(tests/test_aarch64.py tests/test_stack_bound_aarch64.py)

# The host's Python with secretjit (the venv this runs in), for the test that
# compares a cross JIT object with the qemu JIT's (tests/test_aarch64.py).
if [ -n "${VIRTUAL_ENV:-}" ]; then
    export SECRETJIT_HOST_PYTHON="${SECRETJIT_HOST_PYTHON:-$VIRTUAL_ENV/bin/python}"
fi

set +e
bash "$HERE/run.sh" -m pytest -m aarch64 -q -p no:cacheprovider "${FILES[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no AArch64 tests: treating as a failure" >&2
    exit 1
fi
exit "$rc"
