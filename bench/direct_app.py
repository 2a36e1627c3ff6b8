"""Baseline for the read-path benchmark: a plain FastAPI endpoint on the same data.

It reads the partners service's MongoDB collections directly (alliance document,
then its partners), with no gateway, no auth, no RPC: the cost floor the gateway
path is compared against.
"""

import os
from typing import Any

from fastapi import FastAPI, HTTPException
from pymongo import AsyncMongoClient

MONGO_URI = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
DATABASE = os.environ.get("MONGO_DB_PREFIX", "conciliare_") + "partners"

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGO_URI, tz_aware=True)
db = client[DATABASE]
app = FastAPI()


@app.get("/alliances/{alliance_id}/partners")
async def alliance_partners(alliance_id: str) -> dict[str, Any]:
    alliance = await db.alliances.find_one({"_id": alliance_id}, {"members": 1})
    if alliance is None:
        raise HTTPException(404)
    ids = [m["partner_id"] for m in alliance["members"] if m["status"] != "withdrawn"]
    partners = await db.partners.find({"_id": {"$in": ids}}).sort("name_key", 1).to_list(None)
    items = [
        {
            "id": p["_id"],
            "kind": p["kind"],
            "name": p["name"],
            "tax_code": p["tax_code"],
            "comune_istat": p["comune_istat"],
            "email": p.get("email"),
            "family_friendly": p.get("family_friendly", False),
            "created_at": p["created_at"].isoformat(),
        }
        for p in partners
    ]
    return {"items": items, "total": len(items), "limit": 50, "offset": 0}
