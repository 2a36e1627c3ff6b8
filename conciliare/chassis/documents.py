"""Documents in object storage (MinIO / any S3), one interface for every service.

- One private bucket (``conciliare-documents`` by default), created at start; nothing
  in it is public: reads go through short-lived presigned URLs.
- Keys are namespaced by alliance and owner:
  ``<alliance_id>/<owner_type>/<owner_id>/<kind>/<document id>``; uploads through a
  presigned PUT land under ``pending/`` until the completion call checks them.
- Every stored object carries its metadata: kind, content type, size, sha256,
  uploader, linked resource, and whether it is sensitive.
- Each kind has a policy: a size limit and the content types allowed, recognised by
  the bytes (magic numbers), never by the file name or the declared type. A refused
  upload answers ``DocumentRefused`` (``status`` 413, 415 or 422 for the gateway)
  and leaves nothing in storage.
- Sensitive kinds (ISEE certificates, diagnoses) cannot be read without an audit
  callback: the owning service records who read what in its own database before the
  URL is issued.

Synchronous, like the services' other clients (nameko workers run on eventlet); the
gateway calls it through ``asyncio.to_thread``.
"""

import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

from minio import Minio
from minio.commonconfig import CopySource, Filter
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from conciliare.errors import NotFound, ValidationFailed
from conciliare.settings import PlatformSettings

DOCUMENTS_BUCKET: Final = "conciliare-documents"
PENDING_PREFIX: Final = "pending/"
MAX_URL_TTL: Final = timedelta(minutes=15)
DEFAULT_URL_TTL: Final = timedelta(minutes=5)
MiB: Final = 1024 * 1024


class DocumentKind(StrEnum):
    POSTER = "poster"  # manifesti of offerings and projects
    BANDO = "bando"  # documents of a programme's call
    ISEE = "isee"  # ISEE certificate attached to an application: sensitive
    DIAGNOSIS = "diagnosis"  # diagnosis attached to an application: health data, sensitive
    ATTENDANCE_REGISTER = "attendance_register"
    EXPORT = "export"


PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
WEBP = "image/webp"
CSV = "text/csv"


@dataclass(frozen=True)
class DocumentPolicy:
    max_bytes: int
    allowed_types: frozenset[str]
    sensitive: bool = False


POLICIES: Final[dict[DocumentKind, DocumentPolicy]] = {
    DocumentKind.POSTER: DocumentPolicy(10 * MiB, frozenset({PDF, PNG, JPEG, WEBP})),
    DocumentKind.BANDO: DocumentPolicy(20 * MiB, frozenset({PDF})),
    DocumentKind.ISEE: DocumentPolicy(10 * MiB, frozenset({PDF, PNG, JPEG}), sensitive=True),
    DocumentKind.DIAGNOSIS: DocumentPolicy(10 * MiB, frozenset({PDF, PNG, JPEG}), sensitive=True),
    DocumentKind.ATTENDANCE_REGISTER: DocumentPolicy(5 * MiB, frozenset({PDF, CSV})),
    DocumentKind.EXPORT: DocumentPolicy(50 * MiB, frozenset({CSV, PDF})),
}


class DocumentRefused(ValidationFailed):
    """An upload the policy refuses; ``status`` is the HTTP answer the gateway gives."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail, [{"field": "file", "message": detail}])
        self.status = status


def sniff(head: bytes) -> str | None:
    """The content type the first bytes prove, among the ones the platform accepts."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A multi-byte character cut at the end of the sample is still text.
            if exc.start < len(head) - 3:
                return None
        return CSV
    return None


def check(kind: DocumentKind, size: int, head: bytes) -> str:
    """The content type of an upload the policy accepts, or ``DocumentRefused``."""
    policy = POLICIES[kind]
    if size == 0:
        raise DocumentRefused(422, "Il file è vuoto.")
    if size > policy.max_bytes:
        raise DocumentRefused(413, f"Il file supera il limite di {policy.max_bytes // MiB} MB.")
    content_type = sniff(head)
    if content_type is None or content_type not in policy.allowed_types:
        allowed = ", ".join(sorted(policy.allowed_types))
        raise DocumentRefused(415, f"Tipo di file non ammesso per questo documento (ammessi: {allowed}).")
    return content_type


@dataclass(frozen=True)
class Owner:
    """The resource a document belongs to, inside an alliance (the tenant)."""

    alliance_id: str
    type: str  # offering, project, programme, application, enrolment ...
    id: str


@dataclass(frozen=True)
class DocumentRef:
    key: str
    kind: DocumentKind
    owner: Owner
    content_type: str
    size: int
    sha256: str
    uploader: str
    sensitive: bool


Audit = Callable[[DocumentRef, str], None]


