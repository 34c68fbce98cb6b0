#!/usr/bin/env bash
# Installs the Debian packages nascent needs, only those missing: `apt-get update` once, then
# `apt-get install -y`. Run by `make` targets before building; a no-op when all are present.
set -eu
need="build-essential pkg-config libopenblas-dev libdnnl-dev libjansson-dev libsqlite3-dev
zlib1g-dev python3-torch python3-numpy python3-scipy dataset-fashion-mnist clang libclang-rt-14-dev"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
