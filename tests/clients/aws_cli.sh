#!/usr/bin/env bash
# End-to-end checks with the aws CLI (s3 and s3api) against a running cairn node.
# Env: CAIRN_ENDPOINT + AWS credentials (set by the Rust harness). CAIRN_MP_BYTES: big file size.
set -euo pipefail
EP="$CAIRN_ENDPOINT"
A=(aws --endpoint-url "$EP")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
B=e2e-awscli
fail() { echo "aws_cli: FAIL: $*" >&2; exit 1; }

"${A[@]}" s3 mb "s3://$B" >/dev/null
OUT=$("${A[@]}" s3 ls); grep -q " $B\$" <<<"$OUT" || fail "bucket not listed"

# put/get/list/delete of small files
mkdir -p "$W/tree/sub"
for i in 1 2 3; do head -c $((i * 1000)) /dev/urandom > "$W/tree/f$i"; done
head -c 5000 /dev/urandom > "$W/tree/sub/g"
"${A[@]}" s3 cp --recursive "$W/tree" "s3://$B/tree" >/dev/null
[ "$("${A[@]}" s3 ls --recursive "s3://$B/tree/" | wc -l)" = 4 ] || fail "recursive ls count"
OUT=$("${A[@]}" s3 ls "s3://$B/tree/"); grep -q "PRE sub/" <<<"$OUT" || fail "delimiter listing lacks sub/"
"${A[@]}" s3 cp --recursive "s3://$B/tree" "$W/back" >/dev/null
diff -r "$W/tree" "$W/back" || fail "recursive round trip differs"

# a multipart upload (the CLI switches to multipart above 8 MiB) and download
SIZE=${CAIRN_MP_BYTES:-$((32 << 20))}
head -c "$SIZE" /dev/urandom > "$W/big"
"${A[@]}" s3 cp "$W/big" "s3://$B/big" >/dev/null
"${A[@]}" s3 cp "s3://$B/big" "$W/big.out" >/dev/null
cmp "$W/big" "$W/big.out" || fail "multipart round trip differs"
ETAG=$("${A[@]}" s3api head-object --bucket "$B" --key big --query ETag --output text)
case "$ETAG" in *-*) ;; *) fail "expected a multipart ETag, got $ETAG" ;; esac

# sync is idempotent
"${A[@]}" s3 sync "$W/tree" "s3://$B/synced" >/dev/null
[ -z "$("${A[@]}" s3 sync "$W/tree" "s3://$B/synced")" ] || fail "second sync copied again"

# s3api: put with metadata, get-object, list-objects-v2 with prefix
echo hello > "$W/h"
"${A[@]}" s3api put-object --bucket "$B" --key meta --body "$W/h" --metadata k=v --content-type text/x-cairn >/dev/null
[ "$("${A[@]}" s3api head-object --bucket "$B" --key meta --query 'Metadata.k' --output text)" = v ] || fail "metadata"
[ "$("${A[@]}" s3api head-object --bucket "$B" --key meta --query 'ContentType' --output text)" = text/x-cairn ] || fail "content type"
[ "$("${A[@]}" s3api list-objects-v2 --bucket "$B" --prefix tree/sub/ --query 'length(Contents)' --output text)" = 1 ] || fail "prefix list"

# errors carry S3 codes
if "${A[@]}" s3api head-bucket --bucket e2e-awscli-missing 2>"$W/err"; then fail "missing bucket found"; fi
grep -q 404 "$W/err" || fail "missing bucket: $(cat "$W/err")"
if "${A[@]}" s3 ls "s3://e2e-awscli-missing" 2>"$W/err"; then fail "ls of missing bucket"; fi
grep -q NoSuchBucket "$W/err" || fail "NoSuchBucket expected: $(cat "$W/err")"

# delete everything, remove the bucket
"${A[@]}" s3 rm --recursive "s3://$B" >/dev/null
[ -z "$("${A[@]}" s3 ls --recursive "s3://$B")" ] || fail "objects left after rm"
"${A[@]}" s3 rb "s3://$B" >/dev/null
echo "aws_cli: ok"
