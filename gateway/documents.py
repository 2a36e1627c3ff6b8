"""Object storage (MinIO / any S3) for documents: private buckets, presigned URLs."""

import asyncio
from datetime import timedelta

from minio import Minio

from conciliare.settings import PlatformSettings

DOCUMENTS_BUCKET = "conciliare-documents"


class DocumentStore:
    def __init__(self, settings: PlatformSettings) -> None:
        self.client = Minio(
            settings.minio_endpoint,
            access_key=settings.minio_access_key,
            secret_key=settings.minio_secret_key.get_secret_value(),
            secure=settings.minio_secure,
        )

    async def ping(self) -> None:
        await asyncio.to_thread(self.client.bucket_exists, DOCUMENTS_BUCKET)

    async def ensure_bucket(self) -> None:
        def create() -> None:
            if not self.client.bucket_exists(DOCUMENTS_BUCKET):
                self.client.make_bucket(DOCUMENTS_BUCKET)

        await asyncio.to_thread(create)

    async def presigned_get(self, object_name: str, minutes: int = 10) -> str:
        url: str = await asyncio.to_thread(
            self.client.presigned_get_object, DOCUMENTS_BUCKET, object_name, timedelta(minutes=minutes)
        )
        return url
