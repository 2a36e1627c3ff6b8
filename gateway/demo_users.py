"""The gateway's own seeding of the demo users and integrator client (``make run`` only).

    python -m gateway.demo_users admin                  # the platform admin, before anything else
    python -m gateway.demo_users staff --ids FILE       # everyone else, once partners and alliances exist
                                                        # (with the families applying to the demo bandi)

Users live in the gateway's identity store, so the gateway writes them; the demo
loader (``conciliare.demo.load``) only talks HTTP. It writes the ids it resolved
(alliance codes and partner keys to ids) to FILE, which is how staff users get
their tenant scopes here. Demo credentials only, listed in ``conciliare/demo/data.py``.
"""

import argparse
import asyncio
import json
from pathlib import Path

from conciliare.demo import data
from conciliare.settings import get_platform_settings
from gateway.identity import IdentityStore
from gateway.security import Role


async def seed_admin(store: IdentityStore) -> None:
    admin = data.USERS[0]
    await store.upsert_user(admin.username, admin.password, Role(admin.role), admin.display_name)


async def seed_staff(store: IdentityStore, alliance_ids: dict[str, str], partner_ids: dict[str, str]) -> None:
    for user in data.USERS[1:]:
        await store.upsert_user(
            user.username,
            user.password,
            Role(user.role),
            user.display_name,
            alliance_ids=[alliance_ids[code] for code in user.alliance_codes],
            partner_id=partner_ids[user.partner_key] if user.partner_key else None,
        )
    # The generated families who apply to the demo voucher bandi: no tenant scope of their own.
    for user in data.APPLICANTS:
        await store.upsert_user(user.username, user.password, Role(user.role), user.display_name)
    client = data.INTEGRATOR_CLIENT
    await store.upsert_client(
        client.client_id, client.client_secret, partner_ids[client.partner_key], list(client.scopes), client.name
    )


async def _run(args: argparse.Namespace, ids: dict[str, dict[str, str]]) -> None:
    settings = get_platform_settings()
    store = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
    try:
        if args.command == "admin":
            await seed_admin(store)
        else:
            await seed_staff(store, ids["alliances"], ids["partners"])
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("admin", help="create or reset the demo platform admin")
    staff = sub.add_parser("staff", help="create or reset the other demo users and the integrator client")
    staff.add_argument("--ids", required=True, help="JSON written by `conciliare.demo.load --step organisations`")
    args = parser.parse_args()
    ids = json.loads(Path(args.ids).read_text()) if args.command == "staff" else {}
    asyncio.run(_run(args, ids))
    print(f"    demo {'platform admin' if args.command == 'admin' else 'users and integrator client'} saved")


if __name__ == "__main__":
    main()
