#!/bin/bash
# SMTP receiving: Petrel against the Postfix baseline, on this machine, with
# the same client (../shared/bench/smtp_load.py, engine smtp-source), over
# loopback only. Every run sends N messages (one per SMTP connection) and is
# timed until all N are *stored*, counted as files in the Maildirs.
#
#   bench/smtp_bench.sh [OUT]        as root, from the project root, after
#                                    `make install` into PETREL_PREFIX
#
# Environment (all optional):
#   PETREL_PREFIX  install prefix holding sbin/petreld, bin/petrelctl and
#                  lib/petrel/modules (default $PWD/_build/gcc/inst)
#   N              messages per run (default 10000)
#   REPEATS        runs per case and server (default 1)
#   OUT            directory for the logs and the table; the first argument
#                  wins (default $PWD/_build/bench-smtp/<timestamp>)
#   CASES          "CONCURRENCY:BYTES ..." (default "1:4096 10:4096 50:4096 10:102400")
#   SIDES          "postfix petrel" (default); "postfix" measures the baseline
#                  alone, "petrel" Petrel alone
#   PORT_BASE      petrelctl init --port-base (default 31000: SMTP on 127.0.0.1:31025)
#   SHARED_BENCH   the shared harness (default <project>/../shared/bench)
#   PY             the Python for smtp_load.py (default python3)
#   SMTP_MODULE    the module with the MX listener on PORT_BASE+25 (default smtp_in)
#   KEEP_INSTANCE  1 keeps the Petrel instance directory after the run
#   PETREL_FTS     false: Petrel's storage without the full-text index (and
#                  its background indexing), to measure what indexing costs
#
# What it does: (1) starts the Postfix peer (peer/setup_peer.sh 500, which
# also starts its Dovecot; an already running peer is used and left
# running); (2) writes a Petrel instance with `petrelctl init` in a
# temporary directory under /tmp, adds user1..user500@bench.test and starts
# `petreld --foreground`; both servers get one smoke message first;
# (3) for each case and repeat runs Postfix, then Petrel, each from empty
# mailboxes (Postfix: peer/reset_mail.sh with Postfix running, as in the
# baseline; Petrel: stop petreld, delete data/ but the account file, start
# again); (4) prints a Markdown table of stored msg/s and
# the ratio, also written to OUT/table.md; (5) stops what it started.
# OUT/results.log has the raw output in run_baseline.sh's format, so
# ../shared/bench/summarize.py reads it too.
#
# Petrel runs with its default durability (storage fsync = true, index_sync =
# full); the script refuses to run if the instance says otherwise.
set -eu -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PETREL_PREFIX=${PETREL_PREFIX:-$PWD/_build/gcc/inst}
N=${N:-10000}
REPEATS=${REPEATS:-1}
OUT=${1:-${OUT:-$PWD/_build/bench-smtp/$(date +%Y%m%d-%H%M%S)}}
CASES=${CASES:-"1:4096 10:4096 50:4096 10:102400"}
SIDES=${SIDES:-"postfix petrel"}
PORT_BASE=${PORT_BASE:-31000}
SHARED_BENCH=${SHARED_BENCH:-$top/../shared/bench}
PY=${PY:-python3}
KEEP_INSTANCE=${KEEP_INSTANCE:-0}

HOST=127.0.0.1 # loopback only, on purpose: not configurable
DOMAIN=bench.test
USERS=500
PEER=/tmp/peer
PEER_PORT=2525
PEER_MAILDIRS=$PEER/mail/$DOMAIN
SMTP_MODULE=${SMTP_MODULE:-smtp_in} # the module that owns the MX listener
LOAD_TIMEOUT=600   # smtp_load.py --timeout (sending)
VERIFY_TIMEOUT=300 # smtp_load.py --verify-timeout (waiting for storage)
START_TIMEOUT=30   # petreld start-up, seconds
STOP_TIMEOUT=20    # petreld graceful stop (its shutdown_timeout is 10 s)

die() {
    printf 'smtp_bench: %s\n' "$*" >&2
    exit 1
}
say() { printf '%s\n' "$*"; }
has_side() { case " $SIDES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# --- checks before anything starts ------------------------------------------

if has_side postfix && [ "$(id -u)" -ne 0 ]; then
    die "run as root: the Postfix peer (setup_peer.sh) needs it"
fi
case "$N$REPEATS$PORT_BASE" in *[!0-9]*) die "N, REPEATS and PORT_BASE must be numbers" ;; esac
if [ "$N" -lt 1 ] || [ "$REPEATS" -lt 1 ]; then die "N and REPEATS must be at least 1"; fi
for s in $SIDES; do
    case $s in postfix | petrel) ;; *) die "SIDES: unknown side '$s' (postfix, petrel)" ;; esac
