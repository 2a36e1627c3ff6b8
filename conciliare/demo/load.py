"""Load the demo data into a running stack, through the gateway like any client.

Idempotent: everything is looked up first (partners by tax code, alliances by
code, projects by title), so running it twice creates nothing new.
Usage, between the gateway's own seeding of users (``gateway.demo_users``), as
``make run`` does it: ``python -m conciliare.demo.load --step organisations``
(partners, alliances, projects; writes the resolved ids to ``.run/demo_ids.json``),
then ``--step services`` (offerings, the demo family, then the voucher bandi of seeds
002 and 003 run to a redemption: ``vouchers_data``), once the users exist.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import httpx

from conciliare.demo import data
from conciliare.demo.catalog_data import load_offerings
from conciliare.demo.families import load_families
from conciliare.demo.vouchers_data import VoucherDemo, load_vouchers

IDS_FILE = Path(".run") / "demo_ids.json"


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

    def login(self, username: str) -> httpx.Client:
        """A client of its own, logged in as demo user ``username`` (data.USERS or data.APPLICANTS)."""
        user = next(u for u in [*data.USERS, *data.APPLICANTS] if u.username == username)
        client = httpx.Client(base_url=self.http.base_url, timeout=60)
        client.headers["Authorization"] = f"Bearer {self.token(user.username, user.password)}"
        return client

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

    def save_ids(self, path: Path) -> None:
        """The ids this run resolved, for the gateway's seeding of the demo users."""
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"alliances": self.alliance_ids, "partners": self.partner_ids}, indent=2))

    def resolve_ids(self) -> None:
        """Partner and alliance ids of a stack where ``--step organisations`` already ran."""
        for partner in data.PARTNERS:
            found = self.request("GET", "/v1/partners", params={"tax_code": partner.tax_code})["items"]
            if not found:
                raise SystemExit(f"partner {partner.name} not found: run --step organisations first")
            self.partner_ids[partner.key] = found[0]["id"]
        existing = {a["code"]: a["id"] for a in self.request("GET", "/v1/alliances", params={"limit": 200})["items"]}
        self.alliance_ids = {alliance.code: existing[alliance.code] for alliance in data.ALLIANCES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--step", choices=["organisations", "services"], required=True)
    parser.add_argument("--ids", default=str(IDS_FILE), help="where the resolved ids are written")
    args = parser.parse_args()
    loader = DemoLoader(args.gateway)
    loader.login_admin()
    if args.step == "organisations":
        loader.partners()
        loader.alliances()
        loader.save_ids(Path(args.ids))
        return
    loader.resolve_ids()
    load_offerings(loader.http, loader.partner_ids, loader.alliance_ids)
    family = next(u for u in data.USERS if u.role == "family")
    family_http = httpx.Client(base_url=args.gateway, timeout=30)
    family_http.headers["Authorization"] = f"Bearer {loader.token(family.username, family.password)}"
    load_families(family_http)
    load_vouchers(VoucherDemo(loader.login, loader.partner_ids, loader.alliance_ids))
    manager = data.USERS[1]
    token = loader.token(manager.username, manager.password)
    print(f"    demo users: {', '.join(f'{u.username}/{u.password}' for u in data.USERS)}")
    print(
        f"    families applying to the voucher bandi: {data.APPLICANTS[0].username} ... "
        f"{data.APPLICANTS[-1].username}/{data.APPLICANTS_PASSWORD}"
    )
    print(f"    demo token ({manager.username}):\n{token}")
    Path(".run").mkdir(exist_ok=True)
    (Path(".run") / "demo_token").write_text(token)


if __name__ == "__main__":
    main()
