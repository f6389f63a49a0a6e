#!/usr/bin/env bash
# End-to-end checks with rclone's azureblob backend (endpoint + account key) against a
# running cairn node. Env: CAIRN_BLOB_ENDPOINT, AWS_SECRET_ACCESS_KEY (the account key).
set -euo pipefail
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export RCLONE_CONFIG="$W/rclone.conf"
: > "$RCLONE_CONFIG"
export RCLONE_CONFIG_AZ_TYPE=azureblob
export RCLONE_CONFIG_AZ_ACCOUNT=devstoreaccount1
export RCLONE_CONFIG_AZ_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_AZ_ENDPOINT="$CAIRN_BLOB_ENDPOINT"
R=(rclone --retries 1 --low-level-retries 1 -q)
C=az:e2e-rclone-az
fail() { echo "rclone_azure: FAIL: $*" >&2; exit 1; }

mkdir -p "$W/src/a/b" "$W/src/c"
for i in $(seq 1 15); do head -c $((i * 1499)) /dev/urandom > "$W/src/a/f$i"; done
head -c $((12 << 20)) /dev/urandom > "$W/src/a/b/large"   # block upload (4 MiB chunks)
echo tiny > "$W/src/c/t"
: > "$W/src/c/empty"

"${R[@]}" mkdir "$C"
"${R[@]}" copy --azureblob-upload-cutoff 4M --azureblob-chunk-size 4M "$W/src" "$C/data"
"${R[@]}" check "$W/src" "$C/data" || fail "check after copy (sizes + MD5)"
[ "$("${R[@]}" lsf -R --files-only "$C/data" | wc -l)" = 18 ] || fail "object count"
OUT=$("${R[@]}" lsf "$C/data"); grep -qx "a/" <<<"$OUT" || fail "directory listing"
"${R[@]}" copy "$C/data" "$W/back"
diff -r "$W/src" "$W/back" || fail "download differs"
"${R[@]}" deletefile "$C/data/c/t"
"${R[@]}" sync "$W/src" "$C/data"
"${R[@]}" check "$W/src" "$C/data" || fail "check after sync"
"${R[@]}" purge "$C"
OUT=$("${R[@]}" lsd az:); if grep -q e2e-rclone-az <<<"$OUT"; then fail "container still present after purge"; fi
echo "rclone_azure: ok"
