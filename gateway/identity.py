"""Staff/family users and integrator clients: the gateway's own database."""

from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from gateway.security import ROLE_SCOPES, Principal, Role, hash_secret, verify_secret

Document = dict[str, Any]


class IdentityStore:
    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.db = database

    @classmethod
    def connect(cls, uri: str, database: str) -> "IdentityStore":
        client: AsyncMongoClient[Document] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)
        return cls(client[database])

    async def close(self) -> None:
        await self.db.client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        await self.db.idempotency.create_index("expires_at")

    # --- users ----------------------------------------------------------------

    async def upsert_user(
        self,
        username: str,
        password: str,
        role: Role,
        display_name: str,
        alliance_ids: list[str] | None = None,
        partner_id: str | None = None,
        household_id: str | None = None,
    ) -> None:
        """Create or reset a user (used by demo seeding and the admin CLI)."""
        if role is Role.ALLIANCE_MANAGER and not alliance_ids:
            raise ValueError("an alliance manager needs at least one alliance")
        if role is Role.PARTNER_OPERATOR and not partner_id:
            raise ValueError("a partner operator needs a partner")
        await self.db.users.replace_one(
            {"_id": username},
            {
                "_id": username,
                "password_hash": hash_secret(password),
                "role": role.value,
                "display_name": display_name,
                "alliance_ids": alliance_ids or [],
                "partner_id": partner_id,
                "household_id": household_id,
                "disabled": False,
                "updated_at": datetime.now(UTC),
            },
            upsert=True,
        )

    async def set_household(self, username: str, household_id: str) -> None:
        await self.db.users.update_one(
            {"_id": username, "role": Role.FAMILY.value}, {"$set": {"household_id": household_id}}
        )

    async def authenticate_user(self, username: str, password: str) -> Principal | None:
        doc = await self.db.users.find_one({"_id": username})
        if not verify_secret(doc["password_hash"] if doc else None, password) or doc is None:
            return None
        if doc.get("disabled"):
            return None
        role = Role(doc["role"])
        return Principal(
            subject=f"user:{username}",
            role=role,
            scopes=ROLE_SCOPES[role],
            alliance_ids=doc.get("alliance_ids", []),
            partner_id=doc.get("partner_id"),
            household_id=doc.get("household_id"),
        )

    # --- integrator clients (OAuth2 client credentials) --------------------------

    async def upsert_client(self, client_id: str, secret: str, partner_id: str, scopes: list[str], name: str) -> None:
        allowed = ROLE_SCOPES[Role.PARTNER_OPERATOR]
        unknown = set(scopes) - allowed
        if unknown:
            raise ValueError(f"scopes not allowed for an integrator: {sorted(unknown)}")
        await self.db.clients.replace_one(
            {"_id": client_id},
            {
                "_id": client_id,
                "secret_hash": hash_secret(secret),
                "partner_id": partner_id,
                "scopes": sorted(scopes),
                "name": name,
                "disabled": False,
                "updated_at": datetime.now(UTC),
            },
            upsert=True,
        )

    async def authenticate_client(self, client_id: str, secret: str, requested: set[str] | None) -> Principal | None:
        doc = await self.db.clients.find_one({"_id": client_id})
        if not verify_secret(doc["secret_hash"] if doc else None, secret) or doc is None:
            return None
        if doc.get("disabled"):
            return None
        granted = frozenset(doc["scopes"])
        if requested:
            granted = granted & frozenset(requested)
        return Principal(
            subject=f"client:{client_id}", role=Role.PARTNER_OPERATOR, scopes=granted, partner_id=doc["partner_id"]
        )

    # --- idempotency keys ----------------------------------------------------------

    async def reserve_idempotency_key(
        self, key: str, owner: str, fingerprint: str, expires_at: datetime
    ) -> Document | None:
        """Claim ``key`` for ``owner``; return the earlier record if it was already claimed."""
        record_id = f"{owner}:{key}"
        try:
            await self.db.idempotency.insert_one(
                {"_id": record_id, "fingerprint": fingerprint, "state": "in_progress", "expires_at": expires_at}
            )
            return None
        except DuplicateKeyError:
            found: Document | None = await self.db.idempotency.find_one({"_id": record_id})
            return found

    async def complete_idempotency_key(self, key: str, owner: str, status: int, body: Any) -> None:
        await self.db.idempotency.update_one(
            {"_id": f"{owner}:{key}"}, {"$set": {"state": "done", "status": status, "body": body}}
        )

    async def release_idempotency_key(self, key: str, owner: str) -> None:
        await self.db.idempotency.delete_one({"_id": f"{owner}:{key}", "state": "in_progress"})
