"""Drop the benchmarks' S3 buckets, objects and all.

    buckets.py drop BUCKET...

The S3 server is $S3_ENDPOINT with $S3_ACCESS_KEY / $S3_SECRET_KEY (scripts/stack
env).  Every object is deleted (1,000 per request), then the bucket; a
bucket that does not exist is not a failure.  Every other failure is
printed, and the exit status is 1 when any bucket could not be dropped.
"""
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client():
    return boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"],
                        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
                        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
                        region_name=os.environ.get("S3_REGION", "us-east-1"),
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 10}))


def drop(s3, bucket):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def main(argv):
    if len(argv) < 3 or argv[1] != "drop":
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    s3, failed = client(), 0
    for bucket in argv[2:]:
        try:
            drop(s3, bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "NoSuchBucket":
                print(f"bench: could not drop bucket {bucket}: {e}", file=sys.stderr)
                failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv))
