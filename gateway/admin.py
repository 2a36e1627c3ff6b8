"""Operator command line for the gateway's identity store.

    python -m gateway.admin user USERNAME --role alliance_manager --alliance ID [--password-stdin]
    python -m gateway.admin client CLIENT_ID --partner ID --scope catalog:read ... [--secret-stdin]

Secrets are read from standard input (or generated and printed once), never
taken from the command line, where they would land in shell history.
"""

import argparse
import asyncio
import secrets
import sys

from conciliare.settings import get_platform_settings
from gateway.identity import IdentityStore
from gateway.security import Role


def _secret(from_stdin: bool) -> tuple[str, bool]:
    if from_stdin:
        return sys.stdin.readline().strip(), False
    return secrets.token_urlsafe(24), True


async def _run(args: argparse.Namespace) -> None:
    settings = get_platform_settings()
    store = IdentityStore.connect(settings.mongo_uri, settings.database_name("gateway"))
    try:
        if args.command == "user":
            password, generated = _secret(args.password_stdin)
            await store.upsert_user(
                args.username,
                password,
                Role(args.role),
                args.display_name or args.username,
                alliance_ids=args.alliance,
                partner_id=args.partner,
                household_id=args.household,
            )
            print(f"user {args.username} ({args.role}) saved" + (f"; password: {password}" if generated else ""))
        else:
            secret, generated = _secret(args.secret_stdin)
            await store.upsert_client(args.client_id, secret, args.partner, args.scope, args.name or args.client_id)
            print(f"client {args.client_id} saved" + (f"; secret: {secret}" if generated else ""))
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    user = sub.add_parser("user", help="create or reset a user")
    user.add_argument("username")
    user.add_argument("--role", required=True, choices=[r.value for r in Role])
    user.add_argument("--alliance", action="append", default=[], help="alliance id (repeatable)")
    user.add_argument("--partner")
    user.add_argument("--household")
    user.add_argument("--display-name")
    user.add_argument("--password-stdin", action="store_true")
    client = sub.add_parser("client", help="create or reset an integrator client")
    client.add_argument("client_id")
    client.add_argument("--partner", required=True)
    client.add_argument("--scope", action="append", default=[], required=True)
    client.add_argument("--name")
    client.add_argument("--secret-stdin", action="store_true")
    args = parser.parse_args()
    try:
        asyncio.run(_run(args))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
