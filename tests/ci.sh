#!/usr/bin/env bash
# Installs what the tests need on a fresh machine of this kind (Debian, root,
# rustup), then runs every test: unit and integration tests against the real
# binary and a real HAProxy, the size budget of every static target, and the
# qemu smoke test of each one.
set -eu
cd "$(dirname "$0")/.."

need=""
for tool in haproxy busybox curl strace; do
    command -v "$tool" >/dev/null 2>&1 || need="$need $tool"
done
if [ -n "$need" ]; then
    echo "== installing:$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $need >/dev/null
fi

echo "== cargo test"
cargo test --quiet 2>&1

echo "== static builds, size budget and qemu smoke tests"
cross/ci
