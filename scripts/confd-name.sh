#!/bin/sh
# confd-name.sh N FILE: the conf.d name of the N-th in-tree snippet,
# e.g. "2 modules/auth/auth.conf" -> 20-auth.conf (conf.d is read in order).
printf '%02d-%s\n' "$(($1 * 10))" "$(basename "$2")"
