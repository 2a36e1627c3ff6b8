"""Documents over the running stack: an offering's poster is uploaded through the gateway,
stored privately in MinIO and downloaded through a presigned URL; a refused upload
leaves nothing behind."""

import uuid

import httpx
import pytest

from tests.e2e.builders import assert_problem, ok
from tests.e2e.conftest import Stack
from tests.e2e.test_enrolment_api import offering_body, publish_offering

pytestmark = pytest.mark.e2e

POSTER = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def test_a_poster_is_uploaded_and_read_back_through_a_presigned_url(
    stack: Stack, partner_ids: dict[str, str], marnate: str
) -> None:
    totem = stack.user(f"totem.docs.{uuid.uuid4().hex[:6]}", "partner_operator", partner=partner_ids["coop_totem"])
    offering_id = publish_offering(totem, offering_body(marnate, capacity=5))
    path = f"/v1/offerings/{offering_id}/posters"

    uploaded = ok(totem.post(path, files={"file": ("manifesto.pdf", POSTER, "application/pdf")}), 201)
    assert uploaded["content_type"] == "application/pdf" and uploaded["size"] == len(POSTER)
    assert offering_id in uploaded["key"]

    family = stack.user(f"famiglia.{uuid.uuid4().hex[:8]}", "family")
    [poster] = ok(family.get(path))["items"]
    downloaded = httpx.get(poster["url"])
    assert downloaded.status_code == 200 and downloaded.content == POSTER
    # The object itself is private: without the signature, no access.
    assert httpx.get(poster["url"].split("?")[0]).status_code == 403

    # A file whose bytes are not an accepted type is refused and stores nothing.
    refused = totem.post(path, files={"file": ("manifesto.pdf", b"\x00\x01binary junk", "application/pdf")})
    assert_problem(refused, 415)
    assert len(ok(family.get(path))["items"]) == 1

    # Only who may change the offering uploads; another alliance's manager does not see it.
    assert_problem(family.post(path, files={"file": ("m.pdf", POSTER, "application/pdf")}), 403)
    outsider = stack.user(f"altra.{uuid.uuid4().hex[:6]}", "alliance_manager", alliances=("altra-alleanza",))
    assert_problem(outsider.get(path), 404)
