#!/usr/bin/env python3
"""End-to-end S3 checks with boto3 against a running cairn node.

Environment: CAIRN_ENDPOINT, CAIRN_S3_PORT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
Optional: CAIRN_MP_BYTES (multipart object size, default 64 MiB), CAIRN_LIST_KEYS (default 2000).
Usage: boto3_suite.py [test-name ...]  (default: all). Exits non-zero on the first failure.
"""
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import os
import sys
import urllib.parse
import urllib.request
import zlib

import boto3
import botocore
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

EP = os.environ["CAIRN_ENDPOINT"]
PORT = int(os.environ["CAIRN_S3_PORT"])
AK = os.environ["AWS_ACCESS_KEY_ID"]
SK = os.environ["AWS_SECRET_ACCESS_KEY"]
MP_BYTES = int(os.environ.get("CAIRN_MP_BYTES", str(64 << 20)))
LIST_KEYS = int(os.environ.get("CAIRN_LIST_KEYS", "2000"))


def client(region="us-east-1", secret=SK, endpoint=EP, **cfg):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=secret,
        region_name=region, config=Config(retries={"max_attempts": 1}, **cfg))


S3 = client()


def expect_error(fn, code, status=None):
    try:
        fn()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        st = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert got == code or (code.isdigit() and str(st) == code), f"expected {code}, got {got} ({st}): {e}"
        if status is not None:
            assert st == status, f"expected HTTP {status}, got {st}"
        return e
    raise AssertionError(f"expected error {code}, call succeeded")


def bucket(name):
    """Creates an empty bucket (emptying a leftover one from an earlier failed run)."""
    try:
        S3.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
        empty_bucket(name)
        S3.create_bucket(Bucket=name)
    return name


def empty_bucket(name):
    pages = S3.get_paginator("list_object_versions").paginate(Bucket=name)
    for page in pages:
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        if objs:
            r = S3.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
            assert not r.get("Errors"), r
    S3.delete_bucket(Bucket=name)


# ---------- checksums computed here, independent of botocore/awscrt ----------
def _crc_table(poly, width):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c & ((1 << width) - 1))
    return table


_T32C = _crc_table(0x82F63B78, 32)
_T64 = _crc_table(0x9A6C9329AC4BC9B5, 64)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return (c ^ 0xFFFFFFFF).to_bytes(4, "big")


