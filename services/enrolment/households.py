"""Households and children: registration and reading, with children's needs kept apart.

A child's needs (DSA, ADHD, BES, disabilità) are health data, a special category
under GDPR art. 9: stored apart from the child, shown only to the family and to the
provider of a service the child is enrolled in, and every read is written to the
audit log (who, in which role, why, on what basis, when).
"""

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from conciliare.contracts.common import Page, new_id
from conciliare.contracts.enrolment import ChildCreate, ChildOut, HouseholdCreate, HouseholdOut, Viewer
from conciliare.errors import Conflict, ValidationFailed, validation_failed_from_pydantic
from conciliare.geo import comune_by_istat
from services.enrolment import access
from services.enrolment.domain import ROME, ChildNeeds, ChildSpec, HouseholdSpec
from services.enrolment.ports import Repository, Runtime
from services.enrolment.records import AuditEntry, AuditPurpose, Child, Household

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, context: dict[str, Any] | None = None) -> M:
    """``data`` as a domain model; a failure becomes ``ValidationFailed`` with Italian field errors."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_failed_from_pydantic(exc) from None


def _household_out(household: Household) -> HouseholdOut:
    spec = household.spec
    comune = comune_by_istat(spec.residence_comune_istat)
    return HouseholdOut.model_validate(
        {
            "id": household.id,
            "guardians": [guardian.model_dump(mode="json") for guardian in spec.guardians],
            "residence_comune_istat": spec.residence_comune_istat,
            "residence_comune_name": comune.name if comune else spec.residence_comune_istat,
            "isee": spec.isee.model_dump(mode="json") if spec.isee else None,
            "single_parent": spec.single_parent,
            "created_at": household.created_at,
        }
    )


def _child_out(child: Child, needs: ChildNeeds | None) -> ChildOut:
    return ChildOut(
        id=child.id,
        household_id=child.household_id,
        first_name=child.first_name,
        last_name=child.last_name,
        codice_fiscale=child.codice_fiscale,
        birth_date=child.birth_date,
        needs=sorted(need.value for need in needs.needs) if needs is not None else None,
        created_at=child.created_at,
    )


def create_household(repo: Repository, viewer: Viewer, spec_in: HouseholdCreate, now: datetime) -> HouseholdOut:
    """Register the caller's household: one per family user."""
    access.ensure_family(viewer, "Solo un utente famiglia può registrare il proprio nucleo familiare.")
    spec = validated(HouseholdSpec, spec_in.model_dump(mode="json"))
    if comune_by_istat(spec.residence_comune_istat) is None:
        raise ValidationFailed(
            "Il nucleo non può essere registrato.",
            [
                {
                    "field": "residence_comune_istat",
                    "message": f"codice ISTAT {spec.residence_comune_istat} sconosciuto: nessun Comune con "
                    "questo codice",
                }
            ],
        )
    # The owner claim comes first (unique): a crash before the household is stored
    # leaves a claim the next attempt completes with the same id.
    household = Household(
        id=repo.claim_household(viewer.subject, new_id()), owner_subject=viewer.subject, spec=spec, created_at=now
    )
    if not repo.add_household(household):
        raise Conflict(f"Il nucleo familiare di questo utente è già registrato (id {household.id}).")
    return _household_out(household)


def get_household(repo: Repository, household_id: str, viewer: Viewer) -> HouseholdOut:
    return _household_out(access.readable_household(viewer, repo.household(household_id)))


def list_households(repo: Repository, viewer: Viewer, limit: int, offset: int) -> Page[HouseholdOut]:
    if access.may_list_every_household(viewer):
        households, total = repo.households(limit, offset)
        return Page(items=[_household_out(h) for h in households], total=total, limit=limit, offset=offset)
    household_id = repo.household_id_of(viewer.subject)
    own = repo.household(household_id) if household_id else None
    items = [_household_out(own)] if own is not None and offset == 0 else []
    return Page(items=items, total=1 if own is not None else 0, limit=limit, offset=offset)


def add_child(repo: Repository, household_id: str, viewer: Viewer, spec_in: ChildCreate, runtime: Runtime) -> ChildOut:
    """Register a child: identity, and needs (health data) stored apart."""
    access.writable_household(viewer, repo.household(household_id))
    now = runtime.now()
    spec = validated(
        ChildSpec, spec_in.model_dump(mode="json", exclude={"needs"}), context={"today": now.astimezone(ROME).date()}
    )
    needs = validated(ChildNeeds, {"needs": spec_in.needs})
    duplicate = Conflict(f"Il bambino con codice fiscale {spec.codice_fiscale} è già registrato in questo nucleo.")
    # The claim (unique per household and codice fiscale) fixes the child's id first:
    # a crash before the child is stored leaves a claim the next attempt completes.
    child_id = repo.claim_child(household_id, spec.codice_fiscale, new_id())
    if repo.child(child_id) is not None:
        raise duplicate
    # Health data before identity: a child is never stored without its needs.
    repo.store_needs(child_id, needs, now)
    child = Child.register(child_id, household_id, spec, now)
    if not repo.add_child(child):
        raise duplicate
    repo.audit([AuditEntry.of(viewer, child_id, AuditPurpose.REGISTRATION, "household", now)])
    return _child_out(child, needs)


def list_children(repo: Repository, household_id: str, viewer: Viewer, now: datetime) -> list[ChildOut]:
    """Children of a household; needs only for the family itself, each read audited."""
    household = access.readable_household(viewer, repo.household(household_id))
    children = sorted(repo.children(household.child_ids), key=lambda c: (c.last_name, c.first_name, c.id))
    if not access.may_read_needs(viewer, household):
        # The platform operator sees who is registered, never health data.
        return [_child_out(child, None) for child in children]
    needs = repo.needs_of(child.id for child in children)
    repo.audit([AuditEntry.of(viewer, c.id, AuditPurpose.FAMILY_VIEW, "household", now) for c in children])
    return [_child_out(child, needs.get(child.id, ChildNeeds())) for child in children]
