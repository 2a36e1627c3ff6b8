"""The ``Prefer`` request header (RFC 7240), as far as the API honours it: ``wait``.

``Prefer: wait=N`` asks the server to hold the answer up to N seconds for a result
it would otherwise report as pending (202). Unknown or malformed preferences are
ignored, as the RFC asks; the answer names what it applied in ``Preference-Applied``.
"""

from collections.abc import Iterable
from typing import Final

PREFER_HEADER: Final = "Prefer"
APPLIED_HEADER: Final = "Preference-Applied"
MAX_WAIT_SECONDS: Final = 10


def preferred_wait(headers: Iterable[str], ceiling: int = MAX_WAIT_SECONDS) -> int | None:
    """Seconds asked with ``wait`` in the ``Prefer`` headers (capped at ``ceiling``), or None if not asked."""
    wait: int | None = None
    for header in headers:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].strip().partition("=")
            value = value.strip().strip('"')
            if name.strip().lower() == "wait" and value.isdigit():
                wait = min(int(value), ceiling)
    return wait


def applied(wait: int) -> dict[str, str]:
    """Response headers saying which preference was applied."""
    return {APPLIED_HEADER: f"wait={wait}", "Vary": PREFER_HEADER}
