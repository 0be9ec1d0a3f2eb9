#!/bin/sh
# Memory of petreld with a crowd of SMTP sessions parked in DATA (issue 9):
# runs modules/smtp_in/tests/test_smtp_crowd.py's crowd test for several crowd
# sizes and prints petreld's RSS growth for each. Every session sends
# 300 KB of a message it never finishes.
#   bench/crowd_memory.sh [PREFIX [BUILD]]   (default: _build/gcc)
# PREFIX is an install prefix, BUILD the build tree with the test modules.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${2:-$top/_build/gcc}
prefix=${1:-$build/inst}
for n in ${CROWDS:-500 1000 2000 4000}; do
    PETREL_CROWD=$n PETREL_PREFIX=$prefix PETREL_TEST_MODULES=$build/tests/modules/.libs \
        /usr/bin/python3 -m pytest -q -s -p no:cacheprovider \
        "$top/modules/smtp_in/tests/test_smtp_crowd.py" -k crowd_parked 2>&1 |
        grep -E '^RSS growth|passed|failed'
done