done
[ -n "${SIDES// /}" ] || die "SIDES is empty"
for spec in $CASES; do
    case $spec in [0-9]*:[0-9]*) ;; *) die "CASES: '$spec' is not CONCURRENCY:BYTES" ;; esac
done
[ -f "$SHARED_BENCH/smtp_load.py" ] || die "no $SHARED_BENCH/smtp_load.py (set SHARED_BENCH)"
command -v "$PY" >/dev/null || die "no $PY (set PY)"
command -v timeout >/dev/null || die "no timeout(1) (coreutils)"
[ -x /usr/sbin/smtp-source ] || command -v smtp-source >/dev/null ||
    die "smtp-source missing: apt-get install --no-install-recommends postfix (see bench/SMTP_BENCH_NOTES.md)"
SMTP_PORT=$((PORT_BASE + 25))
petreld=$PETREL_PREFIX/sbin/petreld
petrelctl=$PETREL_PREFIX/bin/petrelctl
moddir=$PETREL_PREFIX/lib/petrel/modules
if has_side petrel; then
    if [ ! -x "$petreld" ] || [ ! -x "$petrelctl" ]; then
        die "no sbin/petreld and bin/petrelctl under PETREL_PREFIX=$PETREL_PREFIX (build and make install first)"
    fi
    [ "$SMTP_PORT" -le 65535 ] || die "PORT_BASE too high"
    [ -f "$moddir/$SMTP_MODULE.so" ] ||
        die "Petrel side: no SMTP module in this build: $moddir has no $SMTP_MODULE.so." \
            "Build and install a Petrel that includes modules/$SMTP_MODULE into PETREL_PREFIX," \
            "or measure the Postfix baseline alone with SIDES=postfix."
fi

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/results.log
: >"$LOG"

# --- helpers ----------------------------------------------------------------

job=""          # the bounded foreground command, if one is running
petrel_pid=""   # petreld, while it runs
peer_started=0  # 1: we started the Postfix peer, so we stop it
tmp=""          # the Petrel instance's parent directory
inst=""         # the Petrel instance
last_petrel_run="" # label of the last Petrel run, for petrel_leftovers
durability=""    # the instance's sync settings, for the output

# Run a command with a time limit, in the background so that Ctrl-C and
# SIGTERM reach the script at once (the trap then stops the job).
bounded() { # SECONDS CMD...
    local secs=$1 rc=0
    shift
    timeout -k 10 "$secs" "$@" &
    job=$!
    wait "$job" || rc=$?
    job=""
    return "$rc"
}

# 0 if 127.0.0.1:PORT answers with an SMTP greeting (220) within WAIT seconds.
greets() { # PORT WAIT
    "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        line = s.recv(512)
        s.sendall(b"QUIT\r\n")
        s.close()
        sys.exit(0 if line.startswith(b"220") else 2)
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.2)
PYEOF
}

listening() { # PORT: something listens on 127.0.0.1:PORT (or on all addresses)
    "$PY" - "$1" <<'PYEOF' 2>/dev/null
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except OSError:
    sys.exit(1)
PYEOF
}

cpu() { head -1 /proc/stat | awk '{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}'; }

# --- Postfix peer -------------------------------------------------------------

peer_running() { postfix -c "$PEER/postfix" status >/dev/null 2>&1; }

peer_start() {
    if peer_running; then
        say "Postfix peer: already running (postfix -c $PEER/postfix); using it and leaving it running"
    else
        say "Postfix peer: starting ($SHARED_BENCH/peer/setup_peer.sh $USERS, log $OUT/peer-setup.log)"
        bounded 600 "$SHARED_BENCH/peer/setup_peer.sh" "$USERS" >"$OUT/peer-setup.log" 2>&1 ||
            die "setup_peer.sh failed, see $OUT/peer-setup.log"
        peer_started=1
    fi
    greets "$PEER_PORT" 10 ||
        die "the Postfix peer does not answer on $HOST:$PEER_PORT (see $PEER/log/postfix.log)"
}

