#!/usr/bin/env bash
# System packages rlenv uses when the machine allows: bubblewrap, the strongest sandbox tier of
# the code verifier. Without it (no root, no apt) the sandbox falls back to Linux namespaces or
# rlimits on its own, so a failure here is reported, not fatal.
set -u
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: bubblewrap is not installed (needs root and apt-get); the code sandbox will use a weaker tier" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q bubblewrap >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; } \
    || echo "note: apt-get could not install bubblewrap; the code sandbox will use a weaker tier" >&2
exit 0