def crc64nvme(data):
    c = 0xFFFFFFFFFFFFFFFF
    for b in data:
        c = _T64[(c ^ b) & 0xFF] ^ (c >> 8)
    return (c ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def b64(b):
    return base64.b64encode(b).decode()


# ------------------------------------------------------------------------------
def test_buckets():
    name = bucket("e2e-buckets")
    S3.head_bucket(Bucket=name)
    assert name in [b["Name"] for b in S3.list_buckets()["Buckets"]]
    loc = S3.get_bucket_location(Bucket=name)
    assert loc.get("LocationConstraint") in (None, ""), loc
    expect_error(lambda: S3.create_bucket(Bucket=name), "BucketAlreadyOwnedByYou", 409)
    expect_error(lambda: S3.head_bucket(Bucket="e2e-missing-bucket"), "404")
    expect_error(lambda: S3.list_objects_v2(Bucket="e2e-missing-bucket"), "NoSuchBucket", 404)
    expect_error(lambda: S3.get_object(Bucket="e2e-missing-bucket", Key="k"), "NoSuchBucket", 404)
    S3.put_object(Bucket=name, Key="x", Body=b"1")
    expect_error(lambda: S3.delete_bucket(Bucket=name), "BucketNotEmpty", 409)
    assert S3.get_bucket_versioning(Bucket=name).get("Status") is None
    empty_bucket(name)
    expect_error(lambda: S3.head_bucket(Bucket=name), "404")
    # Unsupported operations say so instead of pretending.
    expect_error(lambda: S3.get_bucket_policy(Bucket=bucket("e2e-buckets2")), "NotImplemented", 501)
    S3.delete_bucket(Bucket="e2e-buckets2")


def test_objects():
    name = bucket("e2e-objects")
    body = os.urandom(100_000)
    r = S3.put_object(Bucket=name, Key="dir/obj", Body=body, ContentType="application/x-test",
                      ContentDisposition="attachment", CacheControl="max-age=60",
                      ContentLanguage="en", Metadata={"Color": "blue", "n": "1"})
    assert r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest()
    g = S3.get_object(Bucket=name, Key="dir/obj")
    assert g["Body"].read() == body
    assert g["ContentType"] == "application/x-test"
    assert g["ContentDisposition"] == "attachment"
    assert g["CacheControl"] == "max-age=60"
    assert g["ContentLanguage"] == "en"
    assert g["Metadata"] == {"color": "blue", "n": "1"}, g["Metadata"]
    h = S3.head_object(Bucket=name, Key="dir/obj")
    assert h["ContentLength"] == len(body) and h["ETag"] == r["ETag"]
    # Ranges: first-last, open, suffix; unsatisfiable.
    assert S3.get_object(Bucket=name, Key="dir/obj", Range="bytes=10-19")["Body"].read() == body[10:20]
    assert S3.get_object(Bucket=name, Key="dir/obj", Range="bytes=99990-")["Body"].read() == body[99990:]
    assert S3.get_object(Bucket=name, Key="dir/obj", Range="bytes=-7")["Body"].read() == body[-7:]
    expect_error(lambda: S3.get_object(Bucket=name, Key="dir/obj", Range="bytes=200000-"), "InvalidRange", 416)
    # response-* overrides
    g = S3.get_object(Bucket=name, Key="dir/obj", ResponseContentType="text/x-over",
                      ResponseContentDisposition="inline", ResponseCacheControl="no-cache")
    assert g["ContentType"] == "text/x-over" and g["ContentDisposition"] == "inline"
    assert g["CacheControl"] == "no-cache"
    # Empty object, overwrite, small (inline) object.
    S3.put_object(Bucket=name, Key="empty", Body=b"")
    assert S3.get_object(Bucket=name, Key="empty")["Body"].read() == b""
    S3.put_object(Bucket=name, Key="dir/obj", Body=b"short")
    assert S3.get_object(Bucket=name, Key="dir/obj")["Body"].read() == b"short"
    # Keys with odd characters.
    for k in ["a b+c", "ünïcødé/ключ", "q?x=1&y", "%2F/slash"]:
        S3.put_object(Bucket=name, Key=k, Body=k.encode())
        assert S3.get_object(Bucket=name, Key=k)["Body"].read() == k.encode(), k
    expect_error(lambda: S3.get_object(Bucket=name, Key="nope"), "NoSuchKey", 404)
    S3.delete_object(Bucket=name, Key="nope")  # deleting a missing key succeeds
    # DeleteObjects
    r = S3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "empty"}, {"Key": "dir/obj"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["dir/obj", "empty"]
    expect_error(lambda: S3.head_object(Bucket=name, Key="empty"), "404")
    empty_bucket(name)


def test_copy_and_tags():
    name = bucket("e2e-copy")
    body = os.urandom(300_000)
    S3.put_object(Bucket=name, Key="src", Body=body, ContentType="a/b", Metadata={"k": "v"},
                  Tagging="t1=v1&t2=v%202")
    assert S3.get_object_tagging(Bucket=name, Key="src")["TagSet"] == [
        {"Key": "t1", "Value": "v1"}, {"Key": "t2", "Value": "v 2"}]
    S3.copy_object(Bucket=name, Key="dst", CopySource={"Bucket": name, "Key": "src"})
    g = S3.get_object(Bucket=name, Key="dst")
    assert g["Body"].read() == body and g["ContentType"] == "a/b" and g["Metadata"] == {"k": "v"}
    S3.copy_object(Bucket=name, Key="dst2", CopySource=f"{name}/src", MetadataDirective="REPLACE",
                   ContentType="c/d", Metadata={"new": "1"})
    h = S3.head_object(Bucket=name, Key="dst2")
    assert h["ContentType"] == "c/d" and h["Metadata"] == {"new": "1"}, h
    # Copying onto itself without REPLACE is illegal, with REPLACE it updates metadata.
    expect_error(lambda: S3.copy_object(Bucket=name, Key="src", CopySource=f"{name}/src"), "InvalidRequest", 400)
    S3.copy_object(Bucket=name, Key="src", CopySource=f"{name}/src", MetadataDirective="REPLACE",
                   Metadata={"k": "changed"})
    assert S3.head_object(Bucket=name, Key="src")["Metadata"] == {"k": "changed"}
    etag = S3.head_object(Bucket=name, Key="src")["ETag"]
    expect_error(lambda: S3.copy_object(Bucket=name, Key="d3", CopySource=f"{name}/src",
                                        CopySourceIfMatch='"0000"'), "PreconditionFailed", 412)
    S3.copy_object(Bucket=name, Key="d3", CopySource=f"{name}/src", CopySourceIfMatch=etag)
    S3.put_object_tagging(Bucket=name, Key="d3", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert S3.get_object_tagging(Bucket=name, Key="d3")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert S3.get_object(Bucket=name, Key="d3")["TagCount"] == 1
    S3.delete_object_tagging(Bucket=name, Key="d3")
    assert S3.get_object_tagging(Bucket=name, Key="d3")["TagSet"] == []
    expect_error(lambda: S3.copy_object(Bucket=name, Key="x", CopySource=f"{name}/missing"), "NoSuchKey", 404)
    empty_bucket(name)


def test_conditionals():
    name = bucket("e2e-cond")
    r = S3.put_object(Bucket=name, Key="k", Body=b"v1")
    etag = r["ETag"]
    lm = S3.head_object(Bucket=name, Key="k")["LastModified"]
    assert S3.get_object(Bucket=name, Key="k", IfMatch=etag)["Body"].read() == b"v1"
    expect_error(lambda: S3.get_object(Bucket=name, Key="k", IfMatch='"deadbeef"'), "PreconditionFailed", 412)
    expect_error(lambda: S3.get_object(Bucket=name, Key="k", IfNoneMatch=etag), "304")
    expect_error(lambda: S3.head_object(Bucket=name, Key="k", IfNoneMatch=etag), "304")
    future = lm + datetime.timedelta(days=1)
    past = lm - datetime.timedelta(days=1)
    expect_error(lambda: S3.get_object(Bucket=name, Key="k", IfModifiedSince=future), "304")
    assert S3.get_object(Bucket=name, Key="k", IfModifiedSince=past)["Body"].read() == b"v1"
    expect_error(lambda: S3.get_object(Bucket=name, Key="k", IfUnmodifiedSince=past), "PreconditionFailed", 412)
    assert S3.get_object(Bucket=name, Key="k", IfUnmodifiedSince=future)["Body"].read() == b"v1"
    # Conditional PUT: If-None-Match: * creates only.
    expect_error(lambda: S3.put_object(Bucket=name, Key="k", Body=b"v2", IfNoneMatch="*"), "PreconditionFailed", 412)
    S3.put_object(Bucket=name, Key="new", Body=b"n", IfNoneMatch="*")
    assert S3.get_object(Bucket=name, Key="k")["Body"].read() == b"v1"
    empty_bucket(name)


def test_checksums():
    name = bucket("e2e-sums")
    data = os.urandom(50_000)
    cases = {
        "CRC32": b64(zlib.crc32(data).to_bytes(4, "big")),
        "CRC32C": b64(crc32c(data)),
        "CRC64NVME": b64(crc64nvme(data)),
        "SHA1": b64(hashlib.sha1(data).digest()),
        "SHA256": b64(hashlib.sha256(data).digest()),
    }
    for algo, value in cases.items():
        key = f"obj-{algo}"
        r = S3.put_object(Bucket=name, Key=key, Body=data, **{f"Checksum{algo}": value})
        assert r.get(f"Checksum{algo}") == value, (algo, r)
        h = S3.head_object(Bucket=name, Key=key, ChecksumMode="ENABLED")
        assert h.get(f"Checksum{algo}") == value, (algo, h)
        g = S3.get_object(Bucket=name, Key=key, ChecksumMode="ENABLED")
        assert g["Body"].read() == data and g.get(f"Checksum{algo}") == value, algo
        # A wrong value is rejected and nothing is stored.
        wrong = b64(bytes(len(base64.b64decode(value))))
        expect_error(lambda: S3.put_object(Bucket=name, Key=key + "-bad", Body=data,
                                           **{f"Checksum{algo}": wrong}), "BadDigest", 400)
        expect_error(lambda: S3.head_object(Bucket=name, Key=key + "-bad"), "404")
    # Content-MD5
    md5 = b64(hashlib.md5(data).digest())
    S3.put_object(Bucket=name, Key="md5", Body=data, ContentMD5=md5)
    expect_error(lambda: S3.put_object(Bucket=name, Key="md5-bad", Body=data,
                                       ContentMD5=b64(hashlib.md5(b"x").digest())), "BadDigest", 400)
    # botocore's own default (CRC32 in an aws-chunked trailer on recent versions).
    S3.put_object(Bucket=name, Key="sdk-default", Body=data, ChecksumAlgorithm="CRC32")
    g = S3.get_object(Bucket=name, Key="sdk-default", ChecksumMode="ENABLED")
    assert g["Body"].read() == data
    assert g.get("ChecksumCRC32") == cases["CRC32"], g
    empty_bucket(name)


def test_signature_and_regions():
    name = bucket("e2e-sig")
    S3.put_object(Bucket=name, Key="k", Body=b"v")
    bad = client(secret="not-the-key")
    expect_error(lambda: bad.get_object(Bucket=name, Key="k"), "SignatureDoesNotMatch", 403)
    expect_error(lambda: bad.put_object(Bucket=name, Key="k2", Body=b"x"), "SignatureDoesNotMatch", 403)
    unknown = boto3.client("s3", endpoint_url=EP, aws_access_key_id="nobody", aws_secret_access_key="x",
                           region_name="us-east-1")
    expect_error(lambda: unknown.list_buckets(), "InvalidAccessKeyId", 403)
    # Any region name in the credential scope verifies.
    for region in ["eu-west-1", "ap-southeast-2", "auto", "garage"]:
        c = client(region=region)
        assert c.get_object(Bucket=name, Key="k")["Body"].read() == b"v", region
    # Anonymous requests are denied.
    try:
        urllib.request.urlopen(f"{EP}/{name}/k", timeout=10)
        raise AssertionError("anonymous GET succeeded")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    empty_bucket(name)


def test_presigned():
    name = bucket("e2e-presign")
    body = os.urandom(123_457)
    v4 = client(signature_version="s3v4")
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": name, "Key": "p"}, ExpiresIn=300)
    req = urllib.request.Request(put_url, data=body, method="PUT")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    assert "X-Amz-Signature=" in put_url, put_url
    get_url = v4.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "p"}, ExpiresIn=300)
    with urllib.request.urlopen(get_url, timeout=30) as r:
        assert r.read() == body
    # Tampering with the signed URL fails.
    try:
        urllib.request.urlopen(get_url.replace("/p?", "/q?"), timeout=30)
        raise AssertionError("tampered presigned URL accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    empty_bucket(name)


def test_virtual_hosted():
    """Sign for http://<bucket>.localhost:PORT (virtual-hosted) and deliver to 127.0.0.1."""
    name = bucket("e2e-vhost")

    def send_to_loopback(request, **kwargs):
        u = urllib.parse.urlsplit(request.url)
        headers = {k: v for k, v in request.headers.items()}
        headers["Host"] = u.netloc
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        conn.request(request.method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()

        class Raw:
            def stream(self, **kw):
                yield data

        return AWSResponse(request.url, resp.status, botocore.awsrequest.HTTPHeaders(resp.getheaders()), Raw())

    vc = client(endpoint=f"http://localhost:{PORT}", s3={"addressing_style": "virtual"})
    vc.meta.events.register("before-send.s3", send_to_loopback)
    vc.put_object(Bucket=name, Key="vk", Body=b"virtual")
    assert S3.get_object(Bucket=name, Key="vk")["Body"].read() == b"virtual"
    assert [o["Key"] for o in vc.list_objects_v2(Bucket=name)["Contents"]] == ["vk"]
    empty_bucket(name)


def test_listing():
    name = bucket("e2e-list")
    keys = []
    for i in range(LIST_KEYS):
        d = i % 10
        keys.append(f"dir{d}/sub{i % 7}/obj{i:05d}")
    keys += ["top1", "top2", "a/b", "a/b/c"]
    with concurrent.futures.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: S3.put_object(Bucket=name, Key=k, Body=k.encode()), keys))
    keys.sort()
    # Flat listing, paginated (v2 continuation tokens).
    got = []
    for page in S3.get_paginator("list_objects_v2").paginate(Bucket=name, PaginationConfig={"PageSize": 333}):
        assert page["KeyCount"] <= 333
        got += [o["Key"] for o in page.get("Contents", [])]
    assert got == keys, "v2 flat listing mismatch"
    # v1 markers
    got = []
    for page in S3.get_paginator("list_objects").paginate(Bucket=name, PaginationConfig={"PageSize": 500}):
        got += [o["Key"] for o in page.get("Contents", [])]
    assert got == keys, "v1 listing mismatch"
    # Delimiter at the top.
    r = S3.list_objects_v2(Bucket=name, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/"] + [f"dir{d}/" for d in range(10)]
    assert [o["Key"] for o in r["Contents"]] == ["top1", "top2"]
    # Prefix + delimiter, paginated with tiny pages across common prefixes.
    prefs, objs = [], []
    for page in S3.get_paginator("list_objects_v2").paginate(Bucket=name, Prefix="dir3/", Delimiter="/",
                                                              PaginationConfig={"PageSize": 2}):
        prefs += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        objs += [o["Key"] for o in page.get("Contents", [])]
    assert prefs == sorted({f"dir3/sub{i % 7}/" for i in range(LIST_KEYS) if i % 10 == 3}), prefs
    assert objs == []
    # a/b and a/b/c both exist.
    r = S3.list_objects_v2(Bucket=name, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/b"] and [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    # StartAfter, MaxKeys
    r = S3.list_objects_v2(Bucket=name, StartAfter=keys[100], MaxKeys=5)
    assert [o["Key"] for o in r["Contents"]] == keys[101:106] and r["IsTruncated"]
    r = S3.list_objects_v2(Bucket=name, MaxKeys=0)
    assert r["KeyCount"] == 0
    # v1 with delimiter returns NextMarker.
    r = S3.list_objects(Bucket=name, Delimiter="/", MaxKeys=3)
    assert r["IsTruncated"] and r["NextMarker"] == "dir1/", r.get("NextMarker")
    # encoding-type=url
    S3.put_object(Bucket=name, Key="sp ace+plus", Body=b"x")
    raw = S3.list_objects_v2(Bucket=name, Prefix="sp", EncodingType="url")
    # An explicit EncodingType leaves decoding to the caller.
    assert [urllib.parse.unquote_plus(o["Key"]) for o in raw["Contents"]] == ["sp ace+plus"], raw["Contents"]
    assert [urllib.parse.unquote(o["Key"]) for o in raw["Contents"]] == ["sp ace+plus"], raw["Contents"]
    # Versions listing (null version ids) lets tools empty buckets.
    v = S3.list_object_versions(Bucket=name, MaxKeys=10)
    assert all(x["VersionId"] == "null" and x["IsLatest"] for x in v["Versions"]) and v["IsTruncated"]
    empty_bucket(name)


def test_multipart():
    name = bucket("e2e-mp")
    part = 8 << 20
    total = MP_BYTES
    src = "/tmp/cairn-e2e-mp-%d.bin" % os.getpid()
    h = hashlib.sha256()
    with open(src, "wb") as f:
        left = total
        while left:
            n = min(left, 4 << 20)
            b = os.urandom(n)
            h.update(b)
            f.write(b)
            left -= n
    want = h.hexdigest()
    try:
        # Low-level API: parts uploaded in parallel, listed, completed; ETag = md5 of md5s.
        up = S3.create_multipart_upload(Bucket=name, Key="big", ContentType="application/octet-stream",
                                        Metadata={"m": "1"})
        uid = up["UploadId"]
        assert uid in [u["UploadId"] for u in S3.list_multipart_uploads(Bucket=name).get("Uploads", [])]
        nparts = (total + part - 1) // part

        def upload(i):
            with open(src, "rb") as f:
                f.seek(i * part)
                data = f.read(part)
            r = S3.upload_part(Bucket=name, Key="big", UploadId=uid, PartNumber=i + 1, Body=data)
            return i + 1, r["ETag"], hashlib.md5(data).digest()

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            parts = sorted(ex.map(upload, range(nparts)))
        lp = S3.list_parts(Bucket=name, Key="big", UploadId=uid)
        assert [p["PartNumber"] for p in lp["Parts"]] == list(range(1, nparts + 1))
        # Wrong ETag in the list and out-of-order lists are rejected.
        expect_error(lambda: S3.complete_multipart_upload(
            Bucket=name, Key="big", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]}), "InvalidPart", 400)
        if nparts > 1:
            expect_error(lambda: S3.complete_multipart_upload(
                Bucket=name, Key="big", UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in reversed(parts)]}),
                "InvalidPartOrder", 400)
        r = S3.complete_multipart_upload(Bucket=name, Key="big", UploadId=uid,
                                         MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]})
        # Completing again answers with the same object (S3 is idempotent here).
        again = S3.complete_multipart_upload(Bucket=name, Key="big", UploadId=uid,
                                             MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e, _ in parts]})
        assert again["ETag"] == r["ETag"], again
        md5s = b"".join(m for _, _, m in parts)
        assert r["ETag"] == '"%s-%d"' % (hashlib.md5(md5s).hexdigest(), nparts), r["ETag"]
        hd = S3.head_object(Bucket=name, Key="big")
        assert hd["ContentLength"] == total and hd["Metadata"] == {"m": "1"}
        expect_error(lambda: S3.list_parts(Bucket=name, Key="big", UploadId=uid), "NoSuchUpload", 404)

        # Parallel ranged download verified by hash.
        chunk = 16 << 20

        def fetch(off):
            end = min(off + chunk, total) - 1
            return off, S3.get_object(Bucket=name, Key="big", Range=f"bytes={off}-{end}")["Body"].read()

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            pieces = sorted(ex.map(fetch, range(0, total, chunk)))
        h2 = hashlib.sha256()
        for _, b in pieces:
            h2.update(b)
        assert h2.hexdigest() == want, "ranged download hash mismatch"

        # The managed transfer (what most tools use) round-trips too.
        from boto3.s3.transfer import TransferConfig
        cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
        S3.upload_file(src, name, "managed", Config=cfg)
        dst = src + ".out"
        S3.download_file(name, "managed", dst, Config=cfg)
        h3 = hashlib.sha256()
        with open(dst, "rb") as f:
            for b in iter(lambda: f.read(4 << 20), b""):
                h3.update(b)
        os.unlink(dst)
        assert h3.hexdigest() == want

        # Part-size rules: a small non-last part fails the commit.
        up = S3.create_multipart_upload(Bucket=name, Key="small")
        e1 = S3.upload_part(Bucket=name, Key="small", UploadId=up["UploadId"], PartNumber=1, Body=b"a" * 1000)["ETag"]
        e2 = S3.upload_part(Bucket=name, Key="small", UploadId=up["UploadId"], PartNumber=2, Body=b"b" * 1000)["ETag"]
        expect_error(lambda: S3.complete_multipart_upload(
            Bucket=name, Key="small", UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}),
            "EntityTooSmall", 400)
        # UploadPartCopy + a single small last part is fine.
        e = S3.upload_part_copy(Bucket=name, Key="small", UploadId=up["UploadId"], PartNumber=1,
                                CopySource={"Bucket": name, "Key": "big"}, CopySourceRange="bytes=0-5242879")
        e1 = e["CopyPartResult"]["ETag"]
        S3.complete_multipart_upload(Bucket=name, Key="small", UploadId=up["UploadId"],
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                                {"PartNumber": 2, "ETag": e2}]})
        with open(src, "rb") as f:
            first = f.read(5 << 20)
        assert S3.get_object(Bucket=name, Key="small")["Body"].read() == first + b"b" * 1000
        # Abort discards the upload.
        up = S3.create_multipart_upload(Bucket=name, Key="aborted")
        S3.upload_part(Bucket=name, Key="aborted", UploadId=up["UploadId"], PartNumber=1, Body=b"zzz")
        S3.abort_multipart_upload(Bucket=name, Key="aborted", UploadId=up["UploadId"])
        expect_error(lambda: S3.list_parts(Bucket=name, Key="aborted", UploadId=up["UploadId"]), "NoSuchUpload", 404)
        expect_error(lambda: S3.upload_part(Bucket=name, Key="x", UploadId="nonexistent", PartNumber=1, Body=b"x"),
                     "NoSuchUpload", 404)
    finally:
        if os.path.exists(src):
            os.unlink(src)
    empty_bucket(name)


TESTS = {k[5:]: v for k, v in sorted(globals().items()) if k.startswith("test_")}

if __name__ == "__main__":
    names = sys.argv[1:] or list(TESTS)
    for n in names:
        print(f"boto3: {n} ...", flush=True)
        TESTS[n]()
        print(f"boto3: {n} ok", flush=True)
