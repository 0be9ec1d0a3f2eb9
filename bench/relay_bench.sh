#!/bin/bash
# Outbound relaying (issue 12): Petrel's smtp_out against Postfix, on this
# machine, over loopback only, same sink, same name server, same client.
#
#   bench/relay_bench.sh [OUT]      as root, from the project root, after
#                                   `make install` into PETREL_PREFIX
#
# Every run injects N messages of 4 KB payload over SMTP from 127.0.0.1
# (relay allowed: Petrel's smtp_in relay_networks, Postfix's mynetworks) to
# rcpt@d1..d50.relay.test, with smtp-source, one message per connection,
# INJECT_SESSIONS sessions at once, all 50 domains interleaved
# (bench/relay_run.py). Each domain has an MX record mx.dK.relay.test whose
# A record is 127.0.0.2, served by a dnsmasq this script starts on
# 127.0.0.1:53; Postfix's smtp-sink listens on 127.0.0.2:SINK_PORT and
# counts messages. A run is timed from the first injected message to the
# N-th message the sink has answered. Server CPU: a cgroup v1 cpuacct
# group per server start, so every Postfix process counts, exited ones
# too (for petreld also /proc/PID/stat, the same figure: one process).
#
# Environment (all optional):
#   PETREL_PREFIX   install prefix (default $PWD/_build/bench/inst)
#   N               messages per run (default 10000)
#   REPEATS         runs per case and server (default 2)
#   CONCURRENCIES   outbound connections for Postfix (default "1 20"):
#                   default_destination_concurrency_limit = C and
#                   smtp/relay maxproc = C in master.cf
#   PETREL_CASES    "C:RUNNER_JOBS ..." for Petrel (default "1:2 20:4 20:40"):
#                   smtp_out max_connections = max_per_destination = C,
#                   processing runner_jobs = RUNNER_JOBS (default 4).
#                   smtp_out takes C sessions plus 4*C waiting (at least
#                   256); a message handed to it beyond that is answered
#                   "busy" and the queue offers it again a second later
#   SIDES           "postfix petrel" (default), or one of them
#   INJECT_SESSIONS injecting SMTP sessions at once (default 10)
#   PORT_BASE       petrelctl init --port-base (default 33000: SMTP on 127.0.0.1:33025)
#   PF_PORT         Postfix smtpd on 127.0.0.1:PF_PORT (default 2625)
#   SINK_PORT       smtp-sink on 127.0.0.2:SINK_PORT (default 33925)
#   RUN_TIMEOUT     seconds a run may take (default 900)
#   KEEP            1 keeps the instances' directories
#
# Postfix gets the same name server as Petrel without touching the
# machine's /etc/resolv.conf: it runs in its own mount namespace
# (unshare -m) where a resolv.conf naming 127.0.0.1 is bind-mounted over
# /etc/resolv.conf; glibc's resolver only speaks to port 53, hence
# dnsmasq on 127.0.0.1:53. Postfix looks up the MX of each domain and the
# MX host's A record, and connects to smtp_tcp_port = SINK_PORT.
set -eu -o pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PETREL_PREFIX=${PETREL_PREFIX:-$PWD/_build/bench/inst}
N=${N:-10000}
REPEATS=${REPEATS:-2}
CONCURRENCIES=${CONCURRENCIES:-"1 20"}
PETREL_CASES=${PETREL_CASES:-"1:2 20:4 20:40"}
SIDES=${SIDES:-"postfix petrel"}
INJECT_SESSIONS=${INJECT_SESSIONS:-10}
PORT_BASE=${PORT_BASE:-33000}
PF_PORT=${PF_PORT:-2625}
SINK_PORT=${SINK_PORT:-33925}
RUN_TIMEOUT=${RUN_TIMEOUT:-900}
KEEP=${KEEP:-0}
OUT=${1:-${OUT:-$PWD/_build/bench-relay/$(date +%Y%m%d-%H%M%S)}}
PY=${PY:-python3}

HOST=127.0.0.1 # loopback only, on purpose
SINK_HOST=127.0.0.2
DNS_ADDR=127.0.0.1
DOMAINS=50
DOMAIN_FMT="d{}.relay.test"
SMTP_PORT=$((PORT_BASE + 25))
CPUACCT=/sys/fs/cgroup/cpuacct

