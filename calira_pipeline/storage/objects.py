"""The few object-store verbs per-tenant storage needs, for a local path or an `s3://` root.

Both roots go through fsspec; what differs is the conditional write that makes a publish atomic:
S3 has `If-Match`/`If-None-Match` on PUT, a local folder gets a lock file and a rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import fsspec.asyn


class PreconditionFailed(RuntimeError):
    """A conditional write lost: someone else wrote the object since it was read."""


@dataclass(frozen=True)
class Versioned:
    """An object's bytes and the tag a conditional write must match to replace it."""

    data: bytes
    tag: str


class ObjectRoot:
    """`root` (an absolute path or `s3://bucket/prefix`) with read, write and conditional put."""

    def __init__(self, root: str, filesystem: Any | None = None) -> None:
        self.is_s3 = root.startswith("s3://")
        if self.is_s3:
            self.root = root.rstrip("/")
            self.fs = filesystem if filesystem is not None else _s3_filesystem()
        elif "://" in root:
            raise ValueError(
                f"storage root {root!r} is neither a local path nor s3://bucket/prefix; "
                "use one of those"
            )
        else:
            self.root = str(Path(root).expanduser().resolve())
            self.fs = filesystem if filesystem is not None else fsspec.filesystem("file")

    def url(self, relative: str) -> str:
        """What DuckDB and fsspec open for `relative` (a '/'-separated key under the root)."""
        return f"{self.root}/{relative}"

    def put_file(self, local: Path, relative: str) -> None:
        target = self.url(relative)
        if not self.is_s3:
            # A local target appears whole or not at all (readers never see a partial file).
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            partial = f"{target}.{uuid.uuid4().hex}.partial"
            self.fs.put_file(str(local), partial)
            os.replace(partial, target)
            return
        self.fs.put_file(str(local), target)  # an S3 PUT is atomic by itself

    def get_file(self, relative: str, local: Path) -> None:
        self.fs.get_file(self.url(relative), str(local))

    def read(self, relative: str) -> Versioned | None:
        """The object and its tag, read together (None when absent)."""
        if self.is_s3:
            bucket, key = self._bucket_key(relative)
            try:
                data, tag = fsspec.asyn.sync(self.fs.loop, _s3_get, self.fs, bucket, key)
            except FileNotFoundError:
                return None
            return Versioned(data, tag)
        path = Path(self.url(relative))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return Versioned(data, _local_tag(data))

    def put_if(self, relative: str, data: bytes, expected_tag: str | None) -> None:
        """Write `relative` only if its tag is still `expected_tag` (None: only if absent)."""
        if self.is_s3:
            self._s3_put_if(relative, data, expected_tag)
            return
        path = Path(self.url(relative))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read(relative)
            if (current.tag if current else None) != expected_tag:
                raise PreconditionFailed(str(path))
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
            partial.write_bytes(data)
            os.replace(partial, path)

    def remove(self, relatives: list[str]) -> None:
        for relative in relatives:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.url(relative))

    def list_names(self, relative: str) -> list[str]:
        """Names directly under the folder `relative` (empty if there is none)."""
        folder = self.url(relative)
        if self.is_s3:
            self.fs.invalidate_cache(folder)
        try:
            return sorted(
                p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)
            )
        except FileNotFoundError:
            return []

    def _s3_put_if(self, relative: str, data: bytes, expected_tag: str | None) -> None:
        bucket, key = self._bucket_key(relative)
        condition = {"IfMatch": expected_tag} if expected_tag else {"IfNoneMatch": "*"}
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except Exception as exc:  # botocore's ClientError, translated by s3fs into OSError kinds
            if _is_precondition_failure(exc):
                raise PreconditionFailed(f"{self.root}/{relative}") from exc
            raise

    def _bucket_key(self, relative: str) -> tuple[str, str]:
        bucket, _, prefix = self.root[len("s3://") :].partition("/")
        return bucket, f"{prefix}/{relative}" if prefix else relative


async def _s3_get(fs: Any, bucket: str, key: str) -> tuple[bytes, str]:
    # One GET gives the bytes and their ETag together (a HEAD then a GET could mix versions).
    answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    async with answer["Body"] as body:
        data = await body.read()
    return bytes(data), str(answer["ETag"])


def _local_tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_precondition_failure(exc: BaseException) -> bool:
    # s3fs turns botocore's 412 into FileExistsError ("pre-conditions ... did not hold").
    text = f"{type(exc).__name__} {exc}"
    return isinstance(exc, FileExistsError) or any(
        mark in text for mark in ("PreconditionFailed", "pre-conditions", "412", "Conflict")
    )


def _s3_filesystem() -> Any:
    # s3fs takes keys, region and endpoint from the standard AWS variables and config files
    # (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3 ...): no secrets here.
    import s3fs

    return s3fs.S3FileSystem(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        # A pointer must be read fresh every time, never from a listing cache.
        use_listings_cache=False,
    )
