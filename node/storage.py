"""Private document storage: a local directory by default, any S3-compatible store by URL.

Nothing stored here is public. Files are read back only by the API, which serves
them to the owning merchant and to admins through short-lived signed links
(``signed_download_token``), never by a public bucket URL (original defect 3).
Uploads are limited in size and their type is sniffed from the content
(``filetype``), never taken from the file name or the client's content type.

``S3_URL`` forms: ``s3://bucket`` (AWS, credentials from the usual chain or the
settings) or ``http(s)://[key:secret@]host[:port]/bucket`` (MinIO, moto, R2...).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import filetype

from node.config import Settings
from node.errors import NodeError, ValidationFailed

ALLOWED_TYPES: dict[str, str] = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,299}$")


class FileTooLarge(NodeError):
    code = "FILE_TOO_LARGE"
    status = 413


class UnsupportedFileType(ValidationFailed):
    code = "UNSUPPORTED_FILE_TYPE"


class DocumentStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    extension: str
    size: int
    sha256: str


def sniff(data: bytes, *, max_bytes: int) -> Sniffed:
    """The file's real type from its bytes; only PDF, PNG and JPEG pass."""
    if len(data) > max_bytes:
        raise FileTooLarge(f"file is larger than {max_bytes // (1024 * 1024)} MB")
    if not data:
        raise ValidationFailed("file: empty")
    kind = filetype.guess(data)
    mime = kind.mime if kind else None
    if mime not in ALLOWED_TYPES:
        raise UnsupportedFileType("file must be a PDF, PNG or JPEG document")
    return Sniffed(mime, ALLOWED_TYPES[mime], len(data), hashlib.sha256(data).hexdigest())


def _check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"bad storage key {key!r}")
    return key


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)


class S3Store:
    """boto3 (the maintained S3 client) in worker threads; the bucket is created private if missing."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._ready = False

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> S3Store:
        import boto3
        from botocore.config import Config

        parts = urlsplit(url)
        access = settings.s3_access_key.get_secret_value() if settings.s3_access_key else None
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None
        if parts.username:
            access, secret = unquote(parts.username), unquote(parts.password or "")
        if parts.scheme == "s3":
            endpoint, bucket = None, parts.netloc.split("@")[-1] or settings.s3_bucket
        else:
            host = parts.hostname or "localhost"
            endpoint = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
            bucket = parts.path.strip("/") or settings.s3_bucket
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=settings.s3_region, aws_access_key_id=access,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        return cls(client, bucket)

    def _ensure_bucket(self) -> None:
        if self._ready:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self.client.create_bucket(Bucket=self.bucket)
        self._ready = True

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        self.client.put_object(Bucket=self.bucket, Key=_check_key(key), Body=data, ContentType=content_type,
                               ServerSideEncryption="AES256")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, data, content_type)

    def _get(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=_check_key(key))["Body"]
        data: bytes = body.read()
        return data

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=_check_key(key))


_stores: dict[tuple[str, str], DocumentStore] = {}


def store_from_settings(settings: Settings) -> DocumentStore:
    """One store per configuration per process (boto3 clients are thread-safe and reusable)."""
    root = settings.storage_dir or settings.data_dir / "documents"
    cache_key = (settings.s3_url or "", str(root))
    store = _stores.get(cache_key)
    if store is None:
        store = S3Store.from_url(settings.s3_url, settings) if settings.s3_url else LocalStore(root)
        _stores[cache_key] = store
    return store


def document_key(merchant_id: uuid.UUID, category: str, extension: str) -> str:
    """``kyc-documents/{merchantId}/{category}/{uuid}.{ext}`` like the original, minus the public bucket."""
    return f"kyc-documents/{merchant_id}/{category}/{uuid.uuid4()}.{extension}"