peer_reset() { bounded 300 "$SHARED_BENCH/peer/reset_mail.sh" >>"$OUT/peer-setup.log" 2>&1; }

# --- Petrel instance -----------------------------------------------------------

petrel_conf() { echo "$inst/petrel.conf"; }
ctl() { timeout 30 "$petrelctl" --config "$(petrel_conf)" "$@"; }

no_listener() { # LOGFILE
    {
        echo "Petrel has no SMTP listener on $HOST:$SMTP_PORT (PORT_BASE + 25)."
        echo "Modules petreld loaded ('petrelctl modules'):"
        ctl modules 2>&1 | sed 's/^/    /' || true
        echo "Last lines of its log ($1):"
        tail -n 15 "$1" 2>/dev/null | sed 's/^/    /' || true
        echo "Is the SMTP module ($SMTP_MODULE) built and installed into $moddir, and enabled by"
        echo "a conf.d file written by this petrelctl? If it has not landed yet, measure the"
        echo "baseline alone with SIDES=postfix."
    } >&2
    exit 1
}

petrel_create() {
    if listening "$SMTP_PORT"; then
        die "something already listens on $HOST:$SMTP_PORT; choose another PORT_BASE"
    fi
    # Under /tmp, like the peer's Maildirs (same file system), and traversable
    # by the user petreld drops to.
    tmp=$(mktemp -d /tmp/petrel-smtp-bench.XXXXXX)
    chmod 755 "$tmp"
    inst=$tmp/inst
    timeout 60 "$petrelctl" init "$inst" --domain "$DOMAIN" --port-base "$PORT_BASE" \
        --module-path "$moddir" >"$OUT/petrel-init.log" 2>&1 ||
        die "petrelctl init failed, see $OUT/petrel-init.log"
    grep -qs "\"$SMTP_MODULE\"" "$inst"/conf.d/*.conf ||
        die "Petrel side: petrelctl init wrote no conf.d file for $SMTP_MODULE (conf.d: $(cd "$inst/conf.d" && echo *))." \
            "This petrelctl predates the SMTP module; rebuild and install, or use SIDES=postfix."

    # Durability stays at the defaults: refuse anything else.
    local f
    f=$(grep -ls '"storage"' "$inst"/conf.d/*.conf | head -1)
    [ -n "$f" ] || die "the instance has no storage conf.d file"
    grep -Eq '^[[:space:]]*fsync[[:space:]]*=[[:space:]]*true' "$f" ||
        die "storage fsync is not true in $f: this benchmark runs with durable storage only"
    if [ "${PETREL_FTS:-true}" = false ]; then
        sed -i 's/^\([[:space:]]*fts[[:space:]]*=[[:space:]]*\)true;/\1false;/' "$f"
        grep -Eq '^[[:space:]]*fts[[:space:]]*=[[:space:]]*false;' "$f" || die "cannot set fts = false in $f"
    fi

    # 500 accounts. `petrelctl account add` hashes a password each time (slow
    # and useless here: nobody logs in), so append the accounts to a copy of
    # the account file with the demo account's hash, and rename it into
    # place (docs/userdb_file.md, "Editing safely"). cp -p keeps owner, group
    # and mode.
    local users=$inst/data/users hash i
    hash=$(awk -v a="demo@$DOMAIN" '$1 == "account" && $2 == a { print $3 }' "$users")
    [ -n "$hash" ] || die "no demo account in $users to borrow a password hash from"
    cp -p "$users" "$users.bench"
    for i in $(seq 1 "$USERS"); do
        printf 'account user%d@%s %s\n' "$i" "$DOMAIN" "$hash"
    done >>"$users.bench"
    mv "$users.bench" "$users"
    local n
    n=$(ctl account list "$DOMAIN" | grep -c "^user[0-9]*@$DOMAIN ") || true
    [ "$n" = "$USERS" ] || die "the account file has $n of $USERS bench accounts after the edit"
    say "Petrel instance: $inst (SMTP on $HOST:$SMTP_PORT, $USERS accounts)"
}

petrel_start() { # LOG-NAME
    local plog=$OUT/$1 i
    if listening "$SMTP_PORT"; then
        die "something already listens on $HOST:$SMTP_PORT before petreld starts; choose another PORT_BASE"
    fi
    "$petreld" --config "$(petrel_conf)" --foreground </dev/null >"$plog" 2>&1 &
    petrel_pid=$!
    for i in $(seq $((START_TIMEOUT * 5))); do
        grep -Eq 'petreld [^ ]+ started:' "$plog" && break
        if ! kill -0 "$petrel_pid" 2>/dev/null; then
            petrel_pid=""
            tail -n 20 "$plog" >&2
            die "petreld exited during start-up, see $plog"
        fi
        sleep 0.2
    done
    grep -Eq 'petreld [^ ]+ started:' "$plog" || die "petreld did not start within ${START_TIMEOUT}s, see $plog"
    grep -q 'fsync = false' "$plog" && die "petreld runs with fsync = false (see $plog); refusing"
    greets "$SMTP_PORT" 10 || no_listener "$plog"
}

petrel_stop() {
    [ -n "$petrel_pid" ] || return 0
    local i
    kill -TERM "$petrel_pid" 2>/dev/null || true
    for i in $(seq $((STOP_TIMEOUT * 5))); do
        kill -0 "$petrel_pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$petrel_pid" 2>/dev/null; then
        echo "smtp_bench: petreld (pid $petrel_pid) did not stop within ${STOP_TIMEOUT}s: killed" >&2
        kill -KILL "$petrel_pid" 2>/dev/null || true
    fi
    wait "$petrel_pid" 2>/dev/null || true
    petrel_pid=""
}

# The storage module logs "maildir store at ROOT (index sync MODE)".
petrel_mail_root() {
    local root
    root=$(sed -n 's/.*maildir store at \(.*\) (index sync .*/\1/p' "$OUT/petreld-start.log" | tail -1)
    [ -n "$root" ] || root=$inst/data/mail
    echo "$root"
}