die() {
    printf 'relay_bench: %s\n' "$*" >&2
    exit 1
}
say() { printf '%s\n' "$*"; }
has_side() { case " $SIDES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
listening() { ss -Htln "sport = :$2" | grep -q "$1:$2"; }

# --- checks -------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root (Postfix instance, dnsmasq on port 53, cgroups, mount namespace)"
for t in smtp-sink smtp-source postfix postconf dnsmasq unshare ss timeout; do
    command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || die "$t missing (apt-get install postfix dnsmasq)"
done
[ -d "$CPUACCT" ] || die "no cgroup v1 cpuacct hierarchy at $CPUACCT (needed to charge CPU to each server)"
petreld=$PETREL_PREFIX/sbin/petreld
petrelctl=$PETREL_PREFIX/bin/petrelctl
moddir=$PETREL_PREFIX/lib/petrel/modules
if has_side petrel; then
    [ -x "$petreld" ] && [ -x "$petrelctl" ] || die "no petreld/petrelctl under $PETREL_PREFIX"
    [ -f "$moddir/smtp_out.so" ] || die "no smtp_out.so in $moddir"
fi
ss -Hlun "sport = :53" | grep -q "$DNS_ADDR:53" && die "something listens on $DNS_ADDR:53 already"
listening "$SINK_HOST" "$SINK_PORT" && die "something listens on $SINK_HOST:$SINK_PORT"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/results.log
: >"$LOG"

# --- state for the clean-up ------------------------------------------------------

dns_pid=""
petrel_pid=""
pf_running=0
tmp=$(mktemp -d /tmp/relay-bench.XXXXXX)
chmod 755 "$tmp"
cgroups=()

cg_new() { # NAME -> prints the path
    local d=$CPUACCT/relay-bench-$$-$1
    mkdir "$d"
    cgroups+=("$d")
    echo "$d"
}
cg_remove() { # PATH: once its processes are gone
    local i
    for i in $(seq 50); do
        [ -z "$(cat "$1/cgroup.procs" 2>/dev/null)" ] && break
        sleep 0.1
    done
    rmdir "$1" 2>/dev/null || true
}

# --- dnsmasq --------------------------------------------------------------------

dns_start() {
    local args=(--keep-in-foreground --no-resolv --no-hosts --conf-file=/dev/null
        --port=53 --listen-address="$DNS_ADDR" --bind-interfaces --user=root --pid-file=
        --log-facility="$OUT/dnsmasq.log" --local-ttl=300 --local=/relay.test/
        --cache-size=0
        --mx-host=src.relay.test,mx.src.relay.test,10 --host-record=mx.src.relay.test,$SINK_HOST)
    local k
    for k in $(seq 1 $DOMAINS); do
        args+=(--mx-host=d$k.relay.test,mx.d$k.relay.test,10 --host-record=mx.d$k.relay.test,$SINK_HOST)
    done
    dnsmasq "${args[@]}" </dev/null >"$OUT/dnsmasq.out" 2>&1 &
    dns_pid=$!
    for k in $(seq 50); do
        grep -qs 'started, version' "$OUT/dnsmasq.log" && break
        kill -0 "$dns_pid" 2>/dev/null || { dns_pid=""; cat "$OUT/dnsmasq.out" >&2; die "dnsmasq exited"; }
        sleep 0.1
    done
    say "dnsmasq $dns_pid on $DNS_ADDR:53: MX of d1..d$DOMAINS.relay.test -> mx.dK.relay.test -> $SINK_HOST"
}

dns_stop() {
    [ -n "$dns_pid" ] || return 0
    kill -TERM "$dns_pid" 2>/dev/null || true
    wait "$dns_pid" 2>/dev/null || true
    dns_pid=""
}

# --- Postfix instance -------------------------------------------------------------

PF=$tmp/postfix
pf_create() {
    mkdir -p "$PF/conf" "$PF/spool" "$PF/lib" "$PF/log"
    chown postfix "$PF/lib"
    printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$DNS_ADDR" >"$PF/resolv.conf"
    cat >"$PF/conf/main.cf" <<EOF
# relay_bench.sh: a Postfix relaying everything from 127.0.0.0/8 by MX.
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/lib
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = relay-postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
# MX lookups through the resolver (dnsmasq, via the bind-mounted resolv.conf).
smtp_dns_support_level = enabled
smtp_host_lookup = dns
smtp_tcp_port = $SINK_PORT
smtp_connection_cache_on_demand = yes
default_destination_concurrency_limit = 20
maillog_file_prefixes = /tmp
maillog_file = $PF/log/postfix.log
EOF
    # The shared peer's master.cf: Debian's with chroot off everywhere.
    sed -e "s/^127\.0\.0\.1:2525 inet/$HOST:$PF_PORT inet/" \
        "$top/../shared/bench/peer/postfix/master.cf" >"$PF/conf/master.cf" 2>/dev/null ||
        die "no ../shared/bench/peer/postfix/master.cf"
    grep -q "^$HOST:$PF_PORT inet" "$PF/conf/master.cf" || die "could not set the smtpd listener in master.cf"
    touch "$PF/log/postfix.log"
    chmod 666 "$PF/log/postfix.log"
}

pf_cg=""
pf_start() { # CONCURRENCY
    local c=$1 i
    postconf -c "$PF/conf" -e "default_destination_concurrency_limit = $c"
    postconf -c "$PF/conf" -Me "smtp/unix=smtp unix - - n - $c smtp"
    postconf -c "$PF/conf" -Me "relay/unix=relay unix - - n - $c smtp -o syslog_name=postfix/\$service_name"
    listening "$HOST" "$PF_PORT" && die "something listens on $HOST:$PF_PORT"
    pf_cg=$(cg_new "postfix-c$c-$RANDOM")
    # Into the cgroup, then a private mount namespace with our resolv.conf;
    # master and every child it forks stay in both.
    sh -c 'echo $$ >"$1/cgroup.procs" && exec unshare -m --propagation private sh -c \
        "mount --bind \"\$0\" /etc/resolv.conf && exec postfix -c \"\$1\" start" "$2" "$3"' \
        sh "$pf_cg" "$PF/resolv.conf" "$PF/conf" >>"$OUT/postfix-start.log" 2>&1 ||
        die "postfix start failed, see $OUT/postfix-start.log"
    pf_running=1
    for i in $(seq 100); do
        listening "$HOST" "$PF_PORT" && break
        sleep 0.1
    done
    listening "$HOST" "$PF_PORT" || die "Postfix does not listen on $HOST:$PF_PORT"
}

pf_stop() {
    [ "$pf_running" = 1 ] || return 0
    postfix -c "$PF/conf" stop >>"$OUT/postfix-start.log" 2>&1 || true
    local i
    for i in $(seq 100); do
        [ -z "$(cat "$pf_cg/cgroup.procs" 2>/dev/null)" ] && break
        sleep 0.1
    done
    pf_running=0
    cg_remove "$pf_cg"
}

pf_leftovers() { # LABEL
    local n
    n=$(find "$PF/spool/incoming" "$PF/spool/active" "$PF/spool/deferred" "$PF/spool/maildrop" \
        -type f 2>/dev/null | wc -l)
    [ "$n" -eq 0 ] || say "  warning: $n queue files left in Postfix's queue after $1"
}

# --- Petrel instance -------------------------------------------------------------

inst=$tmp/petrel
ctl() { timeout 30 "$petrelctl" --config "$inst/petrel.conf" "$@"; }

petrel_create() {
    timeout 60 "$petrelctl" init "$inst" --domain bench.test --port-base "$PORT_BASE" \
        --module-path "$moddir" >"$OUT/petrel-init.log" 2>&1 || die "petrelctl init failed, see $OUT/petrel-init.log"
    local cd=$inst/conf.d
    grep -Eq '^[[:space:]]*fsync[[:space:]]*=[[:space:]]*true' "$cd/40-processing.conf" ||
        die "processing fsync is not true: this benchmark runs with the default durability only"
    sed -i -E 's/^([[:space:]]*relay_networks[[:space:]]*=).*/\1 [ "127.0.0.1" ];/' "$cd/60-smtp_in.conf"
    sed -i -E "s/^([[:space:]]*port[[:space:]]*=).*/\1 $SINK_PORT;/" "$cd/50-smtp_out.conf"
    grep -q "relay_networks = \[ \"127.0.0.1\" \]" "$cd/60-smtp_in.conf" || die "could not set relay_networks"
    grep -q "port = $SINK_PORT;" "$cd/50-smtp_out.conf" || die "could not set smtp_out's port"
    printf '\ndnr: {\n  servers = [ "%s:53" ];\n};\n' "$DNS_ADDR" >>"$inst/petrel.conf"
}

petrel_configure() { # CONCURRENCY RUNNER_JOBS
    local cd=$inst/conf.d
    sed -i -E "s/^([[:space:]]*max_connections[[:space:]]*=).*/\1 $1;/; s/^([[:space:]]*max_per_destination[[:space:]]*=).*/\1 $1;/" \
        "$cd/50-smtp_out.conf"
    sed -i -E "s/^([[:space:]]*runner_jobs[[:space:]]*=).*/\1 $2;/" "$cd/40-processing.conf"
    grep -q "max_per_destination = $1;" "$cd/50-smtp_out.conf" || die "could not set max_per_destination"
    grep -q "runner_jobs = $2;" "$cd/40-processing.conf" || die "could not set runner_jobs"
}

petrel_cg=""
petrel_start() { # LOG-NAME CG-NAME
    local plog=$OUT/$1 i
    listening "$HOST" "$SMTP_PORT" && die "something listens on $HOST:$SMTP_PORT"
    # A fresh data directory but the account file: no queue from an earlier run.
    find "$inst/data" -mindepth 1 -maxdepth 1 ! -name users ! -name users.lock -exec rm -rf {} +
    petrel_cg=$(cg_new "$2")
    sh -c 'echo $$ >"$1/cgroup.procs" && exec "$2" --config "$3" --foreground' \
        sh "$petrel_cg" "$petreld" "$inst/petrel.conf" </dev/null >"$plog" 2>&1 &
    petrel_pid=$!
    for i in $(seq 150); do
        grep -Eq 'petreld [^ ]+ started:' "$plog" && break
        kill -0 "$petrel_pid" 2>/dev/null || { petrel_pid=""; tail -n 20 "$plog" >&2; die "petreld exited, see $plog"; }
        sleep 0.2
    done
    grep -Eq 'petreld [^ ]+ started:' "$plog" || die "petreld did not start, see $plog"
    for i in $(seq 50); do
        listening "$HOST" "$SMTP_PORT" && break
        sleep 0.1
    done
    listening "$HOST" "$SMTP_PORT" || die "petreld does not listen on $HOST:$SMTP_PORT"
}

petrel_stop() {
    [ -n "$petrel_pid" ] || return 0
    local i
    kill -TERM "$petrel_pid" 2>/dev/null || true
    for i in $(seq 100); do
        kill -0 "$petrel_pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$petrel_pid" 2>/dev/null || true
    wait "$petrel_pid" 2>/dev/null || true
    petrel_pid=""
    cg_remove "$petrel_cg"
}

petrel_leftovers() { # LABEL
    local n
    n=$(find "$inst/data/queue/active" -type f 2>/dev/null | wc -l)
    [ "$n" -eq 0 ] || say "  warning: $n envelopes left in Petrel's queue after $1"
}

# --- the table ---------------------------------------------------------------------

print_table() {
    grep -q '^RESULT ' "$LOG" 2>/dev/null || return 0
    "$PY" - "$LOG" <<'PYEOF' | tee "$OUT/table.md"
import json, re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        r = json.loads(line[7:])
        m = re.match(r"relay-(postfix|petrel)-c(\d+)(?:-rj(\d+))?-r\d+$", r["label"])
        if m:
            runs.setdefault((m[1], int(m[2]), m[3]), []).append(r)
def cell(rs, key, fmt):
    if not rs:
        return None, "–"
    vals = [r.get(key) for r in rs]
    nums = [v for v in vals if isinstance(v, (int, float))]
    med = statistics.median(nums) if nums else None
    txt = (fmt % med if med is not None else "n/a")
    if len(rs) > 1:
        txt += " (" + ", ".join(fmt % v if isinstance(v, (int, float)) else "n/a" for v in vals) + ")"
    if any(not r.get("all_received") or r.get("inject_errors") for r in rs):
        txt += " !"
    return med, txt
print("| case | Postfix msg/s | Petrel msg/s | Petrel / Postfix | Postfix CPU s/1000 msgs | Petrel CPU s/1000 msgs | Petrel / Postfix CPU |")
print("|---|---|---|---|---|---|---|")
cs = sorted({k[1] for k in runs})
for c in cs:
    pf = runs.get(("postfix", c, None), [])
    for rj in sorted({k[2] for k in runs if k[0] == "petrel" and k[1] == c}, key=lambda x: int(x or 0)):
        pe = runs.get(("petrel", c, rj), [])
        pm, pt = cell(pf, "msg_per_s", "%.0f")
        em, et = cell(pe, "msg_per_s", "%.0f")
        pcm, pct = cell(pf, "server_cpu_s_per_1000", "%.2f")
        ecm, ect = cell(pe, "server_cpu_s_per_1000", "%.2f")
        ratio = "%.2f" % (em / pm) if em and pm else "–"
        cratio = "%.2f" % (ecm / pcm) if ecm and pcm else "–"
        name = "c=%d" % c + (", runner_jobs=%s" % rj if rj else "")
        print("| %s | %s | %s | %s | %s | %s | %s |" % (name, pt, et, ratio, pct, ect, cratio))
PYEOF
}

# --- clean-up -------------------------------------------------------------------------

job=""
cleanup() {
    local rc=$?
    set +e
    trap - EXIT
    trap '' INT TERM
    if [ -n "$job" ]; then
        kill -TERM "$job" 2>/dev/null
        wait "$job" 2>/dev/null
    fi
    petrel_stop
    pf_stop
    dns_stop
    local d
    for d in "${cgroups[@]}"; do
        [ -d "$d" ] && cg_remove "$d"
    done
    if [ "$KEEP" = 1 ]; then
        say "kept: $tmp"
    else
        rm -rf "$tmp"
    fi
    [ "$rc" -eq 0 ] || say "relay_bench: stopped (status $rc); logs in $OUT" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- runs --------------------------------------------------------------------------------

{
    echo "date: $(date -u)"
    uname -a
    echo "cpus: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "postfix: $(postconf -d -h mail_version 2>/dev/null); dnsmasq: $(dnsmasq --version | head -1)"
    has_side petrel && echo "petreld: $("$petreld" --version 2>&1); tree $(git -C "$top" rev-parse --short HEAD 2>/dev/null)"
    echo "N=$N REPEATS=$REPEATS CONCURRENCIES=$CONCURRENCIES PETREL_CASES=$PETREL_CASES INJECT_SESSIONS=$INJECT_SESSIONS"
} >"$OUT/env.txt"
cat "$OUT/env.txt"

dns_start
has_side postfix && pf_create
has_side petrel && petrel_create

run() { # SIDE C RUNNER_JOBS REPEAT
    local side=$1 c=$2 rj=$3 r=$4 label port pid="" cg rc=0
    if [ "$side" = postfix ]; then
        label=relay-postfix-c$c-r$r
        pf_start "$c"
        port=$PF_PORT cg=$pf_cg
    else
        label=relay-petrel-c$c-rj$rj-r$r
        petrel_configure "$c" "$rj"
        petrel_start "petreld-$label.log" "$label"
        port=$SMTP_PORT cg=$petrel_cg pid=$petrel_pid
    fi
    sync
    sleep 2
    echo "### $label" >>"$LOG"
    "$PY" "$top/bench/relay_run.py" --sink "$SINK_HOST:$SINK_PORT" --inject "$HOST:$port" \
        -n "$N" -s 4096 --domains "$DOMAINS" --domain-format "$DOMAIN_FMT" --procs "$INJECT_SESSIONS" \
        --cgroup "$cg" ${pid:+--pid "$pid"} --timeout "$RUN_TIMEOUT" --label "$label" \
        --log-dir "$OUT" >>"$LOG" 2>>"$OUT/stderr.log" &
    job=$!
    wait "$job" || rc=$?
    job=""
    grep "^RELAY $label:" "$LOG" | tail -1 || true
    [ "$rc" -eq 0 ] || say "  ($label: status $rc; see $LOG and $OUT/stderr.log)"
    if [ "$side" = postfix ]; then
        sleep 1
        pf_leftovers "$label"
        pf_stop
        cp "$PF/log/postfix.log" "$OUT/postfix-$label.log" 2>/dev/null && : >"$PF/log/postfix.log"
    else
        # smtp_out's counters (connections opened, reused) for the record
        ctl stats >"$OUT/stats-$label.txt" 2>&1 || true
        petrel_stop
        petrel_leftovers "$label"
    fi
}

for spec in $PETREL_CASES; do
    case $spec in [0-9]*:[0-9]*) ;; *) die "PETREL_CASES: '$spec' is not C:RUNNER_JOBS" ;; esac
done
cs=$(for x in $CONCURRENCIES $PETREL_CASES; do echo "${x%%:*}"; done | sort -nu)
for r in $(seq 1 "$REPEATS"); do
    for c in $cs; do
        if has_side postfix && [[ " $CONCURRENCIES " == *" $c "* ]]; then
            run postfix "$c" - "$r"
        fi
        if has_side petrel; then
            for spec in $PETREL_CASES; do
                if [ "${spec%%:*}" = "$c" ]; then run petrel "$c" "${spec#*:}" "$r"; fi
            done
        fi
    done
done

echo
print_table
say "Raw output: $LOG; logs: $OUT"
