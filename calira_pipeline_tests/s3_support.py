"""An S3-compatible server on loopback for tests: moto's server mode, in this process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_filesystem(endpoint: str) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key="testing",
        secret="testing",
        endpoint_url=endpoint,
        client_kwargs={"region_name": "us-east-1"},
        use_listings_cache=False,
    )


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> tuple[str, Any]:
    """A fresh bucket: (s3:// root with a prefix, filesystem)."""
    fs = s3_filesystem(moto_endpoint)
    bucket = f"calira-{uuid.uuid4().hex[:10]}"
    fs.call_s3("create_bucket", Bucket=bucket)
    return f"s3://{bucket}/warehouse", fs
