"""The documents component against the real MinIO: private bucket, presigned URLs, refusals."""

import hashlib
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from minio import Minio

from conciliare.chassis.documents import (
    PENDING_PREFIX,
    DocumentKind,
    DocumentRef,
    DocumentRefused,
    DocumentStore,
    Owner,
)
from conciliare.errors import ValidationFailed
from conciliare.settings import PlatformSettings

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
POSTER_OWNER = Owner(alliance_id="alliance-marnate", type="offering", id="off-spazio-compiti")


@pytest.fixture
def store() -> Iterator[DocumentStore]:
    settings = PlatformSettings(MINIO_ENDPOINT=os.environ.get("MINIO_ENDPOINT", "127.0.0.1:9000"))
    client = Minio(
        settings.minio_endpoint,
        access_key=settings.minio_access_key,
        secret_key=settings.minio_secret_key.get_secret_value(),
        secure=settings.minio_secure,
    )
    bucket = f"test-docs-{uuid.uuid4().hex[:12]}"
    documents = DocumentStore(client, bucket)
    documents.ensure_bucket()
    documents.ensure_bucket()  # idempotent
    yield documents
    for obj in client.list_objects(bucket, recursive=True):
        client.remove_object(bucket, str(obj.object_name))
    client.remove_bucket(bucket)


def objects(store: DocumentStore) -> list[str]:
    return [str(o.object_name) for o in store.client.list_objects(store.bucket, recursive=True)]


def test_poster_round_trip_through_presigned_urls(store: DocumentStore) -> None:
    pending, put_url = store.presigned_upload(kind=DocumentKind.POSTER, owner=POSTER_OWNER)
    assert httpx.put(put_url, content=PNG).status_code == 200
    ref = store.complete_upload(pending, kind=DocumentKind.POSTER, owner=POSTER_OWNER, uploader="totem.operatore")
    assert ref.key.startswith("alliance-marnate/offering/off-spazio-compiti/poster/")
    assert ref.content_type == "image/png"
    assert ref.sha256 == hashlib.sha256(PNG).hexdigest()
    assert objects(store) == [ref.key]  # the pending upload is gone
    assert store.stat(ref.key) == ref

    response = httpx.get(store.presigned_download(ref, reader="famiglia.rossi"))
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["content-type"] == "image/png"
    # Private: without a signature nothing is served.
    anonymous = httpx.get(f"http://{store.client._base_url.host}/{store.bucket}/{ref.key}")
    assert anonymous.status_code == 403


def test_direct_put_and_delete(store: DocumentStore) -> None:
    ref = store.put(PDF, kind=DocumentKind.BANDO, owner=POSTER_OWNER, uploader="marnate.staff")
    assert ref.content_type == "application/pdf"
    assert httpx.get(store.presigned_download(ref, reader="x")).content == PDF
    store.delete(ref.key)
    assert not store.exists(ref.key)


@pytest.mark.parametrize(
    ("kind", "data", "status"),
    [
        (DocumentKind.BANDO, PNG, 415),  # a PNG is no bando, whatever its name says
        (DocumentKind.POSTER, b"MZ\x90\x00binary", 415),
        (DocumentKind.POSTER, b"", 422),
        (DocumentKind.ATTENDANCE_REGISTER, b"a;b\n" * (2 * 1024 * 1024), 413),
    ],
)
def test_refused_uploads_leave_nothing_behind(
    store: DocumentStore, kind: DocumentKind, data: bytes, status: int
) -> None:
    with pytest.raises(DocumentRefused) as direct:
        store.put(data, kind=kind, owner=POSTER_OWNER, uploader="u")
    assert direct.value.status == status
    pending, url = store.presigned_upload(kind=kind, owner=POSTER_OWNER)
    assert httpx.put(url, content=data).status_code == 200
    assert objects(store) == [pending]
    with pytest.raises(DocumentRefused) as completed:
        store.complete_upload(pending, kind=kind, owner=POSTER_OWNER, uploader="u")
    assert completed.value.status == status
    assert objects(store) == []
    assert pending.startswith(PENDING_PREFIX)


def test_sensitive_documents_are_read_only_with_an_audit_record(store: DocumentStore) -> None:
    owner = Owner(alliance_id="alliance-marnate", type="application", id="app-1")
    ref = store.put(PDF, kind=DocumentKind.ISEE, owner=owner, uploader="famiglia.rossi")
    assert ref.sensitive and store.stat(ref.key).sensitive
    with pytest.raises(PermissionError):
        store.presigned_download(ref, reader="marnate.staff")
    audited: list[tuple[DocumentRef, str]] = []
    url = store.presigned_download(ref, reader="marnate.staff", audit=lambda r, who: audited.append((r, who)))
    assert audited == [(ref, "marnate.staff")]
    assert httpx.get(url).content == PDF


def test_keys_cannot_escape_their_namespace(store: DocumentStore) -> None:
    with pytest.raises(ValidationFailed, match="non valid"):
        store.put(PDF, kind=DocumentKind.BANDO, owner=Owner("a/../b", "offering", "x"), uploader="u")
    with pytest.raises(ValidationFailed, match="non valid"):
        store.complete_upload("elsewhere/key", kind=DocumentKind.BANDO, owner=POSTER_OWNER, uploader="u")
