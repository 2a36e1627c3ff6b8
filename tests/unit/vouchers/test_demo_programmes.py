from conciliare.contracts.vouchers import ProgrammeCreate, ProgrammeSpec
from conciliare.demo.vouchers_data import castellanza_programmes, seed002_programme
from services.vouchers.domain.programmes import programme_errors, voucher_amount


def spec_of(payload: dict[str, object]) -> ProgrammeSpec:
    created = ProgrammeCreate.model_validate(payload)
    return ProgrammeSpec.model_validate(created.model_dump(exclude={"alliance_id"}))


def test_seed_programmes_open_cleanly() -> None:
    seed002 = spec_of(seed002_programme("all-crema", "prj-crema"))
    assert programme_errors(seed002) == []
    assert seed002.budget_cents == 14_400_000 and voucher_amount(seed002) == 30_000
    action_a, action_b = (spec_of(p) for p in castellanza_programmes("all-castellanza", "prj-castellanza"))
    assert programme_errors(action_a) == [] and programme_errors(action_b) == []
    assert action_a.budget_cents + action_b.budget_cents == 3_200_000  # seed 003's contribution
