"""`s3://bucket/key` paths for File and Dir. boto3 is imported only when such a path is used.

The endpoint, region and credentials come from boto3's usual configuration
(`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`, the credentials chain),
as for the S3 value store. An object is hashed by its ETag, which S3 changes whenever
the object is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import re
import threading
from typing import IO, Any

from .errors import FileError
from .files import MISSING
from .s3store import _describe

_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
_NOT_FOUND = ("404", "NoSuchKey", "NotFound", "Not Found")


def _split(path: str) -> tuple[str, str]:
    bucket, _, key = path[len("s3://") :].partition("/")
    if not bucket:
        raise FileError(f"path {path!r}: an S3 path needs a bucket: s3://bucket/key")
    return bucket, key


def _missing(error: Exception) -> bool:
    return _describe(error).startswith(_NOT_FOUND)


class _Upload(io.BytesIO):
    """A write buffer that becomes the object's content when closed."""

    def __init__(self, filesystem: S3FileSystem, path: str, initial: bytes = b"") -> None:
        super().__init__(initial)
        self.seek(0, io.SEEK_END)
        self._filesystem = filesystem
        self._path = path

    def close(self) -> None:
        if not self.closed:
            self._filesystem.put_bytes(self._path, self.getvalue())
        super().close()


class S3FileSystem:
    name = "s3"

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, ...], Any] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        # One client per endpoint setting, so a changed AWS_ENDPOINT_URL is followed.
        # Creating a client from the default session is not thread-safe; using one is.
        endpoint = tuple(os.environ.get(name) for name in _ENDPOINT_VARIABLES)
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                import boto3

                client = self._clients[endpoint] = boto3.client("s3")
        return client

    def _fail(self, path: str, error: Exception) -> FileError:
        return FileError(f"S3 request for {path} failed: {_describe(error)}")

    def get_bytes(self, path: str) -> bytes:
        bucket, key = _split(path)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:
            if _missing(error):
                raise FileNotFoundError(f"no such S3 object: {path}") from None
            raise self._fail(path, error) from None

    def put_bytes(self, path: str, data: bytes) -> None:
        bucket, key = _split(path)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        except Exception as error:
            raise self._fail(path, error) from None

    def open(self, path: str, mode: str, **kwargs: Any) -> IO:
        if "r" in mode and "+" not in mode:
            stream: IO = io.BytesIO(self.get_bytes(path))
        elif "w" in mode or "x" in mode:
            stream = _Upload(self, path)
        elif "a" in mode:
            stream = _Upload(self, path, self.get_bytes(path) if self.exists(path) else b"")
        else:
            raise FileError(f"S3 path {path}: mode {mode!r} is not supported (r, w, a, x)")
        if "b" in mode:
            return stream
        return io.TextIOWrapper(
            stream, encoding=kwargs.get("encoding") or "utf-8", newline=kwargs.get("newline")
        )

    def _head(self, path: str) -> dict[str, Any] | None:
        bucket, key = _split(path)
        try:
            return self.client.head_object(Bucket=bucket, Key=key)
        except Exception as error:
            if _missing(error):
                return None
            raise self._fail(path, error) from None

    def exists(self, path: str) -> bool:
        return self._head(path) is not None or self.isdir(path)

    def isdir(self, path: str) -> bool:
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            listed = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except Exception as error:
            raise self._fail(path, error) from None
        return listed.get("KeyCount", 0) > 0

    def size(self, path: str) -> int:
        head = self._head(path)
        if head is None:
            raise FileNotFoundError(f"no such S3 object: {path}")
        return head["ContentLength"]

    def stamp(self, path: str) -> str:
        head = self._head(path)
        return MISSING if head is None else head["ETag"]

    def content_stamp(self, path: str) -> str:
        try:
            return hashlib.sha1(self.get_bytes(path)).hexdigest()
        except FileNotFoundError:
            return MISSING

    def remove(self, path: str) -> None:
        bucket, key = _split(path)
        try:
            self.client.delete_object(Bucket=bucket, Key=key)
        except Exception as error:
            if not _missing(error):
                raise self._fail(path, error) from None

    def _objects(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            )
            for page in pages:
                found.extend((item["Key"], item["ETag"]) for item in page.get("Contents", []))
        except Exception as error:
            raise self._fail(f"s3://{bucket}/{prefix}", error) from None
        return sorted(found)

    def list_files(self, path: str, hidden: bool = False) -> list[tuple[str, str | None]]:
        """Every object under a prefix; a key's dots mean nothing to S3, so `hidden` too."""
        bucket, key = _split(path)
        prefix = key.rstrip("/") + "/" if key else ""
        return [(f"s3://{bucket}/{name}", etag) for name, etag in self._objects(bucket, prefix)]

    def glob(self, pattern: str) -> list[str]:
        bucket, key = _split(pattern)
        literal = re.split(r"[*?\[]", key, maxsplit=1)[0]
        # fnmatch's `*` already crosses `/`, as S3 keys have no real directories.
        expression = key.replace("**/", "*").replace("**", "*")
        return [
            f"s3://{bucket}/{name}"
            for name, _ in self._objects(bucket, literal)
            if fnmatch.fnmatchcase(name, expression)
        ]

    def mkdir(self, path: str) -> None:
        """S3 has no directories: a prefix exists once an object is under it."""

    def rmdir(self, path: str, recursive: bool) -> None:
        listed = self.list_files(path)
        if listed and not recursive:
            raise FileError(f"S3 prefix {path} is not empty (use recursive=True)")
        for name, _ in listed:
            self.remove(name)

    def copy(self, source: str, target: str) -> None:
        """Copy to, from or within S3 (one of the two is an s3:// path)."""
        try:
            if source.startswith("s3://") and target.startswith("s3://"):
                bucket, key = _split(source)
                target_bucket, target_key = _split(target)
                self.client.copy_object(
                    Bucket=target_bucket, Key=target_key, CopySource={"Bucket": bucket, "Key": key}
                )
            elif source.startswith("s3://"):
                directory = os.path.dirname(target)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                self.client.download_file(*_split(source), target)
            else:
                self.client.upload_file(source, *_split(target))
        except FileError:
            raise
        except Exception as error:
            if _missing(error):
                raise FileNotFoundError(f"no such S3 object: {source}") from None
            raise self._fail(source, error) from None


_filesystem: S3FileSystem | None = None


def s3_filesystem() -> S3FileSystem:
    global _filesystem
    if _filesystem is None:
        _filesystem = S3FileSystem()
    return _filesystem
