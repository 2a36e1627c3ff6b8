"""Load the demo data into a running stack, through the gateway like any client.

Idempotent: everything is looked up first (partners by tax code, alliances by
code, projects by title), so running it twice creates nothing new.
Usage: ``python -m conciliare.demo.load [--gateway URL]``.
"""

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx

from conciliare.demo import data
from conciliare.demo.catalog_data import load_offerings
from conciliare.demo.families import load_families
from conciliare.settings import get_platform_settings
from gateway.identity import IdentityStore
from gateway.security import Role


class DemoLoader:
    def __init__(self, gateway: str) -> None:
        self.http = httpx.Client(base_url=gateway, timeout=30)
        self.partner_ids: dict[str, str] = {}
        self.alliance_ids: dict[str, str] = {}

    def token(self, username: str, password: str) -> str:
        response = self.http.post(
            "/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def login_admin(self) -> None:
        admin = data.USERS[0]
        self.http.headers["Authorization"] = f"Bearer {self.token(admin.username, admin.password)}"

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.http.request(method, url, **kwargs)
        if response.is_error:
            raise SystemExit(f"{method} {url} -> {response.status_code}: {response.text}")
        return response.json()

    def partners(self) -> None:
        created = 0
        for partner in data.PARTNERS:
            found = self.request("GET", "/v1/partners", params={"tax_code": partner.tax_code})["items"]
            if found:
                self.partner_ids[partner.key] = found[0]["id"]
                continue
            body = {
                "kind": partner.kind,
                "name": partner.name,
                "tax_code": partner.tax_code,
                "comune_istat": partner.comune_istat,
                "family_friendly": partner.family_friendly,
            }
            self.partner_ids[partner.key] = self.request("POST", "/v1/partners", json=body)["id"]
            created += 1
        print(f"    partners: {len(data.PARTNERS)} ({created} new)")

    def alliances(self) -> None:
        existing = {a["code"]: a for a in self.request("GET", "/v1/alliances", params={"limit": 200})["items"]}
        for alliance in data.ALLIANCES:
            if alliance.code in existing:
                alliance_id = existing[alliance.code]["id"]
            else:
                body = {
                    "code": alliance.code,
                    "name": alliance.name,
                    "ambiti": [{"name": name, "comuni_istat": comuni} for name, comuni in alliance.ambiti],
                    "capofila_partner_id": self.partner_ids[alliance.capofila],
                }
                alliance_id = self.request("POST", "/v1/alliances", json=body)["id"]
            self.alliance_ids[alliance.code] = alliance_id
            members = self.request("GET", f"/v1/alliances/{alliance_id}/members", params={"limit": 200})["items"]
            present = {m["partner"]["id"] for m in members}
            added = 0
            for key, member_status in [(k, "formalized") for k in alliance.formalized] + [
                (k, "pending") for k in alliance.pending
            ]:
                partner_id = self.partner_ids[key]
                if partner_id not in present:
                    self.request(
                        "POST",
                        f"/v1/alliances/{alliance_id}/members",
                        json={"partner_id": partner_id, "role": "partner", "status": member_status},
                    )
                    added += 1
            projects = self.request("GET", f"/v1/alliances/{alliance_id}/projects")["items"]
            new_project = bool(alliance.project) and alliance.project["title"] not in {p["title"] for p in projects}
            if new_project:
                self.request("POST", f"/v1/alliances/{alliance_id}/projects", json=alliance.project)
            print(
                f"    alliance {alliance.code}: {len(members) + added} members ({added} new), "
                f"project {'created' if new_project else 'already there'}"
            )

    async def users(self) -> None:
        settings = get_platform_settings()
        store = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
        try:
            for user in data.USERS:
                await store.upsert_user(
                    user.username,
                    user.password,
                    Role(user.role),
                    user.display_name,
                    alliance_ids=[self.alliance_ids[c] for c in user.alliance_codes],
                    partner_id=self.partner_ids[user.partner_key] if user.partner_key else None,
                )
            client = data.INTEGRATOR_CLIENT
            await store.upsert_client(
                str(client["client_id"]),
                str(client["client_secret"]),
                self.partner_ids[str(client["partner_key"])],
                list(client["scopes"]),
                str(client["name"]),
            )
        finally:
            await store.close()


async def bootstrap_admin() -> None:
    """The platform admin must exist before anything can be loaded through the API."""
    settings = get_platform_settings()
    store = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
    try:
        admin = data.USERS[0]
        await store.upsert_user(admin.username, admin.password, Role.PLATFORM_ADMIN, admin.display_name)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    asyncio.run(bootstrap_admin())
    loader = DemoLoader(args.gateway)
    loader.login_admin()
    loader.partners()
    loader.alliances()
    asyncio.run(loader.users())
    load_offerings(loader.http, loader.partner_ids, loader.alliance_ids)
    family = next(u for u in data.USERS if u.role == "family")
    family_http = httpx.Client(base_url=args.gateway, timeout=30)
    family_http.headers["Authorization"] = f"Bearer {loader.token(family.username, family.password)}"
    load_families(family_http)
    manager = data.USERS[1]
    token = loader.token(manager.username, manager.password)
    print(f"    demo users: {', '.join(f'{u.username}/{u.password}' for u in data.USERS)}")
    print(f"    demo token ({manager.username}):\n{token}")
    Path(".run").mkdir(exist_ok=True)
    (Path(".run") / "demo_token").write_text(token)


if __name__ == "__main__":
    main()
