"""A local SMTP sink: a real SMTP server (aiosmtpd) that stores every message it receives.

Each message becomes one ``.eml`` file under the mail directory (written to a
temporary name and renamed, so a reader never sees half a message), named
``<UTC time>-<counter>-<random>.eml`` so a directory listing is in arrival order.
Nothing is ever relayed anywhere.

    python scripts/infra/smtp_sink.py --dir "$CONCILIARE_STATE/smtp/mail"         # serve on 127.0.0.1:1025
    python scripts/infra/smtp_sink.py --check [--host 127.0.0.1 --port 1025]      # health check: exit 0 if it answers

Used by ``make run``/``make test`` (native mode) and by the notifications interface tests.
"""

import argparse
import asyncio
import itertools
import os
import signal
import smtplib
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1025


class MaildirHandler:
    """aiosmtpd handler: one ``.eml`` file per message, with the envelope as headers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{next(self.counter):08d}-{uuid.uuid4().hex[:8]}.eml"
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        envelope_headers = (
            f"X-Sink-Mail-From: {envelope.mail_from}\r\nX-Sink-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        temporary = self.directory / f".{name}.tmp"
        temporary.write_bytes(envelope_headers + data)
        os.replace(temporary, self.directory / name)
        return "250 Message accepted for delivery"


def check(host: str, port: int) -> int:
    """Health check: the sink answers an SMTP NOOP."""
    try:
        with smtplib.SMTP(host, port, timeout=3) as smtp:
            code, _ = smtp.noop()
    except OSError as exc:
        print(f"smtp sink {host}:{port} not answering: {exc}", file=sys.stderr)
        return 1
    return 0 if code == 250 else 1


def serve(host: str, port: int, directory: Path) -> int:
    from aiosmtpd.smtp import SMTP

    directory.mkdir(parents=True, exist_ok=True)
    handler = MaildirHandler(directory)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="conciliare-smtp-sink", data_size_limit=25 * 1024 * 1024),
            host=host,
            port=port,
        )
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"smtp sink listening on {host}:{port}, mail in {directory}", flush=True)
        async with server:
            await stop.wait()

    asyncio.run(main())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SMTP_SINK_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMTP_SINK_PORT", DEFAULT_PORT)))
    parser.add_argument("--dir", type=Path, help="where received mail is stored as .eml files")
    parser.add_argument("--check", action="store_true", help="health check only: exit 0 if the sink answers")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.host, args.port)
    if args.dir is None:
        parser.error("--dir is required to serve")
    return serve(args.host, args.port, args.dir)


if __name__ == "__main__":
    sys.exit(main())