def _segment(value: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValidationFailed("Identificativo non valido per un documento.", [{"field": "key", "message": value}])
    return value


def document_key(owner: Owner, kind: DocumentKind, document_id: str) -> str:
    parts = (owner.alliance_id, owner.type, owner.id, kind.value, document_id)
    return "/".join(_segment(p) for p in parts)


class DocumentStore:
    def __init__(self, client: Minio, bucket: str = DOCUMENTS_BUCKET) -> None:
        self.client = client
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings: PlatformSettings, bucket: str = DOCUMENTS_BUCKET) -> "DocumentStore":
        client = Minio(
            settings.minio_endpoint,
            access_key=settings.minio_access_key,
            secret_key=settings.minio_secret_key.get_secret_value(),
            secure=settings.minio_secure,
        )
        return cls(client, bucket)

    def ensure_bucket(self) -> None:
        """Create the private bucket once (no bucket policy: nothing is anonymous).

        Uploads never completed are expired by the server after a day (``pending/``).
        """
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        rule = Rule(
            "Enabled",
            rule_filter=Filter(prefix=PENDING_PREFIX),
            rule_id="expire-pending-uploads",
            expiration=Expiration(days=1),
        )
        self.client.set_bucket_lifecycle(self.bucket, LifecycleConfig([rule]))

    # --- writing ---------------------------------------------------------------------

    def put(self, data: bytes, *, kind: DocumentKind, owner: Owner, uploader: str) -> DocumentRef:
        """Store a document checked against its kind's policy; refused: nothing is written."""
        content_type = check(kind, len(data), data[:512])
        key = document_key(owner, kind, uuid.uuid4().hex)
        ref = DocumentRef(
            key=key,
            kind=kind,
            owner=owner,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            uploader=uploader,
            sensitive=POLICIES[kind].sensitive,
        )
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata=_metadata(ref)
        )
        return ref

    def presigned_upload(
        self, *, kind: DocumentKind, owner: Owner, ttl: timedelta = DEFAULT_URL_TTL
    ) -> tuple[str, str]:
        """(pending key, presigned PUT URL): the client uploads, then calls ``complete_upload``."""
        document_key(owner, kind, "x")  # checks the segments
        pending = f"{PENDING_PREFIX}{uuid.uuid4().hex}"
        url = self.client.presigned_put_object(self.bucket, pending, expires=min(ttl, MAX_URL_TTL))
        return pending, url

    def complete_upload(self, pending_key: str, *, kind: DocumentKind, owner: Owner, uploader: str) -> DocumentRef:
        """Check what a presigned PUT stored and file it under its key; refused: the upload is deleted."""
        if not pending_key.startswith(PENDING_PREFIX) or "/" in pending_key[len(PENDING_PREFIX) :]:
            raise ValidationFailed("Caricamento non valido.", [{"field": "upload", "message": pending_key}])
        try:
            stat = self.client.stat_object(self.bucket, pending_key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise NotFound("Caricamento non trovato.") from None
            raise
        try:
            size = int(stat.size or 0)
            policy = POLICIES[kind]
            if size > policy.max_bytes:
                check(kind, size, b"")  # raises 413 without reading the object
            data = self._read(pending_key)
            content_type = check(kind, len(data), data[:512])
        except DocumentRefused:
            self.client.remove_object(self.bucket, pending_key)
            raise
        key = document_key(owner, kind, uuid.uuid4().hex)
        ref = DocumentRef(
            key=key,
            kind=kind,
            owner=owner,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            uploader=uploader,
            sensitive=POLICIES[kind].sensitive,
        )
        self.client.copy_object(
            self.bucket,
            key,
            CopySource(self.bucket, pending_key),
            metadata={**_metadata(ref), "Content-Type": content_type},
            metadata_directive="REPLACE",
        )
        self.client.remove_object(self.bucket, pending_key)
        return ref

    def delete(self, key: str) -> None:
        self.client.remove_object(self.bucket, key)

    # --- reading ---------------------------------------------------------------------

    def stat(self, key: str) -> DocumentRef:
        try:
            stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                raise NotFound("Documento non trovato.") from None
            raise
        meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}

        def field(name: str) -> str:
            return str(meta.get(f"x-amz-meta-{name}", ""))

        return DocumentRef(
            key=key,
            kind=DocumentKind(field("kind")),
            owner=Owner(alliance_id=field("alliance"), type=field("owner-type"), id=field("owner-id")),
            content_type=str(stat.content_type),
            size=int(stat.size or 0),
            sha256=field("sha256"),
            uploader=field("uploader"),
            sensitive=field("sensitive") == "true",
        )

    def list(self, owner: Owner, kind: DocumentKind) -> list[DocumentRef]:
        """The documents of one kind an owner has, oldest first (the bucket is the record)."""
        prefix = document_key(owner, kind, "x")[:-1]
        found = self.client.list_objects(self.bucket, prefix=prefix)
        refs = [self.stat(item.object_name) for item in found if item.object_name]
        return sorted(refs, key=lambda ref: ref.key)

    def presigned_download(
        self, ref: DocumentRef, *, reader: str, audit: Audit | None = None, ttl: timedelta = DEFAULT_URL_TTL
    ) -> str:
        """A short-lived GET URL. A sensitive document needs ``audit``, called before the URL exists."""
        if ref.sensitive:
            if audit is None:
                raise PermissionError("sensitive document read without an audit record")
            audit(ref, reader)
        url: str = self.client.presigned_get_object(self.bucket, ref.key, expires=min(ttl, MAX_URL_TTL))
        return url

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code == "NoSuchKey":
                return False
            raise
        return True

    def _read(self, key: str) -> bytes:
        response: Any = self.client.get_object(self.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()


def _metadata(ref: DocumentRef) -> dict[str, Any]:
    return {
        "kind": ref.kind.value,
        "alliance": ref.owner.alliance_id,
        "owner-type": ref.owner.type,
        "owner-id": ref.owner.id,
        "sha256": ref.sha256,
        "uploader": ref.uploader,
        "sensitive": "true" if ref.sensitive else "false",
    }
