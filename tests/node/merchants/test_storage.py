"""Document storage: local directory and S3 (a real moto server through boto3); type sniffing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.config import Settings
from node.infra.process import free_port
from node.storage import (
    FileTooLarge,
    LocalStore,
    S3Store,
    UnsupportedFileType,
    document_key,
    sniff,
    store_from_settings,
)
from tests.fixtures.ownership import PNG

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://testing:testing@127.0.0.1:{port}/kyc-bucket"
    server.stop()


class TestSniffing:
    @pytest.mark.parametrize(("data", "mime"), [(PNG, "image/png"), (PDF, "application/pdf"),
                                                (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "image/jpeg")])
    def test_allowed_types_are_recognised_from_content(self, data: bytes, mime: str) -> None:
        assert sniff(data, max_bytes=1000).content_type == mime

    @pytest.mark.parametrize("data", [b"<html><script>alert(1)</script>", b"MZ\x90\x00" + b"\x00" * 60,
                                      b"GIF89a" + b"\x00" * 20, b"plain text pretending.pdf"])
    def test_other_content_is_refused_whatever_its_name(self, data: bytes) -> None:
        with pytest.raises(UnsupportedFileType):
            sniff(data, max_bytes=1000)

    def test_size_limit(self) -> None:
        with pytest.raises(FileTooLarge):
            sniff(PNG + b"\x00" * 100, max_bytes=50)


class TestStores:
    async def test_local_store_round_trip_is_private(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path)
        key = document_key(uuid.uuid4(), "other", "png")
        await store.put(key, PNG, "image/png")
        assert await store.get(key) == PNG
        assert (tmp_path / key).stat().st_mode & 0o077 == 0
        with pytest.raises(ValueError):
            await store.put("../../etc/passwd", b"x", "text/plain")

    async def test_s3_store_round_trip_through_boto3(self, moto_url: str, tmp_path: Path) -> None:
        settings = Settings(_env_file=None, s3_url=moto_url, data_dir=tmp_path)  # type: ignore[call-arg]
        store = store_from_settings(settings)
        assert isinstance(store, S3Store) and store.bucket == "kyc-bucket"
        key = document_key(uuid.uuid4(), "bank_statement", "pdf")
        await store.put(key, PDF, "application/pdf")
        assert await store.get(key) == PDF
        # the bucket is not publicly readable: anonymous GET is refused
        import httpx

        endpoint = moto_url.replace("testing:testing@", "")
        anonymous = httpx.get(f"{endpoint}/{key}")
        assert anonymous.status_code in (401, 403)
        await store.delete(key)