# After a run (petreld stopped): say if files were left in the data
# directory's queue, i.e. mail accepted but not delivered when the run ended.
petrel_leftovers() {
    local q=$inst/data/queue n
    [ -d "$q" ] && [ -n "$last_petrel_run" ] || return 0
    n=$(find "$q" -type f | wc -l)
    if [ "$n" -gt 0 ]; then
        say "  warning: $n files left in $q after $last_petrel_run (accepted, not delivered)"
    fi
}

# Each Petrel run starts from a fresh data directory: petreld stopped, all
# of data/ deleted but the account file (mail, queue, any module state), and
# petreld started again.
petrel_reset() { # LOG-NAME
    petrel_stop
    petrel_leftovers
    case $petrel_root in
        "$inst"/data/?*) ;;
        *) die "the Petrel mail root $petrel_root is outside $inst/data: not deleting it" ;;
    esac
    find "$inst/data" -mindepth 1 -maxdepth 1 ! -name users ! -name users.lock -exec rm -rf {} +
    petrel_start "$1"
}

# --- the table -----------------------------------------------------------------

print_table() {
    grep -q '^RESULT ' "$LOG" 2>/dev/null || return 0
    local dur="Postfix: its defaults (queue file and Maildir file fsync'd)."
    if has_side petrel; then
        dur="Petrel: ${durability:-?} (the defaults: every message synced before it is acknowledged); $dur"
    fi
    "$PY" - "$LOG" "$N" "$dur" <<'PYEOF' | tee "$OUT/table.md"
import json, re, statistics, sys
log, n, dur = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {}    # (c, size) -> side -> [result]
order = []
cur = None
for line in open(log):
    m = re.match(r"### smtp-(postfix|petrel)-c(\d+)-s(\d+)-r(\d+): ", line)
    if m:
        cur = (m.group(1), int(m.group(2)), int(m.group(3)))
        continue
    m = re.match(r"CPU smtp-(postfix|petrel)-c\d+-s\d+-r\d+ busy=(\d+)%", line)
    if m and cur and runs.get(cur[1:], {}).get(cur[0]):
        runs[cur[1:]][cur[0]][-1]["busy"] = int(m.group(2))
        continue
    if line.startswith("RESULT ") and cur:
        key = cur[1:]
        if key not in runs:
            runs[key] = {}
            order.append(key)
        runs[key].setdefault(cur[0], []).append(json.loads(line[7:]))

def size(b):
    return "%d KB" % (b // 1024) if b % 1024 == 0 else "%d B" % b

def side(rs):
    """(median stored msg/s or None, cell text, busy text, problems)"""
    if not rs:
        return None, "–", "–", []
    vals = [r.get("stored_per_s") for r in rs]
    bad = [r for r in rs if not r.get("all_stored") or r.get("send_errors")]
    probs = ["%s: stored %s of %s, %s send errors" % (r.get("label"), r.get("stored"), r.get("messages"),
                                                       r.get("send_errors")) for r in bad]
    nums = [v for v in vals if isinstance(v, (int, float))]
    med = statistics.median(nums) if nums else None
    cell = "%.0f" % med if med is not None else "n/a"
    if len(rs) > 1:
        cell += " (%s)" % ", ".join("%s" % v for v in vals)
    if bad:
        cell += " !"
    busy = ", ".join(str(r["busy"]) for r in rs if "busy" in r) or "–"
    return med, cell, busy, probs

print("| case | Postfix stored msg/s | Petrel stored msg/s | Petrel / Postfix | machine CPU busy %, Postfix / Petrel |")
print("|---|---|---|---|---|")
problems = []
for c, s in order:
    pm, pcell, pbusy, pp = side(runs[(c, s)].get("postfix"))
    qm, qcell, qbusy, qp = side(runs[(c, s)].get("petrel"))
    ratio = "%.2f" % (qm / pm) if pm and qm else "–"
    print("| %s, c=%d | %s | %s | %s | %s / %s |" % (size(s), c, pcell, qcell, ratio, pbusy, qbusy))
    problems += pp + qp
print()
print("%d messages a run, one per SMTP connection (smtp_load.py, engine %s), from empty mailboxes. "
      "Stored msg/s: messages counted in the Maildirs divided by the time from the start to the newest "
      "stored file. Medians; with several runs each run follows in brackets. Durability: %s"
      % (n, "/".join(sorted({r.get("engine", "?") for v in runs.values() for rs in v.values() for r in rs})),
         dur))
if problems:
    print()
    print("! not every message stored, or send errors:")
    for p in problems:
        print("  - " + p)
PYEOF
}

# --- clean-up ------------------------------------------------------------------

cleanup() {
    local rc=$?
    set +e
    exec 1>&3 2>&4 # the trap may fire inside a redirected command
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C does not cut the clean-up short (it is bounded)
    if [ -n "$job" ]; then
        kill -TERM "$job" 2>/dev/null
        wait "$job" 2>/dev/null
    fi
    petrel_stop
    if [ "$peer_started" = 1 ]; then
        say "Stopping the Postfix peer"
        timeout 60 "$SHARED_BENCH/peer/stop_peer.sh" >>"$OUT/peer-setup.log" 2>&1
    fi
    if [ -n "$tmp" ]; then
        if [ "$KEEP_INSTANCE" = 1 ]; then
            say "Petrel instance kept: $inst"
        else
            rm -rf "$tmp"
        fi
    fi
    if [ "$rc" -ne 0 ]; then
        print_table >/dev/null 2>&1 # whatever was measured, in OUT/table.md
        say "smtp_bench: stopped (status $rc); logs in $OUT$([ -f "$OUT/table.md" ] && echo ", partial table in $OUT/table.md")" >&2
    fi
    exit "$rc"
}
exec 3>&1 4>&2
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- (1) + (2): start both servers ---------------------------------------------

say "SMTP benchmark: N=$N REPEATS=$REPEATS cases: $CASES; sides: $SIDES; logs in $OUT"
if has_side postfix; then
    peer_start
fi
if has_side petrel; then
    petrel_create
    petrel_start petreld-start.log
    petrel_root=$(petrel_mail_root)
    # Every *sync* setting of the instance, per module: "storage: fsync=true index_sync=full".
    durability=$(awk '
        FNR == 1 { if (line != "") print line; line = "" }
        /^[[:space:]]*module[[:space:]]*=/ { m = $0; gsub(/.*=[[:space:]]*"|".*/, "", m) }
        /^[[:space:]]*[a-z_]*sync[a-z_]*[[:space:]]*=/ {
            v = $0; sub(/#.*/, "", v); gsub(/[[:space:]";]/, "", v)
            line = (line == "" ? m ":" : line) " " v }
        END { if (line != "") print line }' "$inst"/conf.d/*.conf | paste -sd ';' - | sed 's/;/; /g')
    say "Petrel durability: ${durability:-?} (defaults of petrelctl init, not changed by this script)"
fi

{
    echo "date: $(date -u)"
    uname -a
    echo "cpus: $(nproc)"
    echo "python: $("$PY" --version 2>&1)"
    echo "postfix: $(postconf -d -h mail_version 2>/dev/null)"
    echo "smtp-source: $(command -v smtp-source || echo /usr/sbin/smtp-source)"
    if has_side petrel; then
        echo "petreld: $("$petreld" --version 2>&1)"
        echo "petrel tree: $(git -C "$top" rev-parse --short HEAD 2>/dev/null)" \
            "($(git -C "$top" status --porcelain 2>/dev/null | wc -l) changed/untracked paths)"
        echo "PETREL_PREFIX: $PETREL_PREFIX"
        echo "petrel SMTP: $HOST:$SMTP_PORT; mail root: $petrel_root"
        echo "petrel durability: $durability"
    fi
    echo "N=$N REPEATS=$REPEATS CASES=$CASES SIDES=$SIDES"
} >"$OUT/env.txt"
if has_side petrel; then
    mkdir -p "$OUT/petrel-conf.d"
    cp "$(petrel_conf)" "$OUT/petrel.conf"
    cp "$inst"/conf.d/* "$OUT/petrel-conf.d/"
fi

# smtp_load.py's command line, into the array cmd.
load_cmd() { # PORT MAILDIR-ROOT N CONCURRENCY BYTES LABEL [VERIFY-TIMEOUT]
    cmd=("$PY" "$SHARED_BENCH/smtp_load.py" --host "$HOST" --port "$1" --domain "$DOMAIN"
        --users "$USERS" -n "$3" -s "$5" -c "$4" --maildir-root "$2"
        --timeout "$LOAD_TIMEOUT" --verify-timeout "${7:-$VERIFY_TIMEOUT}" --label "$6")
}

# One message each, stored, before any measurement: a server that accepts
# but does not deliver fails here, not after the Postfix runs.
smoke() { # SIDE PORT MAILDIR-ROOT
    local rc=0 cmd
    load_cmd "$2" "$3" 1 1 4096 "smoke-$1" 30
    bounded 120 "${cmd[@]}" >"$OUT/smoke-$1.log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || die "$1: the smoke message (1 x 4 KB to user1@$DOMAIN on $HOST:$2) was not" \
        "stored in $3 within 30 s (status $rc); see $OUT/smoke-$1.log"
}
if has_side postfix; then
    smoke postfix "$PEER_PORT" "$PEER_MAILDIRS"
fi
if has_side petrel; then
    smoke petrel "$SMTP_PORT" "$petrel_root/$DOMAIN"
fi

# --- (3): the runs -------------------------------------------------------------

run() { # SIDE C SIZE R
    local side=$1 c=$2 s=$3 r=$4 label port root rc=0 c0 c1 cmd
    label=smtp-$side-c$c-s$s-r$r
    if [ "$side" = postfix ]; then
        peer_reset || die "peer/reset_mail.sh failed"
        port=$PEER_PORT root=$PEER_MAILDIRS
    else
        petrel_reset "petreld-$label.log"
        last_petrel_run=$label
        port=$SMTP_PORT root=$petrel_root/$DOMAIN
    fi
    sync
    sleep 2
    echo "### $label: smtp_load.py --port $port -n $N -s $s -c $c --maildir-root $root" >>"$LOG"
    echo "### $label" >>"$OUT/stderr.log"
    load_cmd "$port" "$root" "$N" "$c" "$s" "$label"
    c0=$(cpu)
    bounded $((LOAD_TIMEOUT + VERIFY_TIMEOUT + 60)) "${cmd[@]}" >>"$LOG" 2>>"$OUT/stderr.log" || rc=$?
    c1=$(cpu)
    echo "$c0 $c1" | awk -v l="$label" '{b=$3-$1; t=$4-$2; printf "CPU %s busy=%.0f%% (of all cores)\n", l, (t>0?100*b/t:0)}' >>"$LOG"
    grep -F "SMTP $label:" "$LOG" | tail -1 | sed "s/^SMTP /  $side /" || true
    [ "$rc" -eq 0 ] || say "  ($label: status $rc: not every message stored in time; see $OUT/stderr.log)"
}

for spec in $CASES; do
    c=${spec%%:*} s=${spec#*:}
    for r in $(seq 1 "$REPEATS"); do
        for side in postfix petrel; do
            if has_side "$side"; then
                run "$side" "$c" "$s" "$r"
            fi
        done
    done
done

# --- (4) + (5) ------------------------------------------------------------------

petrel_stop
petrel_leftovers
echo
print_table
echo
say "Raw output: $LOG (../shared/bench/summarize.py reads it); logs and configs: $OUT"
