"""End-to-end checks of the Blob head with the Azure SDK for Python (azure-storage-blob),
plus cross-protocol checks with boto3 against the same node.
Env (set by the Rust harness): CAIRN_BLOB_ENDPOINT (http://127.0.0.1:PORT/devstoreaccount1),
CAIRN_ENDPOINT (S3), AWS_* credentials. Prints "azure: <test> ok" per test."""
import base64, datetime, hashlib, os, sys, time, uuid

import boto3
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import (
    AccountSasPermissions, BlobBlock, BlockState, BlobSasPermissions, BlobServiceClient, ContainerClient,
    ContainerSasPermissions, ContentSettings, ResourceTypes, generate_account_sas,
    generate_blob_sas, generate_container_sas,
)

ACCOUNT = "devstoreaccount1"
KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
BLOB = os.environ["CAIRN_BLOB_ENDPOINT"]
S3 = os.environ["CAIRN_ENDPOINT"]
CONN = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={BLOB};"
svc = BlobServiceClient.from_connection_string(CONN)
s3 = boto3.client("s3", endpoint_url=S3, region_name="us-east-1")
UTC = datetime.timezone.utc


def crc64_nvme(data):
    """CRC-64/NVME (reflected poly 0x9A6C9329AC4BC9B5), as Azure's x-ms-content-crc64."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def name(p):
    return f"{p}-{uuid.uuid4().hex[:10]}"


def expect_error(code, status, fn):
    try:
        fn()
    except HttpResponseError as e:
        assert e.status_code == status, (e.status_code, status, e.error_code, e.message)
        assert e.error_code == code, (e.error_code, code)
        return e
    raise AssertionError(f"expected {status} {code}")


def containers():
    c = name("az-cont")
    cc = svc.create_container(c, metadata={"team": "ml", "owner": "x"})
    expect_error("ContainerAlreadyExists", 409, lambda: svc.create_container(c))
    p = cc.get_container_properties()
    assert p.metadata == {"team": "ml", "owner": "x"}, p.metadata
    etag = p.etag
    time.sleep(1.1)
    cc.set_container_metadata({"v": "2"})
    p2 = cc.get_container_properties()
    assert p2.metadata == {"v": "2"} and p2.etag != etag
    listed = {x.name: x for x in svc.list_containers(name_starts_with="az-cont", include_metadata=True)}
    assert c in listed and listed[c].metadata == {"v": "2"}
    # Pagination with maxresults/marker.
    extra = [name("az-page") for _ in range(5)]
    for e in extra:
        svc.create_container(e)
    pages = list(svc.list_containers(name_starts_with="az-page", results_per_page=2).by_page())
    got = [x.name for page in pages for x in page]
    assert sorted(got) == sorted(extra) and len(pages) >= 3, (got, len(pages))
    for e in extra:
        svc.delete_container(e)
    expect_error("ContainerNotFound", 404, lambda: svc.get_container_client(name("nope")).get_container_properties())
    expect_error("InvalidResourceName", 400, lambda: svc.create_container("Bad_Name"))
    info = svc.get_account_information()
    assert info["sku_name"] and info["account_kind"], info
    props = svc.get_service_properties()
    svc.set_service_properties(delete_retention_policy=props["delete_retention_policy"])
    cc.delete_container()
    expect_error("ContainerNotFound", 404, cc.get_container_properties)


def blobs():
    cc = svc.create_container(name("az-blobs"))
    b = cc.get_blob_client("dir/sub/hello world.txt")
    data = os.urandom(100_000)
    b.upload_blob(data, metadata={"k1": "v1"}, content_settings=ContentSettings(
        content_type="text/x-test", content_language="en", cache_control="no-cache",
        content_disposition="attachment"))
    p = b.get_blob_properties()
    assert p.size == len(data) and p.blob_type == "BlockBlob"
    assert p.content_settings.content_type == "text/x-test"
    assert p.content_settings.content_language == "en" and p.content_settings.cache_control == "no-cache"
    assert bytes(p.content_settings.content_md5) == hashlib.md5(data).digest()
    assert p.metadata == {"k1": "v1"}
    assert b.download_blob().readall() == data
    assert b.download_blob(offset=10, length=20).readall() == data[10:30]
    assert b.download_blob(offset=99_990).readall() == data[99_990:]
    # Raw range semantics: 206 with Content-Range; 416 InvalidRange past the end.
    sas = generate_blob_sas(ACCOUNT, cc.container_name, b.blob_name, account_key=KEY,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    url = f"{b.url}?{sas}"
    r = requests.get(url, headers={"x-ms-range": "bytes=0-9", "x-ms-version": "2025-01-05"})
    assert r.status_code == 206 and r.headers["Content-Range"] == f"bytes 0-9/{len(data)}" and r.content == data[:10]
    r = requests.get(url, headers={"x-ms-range": "bytes=0-99", "x-ms-range-get-content-md5": "true"})
    assert r.status_code == 206 and base64.b64decode(r.headers["Content-MD5"]) == hashlib.md5(data[:100]).digest()
    r = requests.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["x-ms-error-code"] == "InvalidRange", r.headers
    r = requests.head(f"{cc.url}/missing-blob?{sas}")
    assert r.status_code in (403, 404) and "x-ms-error-code" in r.headers, (r.status_code, r.headers)
    empty = cc.get_blob_client("empty")
    empty.upload_blob(b"")
    expect_error("InvalidRange", 416, lambda: empty.download_blob(offset=0, length=1).readall())
    assert empty.download_blob().readall() == b""
    # ETag: stable on reads, new on content or property writes.
    e1 = b.get_blob_properties().etag
    assert b.get_blob_properties().etag == e1
    b.set_blob_metadata({"k2": "v2"})
    e2 = b.get_blob_properties().etag
    assert e2 != e1 and b.get_blob_properties().metadata == {"k2": "v2"}
    b.set_http_headers(ContentSettings(content_type="application/json"))
    p = b.get_blob_properties()
    e3 = p.etag
    assert e3 != e2 and p.content_settings.content_type == "application/json" and p.content_settings.content_md5 is None
    # Conditional requests.
    assert b.download_blob(etag=e3, match_condition=__import__("azure.core").core.MatchConditions.IfNotModified).readall() == data
    from azure.core import MatchConditions
    expect_error("ConditionNotMet", 412, lambda: b.download_blob(etag=e1, match_condition=MatchConditions.IfNotModified).readall())
    r = requests.get(url, headers={"If-None-Match": e3})
    assert r.status_code == 304, r.status_code
    future = datetime.datetime.now(UTC) + datetime.timedelta(hours=1)
    r = requests.get(url, headers={"If-Modified-Since": future.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    assert r.status_code == 304
    past = datetime.datetime.now(UTC) - datetime.timedelta(hours=1)
    expect_error("ConditionNotMet", 412, lambda: b.set_blob_metadata({"x": "y"}, if_unmodified_since=past))
    expect_error("BlobAlreadyExists", 409, lambda: b.upload_blob(b"x", overwrite=False))
    # Content-MD5 / CRC64 validation on upload.
    bad = cc.get_blob_client("bad-md5")
    expect_error("Md5Mismatch", 400, lambda: bad.upload_blob(b"abc", content_settings=None, validate_content=False,
                                                               headers={"Content-MD5": base64.b64encode(hashlib.md5(b"abd").digest()).decode()}))
    bad.upload_blob(b"abc", validate_content=True)
    # x-ms-content-crc64 (little-endian base64) is checked too.
    wsas = generate_blob_sas(ACCOUNT, cc.container_name, "crc", account_key=KEY,
                             permission=BlobSasPermissions(read=True, write=True),
                             expiry=datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    body = os.urandom(5000)
    good = base64.b64encode(crc64_nvme(body).to_bytes(8, "little")).decode()
    wrong = base64.b64encode((crc64_nvme(body) ^ 1).to_bytes(8, "little")).decode()
    crc_url = f"{cc.url}/crc?{wsas}"
    r = requests.put(crc_url, data=body, headers={"x-ms-blob-type": "BlockBlob", "x-ms-content-crc64": wrong})
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "Crc64Mismatch", (r.status_code, r.text)
    r = requests.put(crc_url, data=body, headers={"x-ms-blob-type": "BlockBlob", "x-ms-content-crc64": good})
    assert r.status_code == 201, (r.status_code, r.text)
    # Append and page blobs are refused with Azure's errors, never half-supported.
    csas = generate_container_sas(ACCOUNT, cc.container_name, account_key=KEY,
                                  permission=ContainerSasPermissions(read=True, write=True),
                                  expiry=datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    r = requests.put(f"{cc.url}/append?{csas}", data=b"", headers={"x-ms-blob-type": "AppendBlob"})
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "InvalidHeaderValue", r.text
    r = requests.put(f"{crc_url}&comp=appendblock", data=b"x")
    assert r.status_code == 409 and r.headers["x-ms-error-code"] == "InvalidBlobType", r.text
    # Listing: flat, hierarchical, metadata, pagination.
    for i in range(7):
        cc.upload_blob(f"list/{i:02d}", b"x", metadata={"i": str(i)})
    cc.upload_blob("list/deeper/z", b"z")
    flat = list(cc.list_blobs(name_starts_with="list/", include=["metadata"]))
    assert [x.name for x in flat] == [f"list/{i:02d}" for i in range(7)] + ["list/deeper/z"]
    assert flat[3].metadata == {"i": "3"}
    walk = [x.name for x in cc.walk_blobs(name_starts_with="list/", delimiter="/")]
    assert sorted(walk) == sorted([f"list/{i:02d}" for i in range(7)] + ["list/deeper/"]), walk
    pages = list(cc.list_blobs(name_starts_with="list/", results_per_page=3).by_page())
    assert len(pages) == 3 and sum(len(list(p)) for p in pages) == 8
    b.delete_blob()
    expect_error("BlobNotFound", 404, b.get_blob_properties)
    svc.delete_container(cc.container_name)


def block_lists():
    cc = svc.create_container(name("az-blocks"))
    b = cc.get_blob_client("blocks.bin")
    ids = [base64.b64encode(f"block-{i:04d}".encode()).decode() for i in range(4)]
    chunks = [os.urandom(1000 + i) for i in range(4)]
    for i, c in zip(ids, chunks):
        b.stage_block(i, c)
    committed, uncommitted = b.get_block_list("all")
    assert not committed and [x.id for x in uncommitted] == ids
    listed = list(cc.list_blobs(include=["uncommittedblobs"]))
    assert [x.name for x in listed] == ["blocks.bin"], listed
    assert list(cc.list_blobs()) == [], "uncommitted blobs are listed only on request"
    b.commit_block_list([BlobBlock(ids[0]), BlobBlock(ids[2])])
    assert b.download_blob().readall() == chunks[0] + chunks[2]
    committed, uncommitted = b.get_block_list("all")
    assert [x.id for x in committed] == [ids[0], ids[2]] and not uncommitted, "uncommitted blocks discarded on commit"
    # Reuse committed blocks, add a new one, Latest resolution.
    b.stage_block(ids[1], chunks[1])
    b.commit_block_list([BlobBlock(ids[0], BlockState.COMMITTED), BlobBlock(ids[1], BlockState.UNCOMMITTED), BlobBlock(ids[2], BlockState.LATEST)])
    assert b.download_blob().readall() == chunks[0] + chunks[1] + chunks[2]
    expect_error("InvalidBlockList", 400, lambda: b.commit_block_list([BlobBlock(ids[3])]))
    assert b.download_blob().readall() == chunks[0] + chunks[1] + chunks[2], "failed commit changed nothing"
    # Malformed XML → 400.
    sas = generate_blob_sas(ACCOUNT, cc.container_name, "blocks.bin", account_key=KEY,
                            permission=BlobSasPermissions(read=True, write=True),
                            expiry=datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    r = requests.put(f"{b.url}?comp=blocklist&{sas}", data=b"<BlockList><Latest>abc</BlockList>")
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "InvalidXmlDocument", (r.status_code, r.text)
    r = requests.put(f"{b.url}?comp=block&blockid=%21%21&{sas}", data=b"x")
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "InvalidBlockId", r.text
    # A large blob through the SDK's parallel block upload.
    big = os.urandom(13 * 1024 * 1024 + 7)
    svc2 = BlobServiceClient.from_connection_string(CONN, max_single_put_size=4 * 1024 * 1024, max_block_size=4 * 1024 * 1024)
    bb = svc2.get_blob_client(cc.container_name, "big.bin")
    bb.upload_blob(big, max_concurrency=4)
    assert hashlib.sha256(bb.download_blob(max_concurrency=4).readall()).digest() == hashlib.sha256(big).digest()
    assert len(bb.get_block_list()[0]) == 4
    svc.delete_container(cc.container_name)


def leases():
    cc = svc.create_container(name("az-lease"))
    b = cc.get_blob_client("leased")
    b.upload_blob(b"v1")
    lease = b.acquire_lease(lease_duration=15)
    expect_error("LeaseIdMissing", 412, lambda: b.upload_blob(b"v2", overwrite=True))
    b.upload_blob(b"v2", overwrite=True, lease=lease)
    assert b.get_blob_properties().lease.state == "leased"
    lease.renew()
    new_id = str(uuid.uuid4())
    lease.change(new_id)
    assert lease.id == new_id
    b.set_blob_metadata({"a": "b"}, lease=new_id)
    lease.release()
    b.upload_blob(b"v3", overwrite=True)
    lease = b.acquire_lease(lease_duration=-1)
    lease.break_lease(lease_break_period=0)
    b.delete_blob()
    clease = cc.acquire_lease(lease_duration=15)
    expect_error("LeaseIdMissing", 412, lambda: cc.delete_container())
    cc.delete_container(lease=clease)


def sas_and_auth():
    cc = svc.create_container(name("az-sas"))
    cc.upload_blob("a.txt", b"hello")
    exp = datetime.datetime.now(UTC) + datetime.timedelta(hours=1)
    ro = generate_container_sas(ACCOUNT, cc.container_name, account_key=KEY,
                                permission=ContainerSasPermissions(read=True, list=True), expiry=exp)
    cro = ContainerClient.from_container_url(f"{cc.url}?{ro}")
    assert [x.name for x in cro.list_blobs()] == ["a.txt"]
    assert cro.download_blob("a.txt").readall() == b"hello"
    expect_error("AuthorizationPermissionMismatch", 403, lambda: cro.upload_blob("b.txt", b"x"))
    expired = generate_container_sas(ACCOUNT, cc.container_name, account_key=KEY,
                                     permission=ContainerSasPermissions(read=True, list=True),
                                     expiry=datetime.datetime.now(UTC) - datetime.timedelta(minutes=5))
    cexp = ContainerClient.from_container_url(f"{cc.url}?{expired}")
    expect_error("AuthenticationFailed", 403, lambda: list(cexp.list_blobs()))
    tampered = ro.replace("sp=rl", "sp=rwdl")
    assert tampered != ro
    ctam = ContainerClient.from_container_url(f"{cc.url}?{tampered}")
    expect_error("AuthenticationFailed", 403, lambda: list(ctam.list_blobs()))
    acct = generate_account_sas(ACCOUNT, account_key=KEY, resource_types=ResourceTypes(service=True, container=True, object=True),
                                permission=AccountSasPermissions(read=True, write=True, list=True, create=True, delete=True), expiry=exp)
    asvc = BlobServiceClient(account_url=BLOB, credential=acct)
    c2 = name("az-sas2")
    asvc.create_container(c2)
    asvc.get_blob_client(c2, "x").upload_blob(b"via account sas")
    assert svc.get_blob_client(c2, "x").download_blob().readall() == b"via account sas"
    asvc.delete_container(c2)
    # A wrong account key: SharedKey signature rejected.
    wrong = base64.b64encode(b"0" * 64).decode()
    bad = BlobServiceClient.from_connection_string(CONN.replace(KEY, wrong))
    expect_error("AuthenticationFailed", 403, lambda: list(bad.list_containers()))
    # Anonymous: private container is invisible; a public one is readable, not writable.
    r = requests.get(f"{cc.url}/a.txt")
    assert r.status_code == 404 and r.headers["x-ms-error-code"] == "ResourceNotFound", r.status_code
    cc.set_container_access_policy(signed_identifiers={}, public_access="container")
    r = requests.get(f"{cc.url}/a.txt")
    assert r.status_code == 200 and r.content == b"hello"
    r = requests.get(f"{cc.url}?restype=container&comp=list")
    assert r.status_code == 200 and "<Name>a.txt</Name>" in r.text
    r = requests.put(f"{cc.url}/new", data=b"x", headers={"x-ms-blob-type": "BlockBlob"})
    assert r.status_code == 401 and r.headers["x-ms-error-code"] == "NoAuthenticationInformation"
    # Any date-shaped x-ms-version is accepted and echoed; a malformed one is an error.
    r = requests.get(f"{cc.url}/a.txt", headers={"x-ms-version": "2099-12-31"})
    assert r.status_code == 200 and r.headers["x-ms-version"] == "2099-12-31" and r.headers.get("x-ms-request-id")
    r = requests.get(f"{cc.url}/a.txt", headers={"x-ms-version": "latest"})
    assert r.status_code == 400 and r.headers["x-ms-error-code"] == "InvalidHeaderValue"
    svc.delete_container(cc.container_name)


def copies():
    src = svc.create_container(name("az-src"))
    dst = svc.create_container(name("az-dst"))
    data = os.urandom(300_000)
    sb = src.get_blob_client("s.bin")
    sb.upload_blob(data, metadata={"m": "1"})
    db = dst.get_blob_client("d.bin")
    props = db.start_copy_from_url(sb.url)
    assert props["copy_status"] == "success"
    assert db.download_blob().readall() == data and db.get_blob_properties().metadata == {"m": "1"}
    sas = generate_blob_sas(ACCOUNT, src.container_name, "s.bin", account_key=KEY,
                            permission=BlobSasPermissions(read=True),
                            expiry=datetime.datetime.now(UTC) + datetime.timedelta(hours=1))
    db2 = dst.get_blob_client("from-url.bin")
    db2.upload_blob_from_url(f"{sb.url}?{sas}")
    assert db2.download_blob().readall() == data
    db3 = dst.get_blob_client("blocks-from-url.bin")
    ids = [base64.b64encode(b"b1").decode(), base64.b64encode(b"b2").decode()]
    db3.stage_block_from_url(ids[0], f"{sb.url}?{sas}", source_offset=0, source_length=100_000)
    db3.stage_block_from_url(ids[1], f"{sb.url}?{sas}", source_offset=100_000, source_length=200_000)
    db3.commit_block_list(ids)
    assert db3.download_blob().readall() == data
    svc.delete_container(src.container_name)
    svc.delete_container(dst.container_name)


def cross_protocol():
    bucket = name("xproto")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="from-s3.txt", Body=b"written by s3", ContentType="text/plain",
                  Metadata={"plain": "1", "content-sha": "abc"})
    cc = svc.get_container_client(bucket)
    b = cc.get_blob_client("from-s3.txt")
    p = b.get_blob_properties()
    assert p.size == 13 and p.content_settings.content_type == "text/plain"
    assert p.metadata == {"plain": "1", "rename_content_sha": "abc", "rename_key_content_sha": "content-sha"}, p.metadata
    assert b.download_blob().readall() == b"written by s3"
    s3_head = s3.head_object(Bucket=bucket, Key="from-s3.txt")
    assert abs(s3_head["LastModified"].timestamp() - p.last_modified.timestamp()) < 1.0
    # S3 multipart → Blob read.
    mp = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin")
    parts, body = [], b""
    for n in (1, 2):
        chunk = os.urandom(5 * 1024 * 1024 if n == 1 else 1000)
        body += chunk
        r = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=mp["UploadId"], PartNumber=n, Body=chunk)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=mp["UploadId"], MultipartUpload={"Parts": parts})
    assert cc.get_blob_client("mp.bin").download_blob().readall() == body
    assert cc.get_blob_client("mp.bin").get_blob_properties().content_settings.content_md5 is None, "no invented MD5"
    # Blob block list → S3 GET; Blob metadata → S3 metadata.
    bb = cc.get_blob_client("from-blob.bin")
    ids = [base64.b64encode(f"x{i}".encode()).decode() for i in range(3)]
    chunks = [os.urandom(2000) for _ in ids]
    for i, c in zip(ids, chunks):
        bb.stage_block(i, c)
    bb.commit_block_list(ids, metadata={"from": "blob"}, content_settings=ContentSettings(content_type="application/x-b"))
    got = s3.get_object(Bucket=bucket, Key="from-blob.bin")
    assert got["Body"].read() == b"".join(chunks) and got["Metadata"] == {"from": "blob"}
    assert got["ContentType"] == "application/x-b"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == ["from-blob.bin", "from-s3.txt", "mp.bin"], listed
    assert [x.name for x in cc.list_blobs()] == listed
    # Delete across heads.
    cc.delete_blob("from-s3.txt")
    s3.delete_object(Bucket=bucket, Key="from-blob.bin")
    assert [x.name for x in cc.list_blobs()] == ["mp.bin"]
    s3.delete_object(Bucket=bucket, Key="mp.bin")
    s3.delete_bucket(Bucket=bucket)
    assert bucket not in [c.name for c in svc.list_containers()]


TESTS = [containers, blobs, block_lists, leases, sas_and_auth, copies, cross_protocol]
only = sys.argv[1:]
for t in TESTS:
    if only and t.__name__ not in only:
        continue
    t()
    print(f"azure: {t.__name__} ok", flush=True)
