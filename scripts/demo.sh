#!/bin/bash
# Quick start: installs what is missing, builds Petrel into _build/demo,
# writes a demo instance into _demo/ (self-signed certificate, demo domain,
# unprivileged ports from PORT_BASE, default 10000) and runs petreld in the
# foreground. Stop it with Ctrl-C.
#
# The instance runs the account database, login policy, mail store, queue
# SMTP and POP3 modules with a demo account (init prints its password):
# SMTP on PORT_BASE+25 (MX), +587 (submission, STARTTLS) and +465 (implicit
# TLS), POP3 on +110 (STLS) and +995 (implicit TLS), IMAP on +143
# (STARTTLS) and +993 (implicit TLS). It also runs the example echo module
# from contrib/echo (PORT_BASE+7: plain with STARTTLS, PORT_BASE+8:
# implicit TLS).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
port_base=${PORT_BASE:-10000}
build=$top/_build/demo
inst=$top/_demo

"$top/scripts/deps.sh"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
    (cd "$build" && "$top/configure" -q --prefix="$build/inst")
fi
make -s -C "$build" -j"$(nproc)"
make -s -C "$build" install >/dev/null

# The example module is built the way a third party builds one: outside
# the tree, against the installed headers, with pkg-config.
modules=$build/inst/lib/petrel/modules
rm -rf "$build/echo" && cp -r "$top/contrib/echo" "$build/echo"
PKG_CONFIG_PATH=$build/inst/lib/pkgconfig make -s -C "$build/echo" install MODULEDIR="$modules"

if [ ! -f "$inst/petrel.conf" ]; then
    "$build/inst/bin/petrelctl" init "$inst" --domain demo.test --port-base "$port_base" \
        --module-path "$modules"
    cat >"$inst/conf.d/50-echo.conf" <<CONF
# The example module from contrib/echo. Plain TCP (then STARTTLS) on
# $((port_base + 7)); implicit TLS on $((port_base + 8)):
#   openssl s_client -quiet -connect 127.0.0.1:$((port_base + 8))
module = "echo";
listeners = (
  { address = "127.0.0.1:$((port_base + 7))"; tls = "starttls"; },
  { address = "127.0.0.1:$((port_base + 8))"; tls = "implicit"; }
);
settings: { fortunes = [ "Petrel is running." ]; };
CONF
fi

cat <<MSG

Petrel demo instance: $inst
  SMTP (MX, local domain demo.test):  127.0.0.1:$((port_base + 25))
  SMTP submission (STARTTLS + AUTH):  127.0.0.1:$((port_base + 587)), implicit TLS: $((port_base + 465))
    swaks --server 127.0.0.1:$((port_base + 25)) --to demo@demo.test --from you@example.org
    mail lands in $inst/data/mail/demo.test/demo/new/
  POP3 (STLS): 127.0.0.1:$((port_base + 110)), implicit TLS: $((port_base + 995))
    curl -k --user 'demo@demo.test:PASSWORD' pop3s://127.0.0.1:$((port_base + 995))/1
  IMAP (STARTTLS): 127.0.0.1:$((port_base + 143)), implicit TLS: $((port_base + 993))
    curl -k --user 'demo@demo.test:PASSWORD' 'imaps://127.0.0.1:$((port_base + 993))/INBOX;UID=1'
    mkdir -p _demo/mbsync && DEMO_PASSWORD='PASSWORD' mbsync -c docs/mbsyncrc.demo -a   (docs/mbsyncrc.demo assumes PORT_BASE 10000)
  echo module, plain + STARTTLS: 127.0.0.1:$((port_base + 7))
  echo module, implicit TLS:     127.0.0.1:$((port_base + 8))
  administer it:  $build/inst/bin/petrelctl --config $inst/petrel.conf status
  accounts:       $build/inst/bin/petrelctl --config $inst/petrel.conf account list
                  (the demo account's password was printed when the instance was written)
Starting petreld in the foreground (Ctrl-C stops it).

MSG
exec "$build/inst/sbin/petreld" --config "$inst/petrel.conf" --foreground
