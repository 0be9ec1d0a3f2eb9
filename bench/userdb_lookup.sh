#!/bin/sh
# Lookup benchmark of userdb_file at 100,000 accounts (load time, ns per
# lookup for hits and misses). Run from a build directory after `make
# check` (which builds bench/userdb_lookup):
#   sh ../../bench/userdb_lookup.sh [ACCOUNTS] [LOOKUPS]
set -e
exec ./bench/userdb_lookup "${1:-100000}" "${2:-1000000}"
