#!/bin/sh
# Installs the Debian packages Petrel needs to build, test and run, if any
# are missing. Debian 12 (bookworm); run as root.
set -eu

PACKAGES="
autoconf automake libtool make pkg-config gcc clang libclang-rt-14-dev
libssl-dev libconfig-dev libc-ares-dev libltdl-dev libcrypt-dev libcmocka-dev libsqlite3-dev
libcurl4-openssl-dev zlib1g-dev
python3 python3-pytest openssl procps iproute2 clang-format swaks libnet-ssleay-perl mutt
dnsmasq-base curl fetchmail isync tmux
"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "error: these packages are missing and installing them needs root:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
