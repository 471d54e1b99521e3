"""Lambda entry point: `handler.handler` (API Gateway REST API, Lambda proxy integration).

The configuration is read and validated at import, i.e. at cold start: a misconfigured
stack fails the function's initialisation with a message naming the bad variables, and no
request is ever half-served by it. The SNS client is made once and reused across requests.
"""

from __future__ import annotations

import logging
import os

import boto3
from botocore.config import Config
from sdfleet_submit.app import SubmitApp
from sdfleet_submit.settings import load_settings

logging.getLogger().setLevel(os.environ.get("LOG_LEVEL", "INFO"))

SETTINGS = load_settings(os.environ)
# SigV4 presigned URLs (the only kind S3 accepts for KMS-encrypted objects).
APP = SubmitApp(SETTINGS, boto3.client("sns"),
                boto3.client("s3", config=Config(signature_version="s3v4")))


def handler(event, context):
    return APP(event, context)
