"""What the catalog answers when the services it asks are away or refuse, without servers."""

from typing import Any, cast

import pytest

from conciliare.chassis.remote import RemoteRefused, RemoteUnavailable
from conciliare.chassis.remote import remote_detail as _remote_detail
from conciliare.contracts.partners import AllianceMembershipCheck, AllianceTerritory, MembershipStatus
from conciliare.errors import Conflict, NotFound, Unavailable, ValidationFailed
from services.catalog import usecases
from services.catalog.dependencies import EnrolmentClient, PartnersClient

ALLIANCE = "alleanza-marnate"
TOTEM = "coop-totem"


class FakePartners:
    """Answers like the partners service, or fails the way ``_RemoteClient`` reports it."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure

    def membership_of(self, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
        if self.failure:
            raise self.failure
        return AllianceMembershipCheck(
            alliance_id=alliance_id, partner_id=partner_id, role=None, status=MembershipStatus.FORMALIZED
        )

    def alliance_territory(self, alliance_id: str) -> AllianceTerritory:
        if self.failure:
            raise self.failure
        return AllianceTerritory(alliance_id=alliance_id, comuni_istat=["012098"], formalized_partner_ids=[TOTEM])


class FakeEnrolment:
    def __init__(self, failure: Exception) -> None:
        self.failure = failure

    def seat_counts(self, offering_id: str) -> Any:
        raise self.failure


def partners(failure: Exception | None = None) -> PartnersClient:
    return cast(PartnersClient, FakePartners(failure))


@pytest.mark.parametrize(
    "check",
    [
        lambda client: usecases.ensure_formalized_provider(client, ALLIANCE, TOTEM),
        lambda client: usecases.ensure_comune_in_territory(client, ALLIANCE, "012098"),
    ],
    ids=["membership", "territory"],
)
class TestPartnersChecks:
    def test_answered(self, check: Any) -> None:
        check(partners())

    def test_partners_away_is_unavailable(self, check: Any) -> None:
        with pytest.raises(Unavailable, match="servizio partner non risponde"):
            check(partners(RemoteUnavailable("partners")))

    def test_unknown_alliance_is_a_field_error(self, check: Any) -> None:
        with pytest.raises(ValidationFailed) as raised:
            check(partners(RemoteRefused("partners", "NotFound", "Alleanza non trovata.")))
        assert raised.value.errors[0]["field"] == "alliance_id"

    def test_another_domain_refusal_stays_what_it_is(self, check: Any) -> None:
        with pytest.raises(Conflict) as raised:
            check(partners(RemoteRefused("partners", "Conflict", "Qualcosa non torna.")))
        assert raised.value.detail == "Qualcosa non torna."

    def test_a_crash_over_there_is_not_reinterpreted(self, check: Any) -> None:
        with pytest.raises(RemoteRefused):
            check(partners(RemoteRefused("partners", "KeyError", "'members'")))


def test_not_a_formalized_member() -> None:
    class Pending(FakePartners):
        def membership_of(self, alliance_id: str, partner_id: str) -> AllianceMembershipCheck:
            return AllianceMembershipCheck(
                alliance_id=alliance_id, partner_id=partner_id, role=None, status=MembershipStatus.PENDING
            )

    with pytest.raises(ValidationFailed) as raised:
        usecases.ensure_formalized_provider(cast(PartnersClient, Pending()), ALLIANCE, TOTEM)
    assert raised.value.errors == [
        {"field": "provider_partner_id", "message": "l'adesione del partner all'alleanza non è ancora formalizzata"}
    ]


def test_enrolment_away_is_unavailable_and_a_refusal_a_conflict() -> None:
    with pytest.raises(Unavailable, match="servizio iscrizioni non risponde"):
        usecases.confirmed_seats(cast(EnrolmentClient, FakeEnrolment(RemoteUnavailable("enrolment"))), "o1")
    with pytest.raises(Conflict, match="posti già"):
        usecases.confirmed_seats(
            cast(EnrolmentClient, FakeEnrolment(RemoteRefused("enrolment", "NotFound", "x"))), "o1"
        )


class TestRemoteRefused:
    def test_domain_errors_keep_their_class_and_message(self) -> None:
        error = RemoteRefused("partners", "NotFound", "Alleanza non trovata.").as_domain_error()
        assert isinstance(error, NotFound) and error.detail == "Alleanza non trovata."

    def test_other_errors_are_none(self) -> None:
        assert RemoteRefused("partners", "UnexpectedError", "boom").as_domain_error() is None

    @pytest.mark.parametrize(
        ("value", "detail"),
        [
            ("('Alleanza non trovata.', [])", "Alleanza non trovata."),
            (
                "(\"L'alleanza ha già un capofila.\", [{'field': 'role', 'message': 'x'}])",
                "L'alleanza ha già un capofila.",
            ),
            ("Unknown service `partners`", "Unknown service `partners`"),
            ("'members'", "'members'"),
        ],
    )
    def test_the_message_is_read_out_of_nameko_value(self, value: str, detail: str) -> None:
        assert _remote_detail(value) == detail
