"""Values in S3 (or any S3-compatible store), keyed by content hash under a prefix."""

from __future__ import annotations

from typing import Any

from .bounds import CHUNK, check_hash, check_size, digest_chunks
from .errors import LimitExceededError, StoreError, ValueNotFoundError


def _describe(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return f"{code}: {response['Error'].get('Message', '')}".strip(": ") if code else str(error)


class S3ValueStore:
    """`s3://bucket/prefix`; the endpoint comes from boto3's usual configuration
    (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, region, credentials chain)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if not bucket:
            raise StoreError("an S3 value store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # only runs that use S3 pay for importing boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, value_hash: str) -> str:
        check_hash(value_hash)
        return f"{self.prefix}/{value_hash}" if self.prefix else value_hash

    def put(self, value_hash: str, data: bytes, replace: bool = False) -> None:
        if not replace and self.exists(value_hash):
            return  # content-addressed: the same hash holds the same bytes
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(value_hash), Body=data)
        except Exception as error:
            raise StoreError(f"cannot write to {self.uri}: {_describe(error)}") from None

    def _object(self, value_hash: str) -> dict[str, Any]:
        """The get_object response of a value: its length and its streaming body."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(value_hash))
        except Exception as error:
            if _describe(error).startswith(("NoSuchKey", "404")):
                raise ValueNotFoundError(f"value {value_hash[:8]} is not in {self.uri}") from None
            raise StoreError(f"cannot read from {self.uri}: {_describe(error)}") from None

    def get(self, value_hash: str, max_bytes: int | None = None) -> bytes:
        response = self._object(value_hash)
        body = response["Body"]
        try:
            if max_bytes is None:
                return body.read()
            check_size(value_hash, int(response.get("ContentLength") or 0), max_bytes, self.uri)
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        check_size(value_hash, len(data), max_bytes, self.uri)
        return data

    def digest(self, value_hash: str, max_bytes: int | None = None) -> tuple[str, int]:
        response = self._object(value_hash)
        body = response["Body"]
        try:
            check_size(value_hash, int(response.get("ContentLength") or 0), max_bytes, self.uri)
            return digest_chunks(value_hash, body.iter_chunks(CHUNK), max_bytes, self.uri)
        except LimitExceededError:
            raise
        except Exception as error:
            raise StoreError(f"cannot read from {self.uri}: {_describe(error)}") from None
        finally:
            body.close()

    def exists(self, value_hash: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(value_hash))
        except Exception as error:
            if _describe(error).startswith(("404", "NoSuchKey", "Not Found")):
                return False
            raise StoreError(f"cannot read from {self.uri}: {_describe(error)}") from None
        return True
