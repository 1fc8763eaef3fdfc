#!/usr/bin/env bash
# System packages rlenv uses when the machine allows (root and apt-get):
#   bubblewrap: the strongest sandbox tier of the code verifier. Without it the sandbox falls back
#               to Linux namespaces or rlimits on its own.
#   chromium:   headless, for the tests that open the HTML report in a real browser
#               (tests/test_report.py). Without it those tests are skipped, saying why.
# A failure here is reported, not fatal.
set -u
export DEBIAN_FRONTEND=noninteractive

# install PACKAGE "WHAT HAPPENS WITHOUT IT" COMMAND... : nothing to do if any COMMAND exists.
install() {
    local package=$1 without=$2
    shift 2
    for command in "$@"; do
        if command -v "$command" >/dev/null 2>&1; then
            return 0
        fi
    done
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: $package is not installed (needs root and apt-get); $without" >&2
        return 0
    fi
    apt-get install -y -q "$package" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "$package" >/dev/null 2>&1; } \
        || echo "note: apt-get could not install $package; $without" >&2
}

install bubblewrap "the code sandbox will use a weaker tier" bwrap
install chromium "the report's browser tests will be skipped" \
    chromium chromium-browser google-chrome google-chrome-stable
exit 0
