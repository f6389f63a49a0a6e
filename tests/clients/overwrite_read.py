"""A GET that is streaming while the same key is overwritten (and then deleted) must finish
with the bytes of the version it started on — over S3 and over Blob. The node's release of the
old extents is deferred until the read is done; this drives the layout's collector (flush +
time for GC passes) while the read is paused, so a premature release would fail the read.
Env (set by the Rust harness): CAIRN_ENDPOINT, CAIRN_BLOB_ENDPOINT, CAIRN_ADMIN, AWS_*."""
import datetime, hashlib, os, time, urllib.request

import boto3
import requests
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

S3 = os.environ["CAIRN_ENDPOINT"]
ADMIN = os.environ["CAIRN_ADMIN"]
KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
SIZE = 40 * 1024 * 1024


def flush_and_wait():
    req = urllib.request.Request(f"http://{ADMIN}/admin/flush", method="POST")
    urllib.request.urlopen(req, timeout=600).read()
    time.sleep(3)  # several layout GC ticks and node release passes


s3 = boto3.client("s3", endpoint_url=S3, region_name="us-east-1")
s3.create_bucket(Bucket="overwrite-read")
old = os.urandom(SIZE)
s3.put_object(Bucket="overwrite-read", Key="model.bin", Body=old)
body = s3.get_object(Bucket="overwrite-read", Key="model.bin")["Body"]
first = body.read(1024 * 1024)
s3.put_object(Bucket="overwrite-read", Key="model.bin", Body=os.urandom(SIZE))
flush_and_wait()
rest = body.read()
assert hashlib.sha256(first + rest).digest() == hashlib.sha256(old).digest(), "S3 read changed under an overwrite"
print("overwrite_read: s3 ok", flush=True)

# Blob: one streaming GET (the SDK would split a download into several requests, and a
# request that starts after the delete must fail), paused while the blob is deleted.
container = BlobServiceClient.from_connection_string(
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={KEY};"
    f"BlobEndpoint={os.environ['CAIRN_BLOB_ENDPOINT']};").get_container_client("overwrite-read")
current = s3.get_object(Bucket="overwrite-read", Key="model.bin")["Body"].read()
sas = generate_blob_sas("devstoreaccount1", "overwrite-read", "model.bin", account_key=KEY,
                        permission=BlobSasPermissions(read=True),
                        expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
resp = requests.get(f"{container.url}/model.bin?{sas}", stream=True)
assert resp.status_code == 200, resp.status_code
it = resp.iter_content(chunk_size=1024 * 1024)
head = next(it)
container.delete_blob("model.bin")
flush_and_wait()
tail = b"".join(it)
assert hashlib.sha256(head + tail).digest() == hashlib.sha256(current).digest(), "Blob read changed under a delete"
print("overwrite_read: blob ok", flush=True)
