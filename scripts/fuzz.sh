#!/usr/bin/env bash
# Runs every cargo-fuzz target briefly (the fuzz step of scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Every cargo-fuzz target (as `cargo fuzz list` names them) runs briefly from a copy of its
# checked-in seeds, so the tree stays clean; a crash fails the script (its input is left in
# fuzz/artifacts/<target>/). CAIRN_LONG=1 runs each for 10 minutes.
fuzz_seconds=${CAIRN_FUZZ_SECONDS:-20}
[ "${CAIRN_LONG:-0}" = 1 ] && fuzz_seconds=600
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
(
    cd fuzz
    export RUSTC_BOOTSTRAP=1
    # The metadata and SLC hooks write scratch files; a tmpfs keeps them fast.
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cargo fuzz build -O
    for t in $(cargo fuzz list); do
        mkdir -p "$work/$t"
        if [ -d "corpus/$t" ]; then cp -R "corpus/$t/." "$work/$t/"; fi
        echo "-- $t (${fuzz_seconds}s)"
        if ! cargo fuzz run -O "$t" "$work/$t" -- -max_total_time="$fuzz_seconds" \
            >"$work/$t.log" 2>&1; then
            tail -n 60 "$work/$t.log" >&2
            echo "fuzz target $t failed" >&2
            exit 1
        fi
        grep -E '^#[0-9]+ +DONE|^Done [0-9]+ runs' "$work/$t.log" || true
    done
)
echo "fuzz step: $(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list | wc -l) targets, ${fuzz_seconds}s each, ${SECONDS}s in all (build included)"
