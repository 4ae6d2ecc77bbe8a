#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, from the repository root:
# the package with its dev extra (pytest, xdist, hypothesis, ruff, mypy, import-linter …)
# and a real Ethereum node for the chain tests (anvil, from the npm package
# @foundry-rs/anvil-linux-amd64, into the gitignored .tools/; the package ships the binary)
# and SoftHSM2 (Debian package softhsm2), the PKCS#11 token the pkcs11 seal is tested with.
# Safe to run again: steps that are already done are quick.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet -e ".[dev]"
ANVIL_VERSION=1.7.1
if ! .tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil --version 2>/dev/null \
        | grep -q "$ANVIL_VERSION"; then
    npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error \
        "@foundry-rs/anvil-linux-amd64@$ANVIL_VERSION"
fi
if ! command -v softhsm2-util >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq softhsm2 >/dev/null
fi
