#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh machine, then runs every check.
# CAIRN_LONG=1 runs the long variants (hundreds of crash kills, multi-GiB transfers, long fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test dependencies"
[ -f scripts/e2e-deps.sh ] && bash scripts/e2e-deps.sh

echo "== toolchain checks"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
cargo test --workspace

echo "== fuzzing"
bash scripts/fuzz.sh
