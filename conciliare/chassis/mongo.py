"""MongoDB access for nameko services: one client per container, a repository per worker.

The code relies only on what MongoDB 7 (Docker mode) and mongo-java-server (native
mode) both guarantee: atomic single-document writes (guarded ``$inc``, version-guarded
updates, ``find_one_and_update``) and unique indexes. No multi-document transactions,
no ``$lookup``, no change streams, no text indexes. mongo-java-server answers only
``_id`` and unique-key look-ups from an index, so hot paths look documents up by key.
"""

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from nameko.extensions import DependencyProvider
from pymongo import MongoClient
from pymongo.database import Database

from conciliare.settings import get_platform_settings

R = TypeVar("R")

Document = dict[str, Any]


def make_client(uri: str) -> MongoClient[Document]:
    # Short server selection so a missing database fails a request quickly and
    # visibly instead of hanging a worker for 30 s.
    return MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True, uuidRepresentation="standard")


class MongoRepositoryProvider(DependencyProvider, Generic[R]):  # type: ignore[misc]
    """Hands each worker a small repository bound to the service's own database.

    ``service`` names the database (``<prefix><service>``); the nameko config keys
    ``MONGO_URI`` and ``MONGO_DATABASE`` override the environment, which is how
    interface tests get a fresh database each.
    """

    def __init__(
        self,
        service: str,
        repository_factory: Callable[[Database[Document]], R],
        ensure_indexes: Callable[[Database[Document]], None],
    ) -> None:
        self.service = service
        self.repository_factory = repository_factory
        self.ensure_indexes = ensure_indexes
        self.client: MongoClient[Document] | None = None
        self.database: Database[Document] | None = None

    def setup(self) -> None:
        settings = get_platform_settings()
        config = self.container.config
        uri = config.get("MONGO_URI") or settings.mongo_uri
        name = config.get("MONGO_DATABASE") or settings.database_name(self.service)
        self.client = make_client(uri)
        self.database = self.client[name]
        # Idempotent: create_index on an existing identical index is a no-op.
        self.ensure_indexes(self.database)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def get_dependency(self, worker_ctx: Any) -> R:
        assert self.database is not None, "provider not set up"
        return self.repository_factory(self.database)
