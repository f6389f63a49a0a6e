#!/usr/bin/env python3
"""Small-object PUT/GET throughput against a running node (used to pick inline_max_bytes).

usage: bench_put.py SIZE_BYTES COUNT THREADS   (env: CAIRN_ENDPOINT + AWS credentials)
Prints PUT and GET objects/s and mean latency.
"""
import concurrent.futures
import os
import sys
import threading
import time

import boto3
from botocore.config import Config

size, count, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
local = threading.local()


def s3():
    if not hasattr(local, "c"):
        local.c = boto3.client("s3", endpoint_url=os.environ["CAIRN_ENDPOINT"], region_name="us-east-1",
                               config=Config(max_pool_connections=threads * 2,
                                             request_checksum_calculation="when_required",
                                             response_checksum_validation="when_required"))
    return local.c


bucket = "bench-%d-%d" % (size, os.getpid())
s3().create_bucket(Bucket=bucket)
body = os.urandom(size)


def timed(fn, n):
    lat = []

    def one(i):
        t = time.perf_counter()
        fn(i)
        lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, range(n)))
    dt = time.perf_counter() - t0
    return n / dt, sum(lat) / len(lat) * 1000


put_rate, put_ms = timed(lambda i: s3().put_object(Bucket=bucket, Key=f"k{i:06d}", Body=body), count)
get_rate, get_ms = timed(lambda i: s3().get_object(Bucket=bucket, Key=f"k{i:06d}")["Body"].read(), count)
print(f"size={size} count={count} threads={threads}: PUT {put_rate:.0f}/s ({put_ms:.1f} ms), "
      f"GET {get_rate:.0f}/s ({get_ms:.1f} ms)")
