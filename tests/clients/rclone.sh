#!/usr/bin/env bash
# End-to-end checks with rclone's s3 backend against a running cairn node.
# Env: CAIRN_ENDPOINT + AWS credentials (set by the Rust harness).
set -euo pipefail
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export RCLONE_CONFIG="$W/rclone.conf"
: > "$RCLONE_CONFIG"
export RCLONE_CONFIG_CAIRN_TYPE=s3
export RCLONE_CONFIG_CAIRN_PROVIDER=Other
export RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_CAIRN_ENDPOINT="$CAIRN_ENDPOINT"
export RCLONE_CONFIG_CAIRN_REGION=us-east-1
export RCLONE_CONFIG_CAIRN_FORCE_PATH_STYLE=true
R=(rclone --retries 1 --low-level-retries 1 -q)
B=cairn:e2e-rclone
fail() { echo "rclone: FAIL: $*" >&2; exit 1; }

mkdir -p "$W/src/a/b" "$W/src/c"
for i in $(seq 1 20); do head -c $((i * 997)) /dev/urandom > "$W/src/a/f$i"; done
head -c $((20 << 20)) /dev/urandom > "$W/src/a/b/large"   # multipart in rclone (chunk 5 MiB)
echo tiny > "$W/src/c/t"
: > "$W/src/c/empty"

"${R[@]}" mkdir "$B"
"${R[@]}" copy --s3-upload-cutoff 5M --s3-chunk-size 5M "$W/src" "$B/data"
"${R[@]}" check "$W/src" "$B/data" || fail "check after copy (sizes + MD5)"
[ "$("${R[@]}" lsf -R --files-only "$B/data" | wc -l)" = 23 ] || fail "object count"
OUT=$("${R[@]}" lsf "$B/data"); grep -qx "a/" <<<"$OUT" || fail "directory listing"
"${R[@]}" copy "$B/data" "$W/back"
diff -r "$W/src" "$W/back" || fail "download differs"
"${R[@]}" deletefile "$B/data/c/t"
"${R[@]}" sync "$W/src" "$B/data"
"${R[@]}" check "$W/src" "$B/data" || fail "check after sync"
"${R[@]}" purge "$B"
OUT=$("${R[@]}" lsd cairn:); if grep -q e2e-rclone <<<"$OUT"; then fail "bucket still present after purge"; fi
echo "rclone: ok"
