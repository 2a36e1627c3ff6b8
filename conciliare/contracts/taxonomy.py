"""Fixed vocabularies of the catalog, drawn from the alliances' documents.

Enum values are stable identifiers stored in MongoDB and sent over RPC; never rename
them. Italian labels are for people and may be reworded freely.
"""

from enum import StrEnum


class ServiceType(StrEnum):
    """Kinds of "time-saving" services (servizi salva tempo) offered to families."""

    POST_SCUOLA = "post_scuola"
    POST_SCUOLA_DSA_ADHD_BES = "post_scuola_dsa_adhd_bes"
    SPAZIO_COMPITI = "spazio_compiti"
    SPAZIO_PREADOLESCENTI = "spazio_preadolescenti"
    LABORATORIO_POMERIDIANO = "laboratorio_pomeridiano"
    ATTIVITA_VACANZE_SCOLASTICHE = "attivita_vacanze_scolastiche"
    CENTRO_ESTIVO = "centro_estivo"
    MICRONIDO = "micronido"
    CENTRO_PRIMA_INFANZIA = "centro_prima_infanzia"
    NIDO_FAMIGLIA = "nido_famiglia"
    BABY_SITTING = "baby_sitting"
    BABY_PARKING = "baby_parking"
    LUDOTECA = "ludoteca"
    TRASPORTO_ACCOMPAGNAMENTO = "trasporto_accompagnamento"
    PERCORSO_GENITORI = "percorso_genitori"
    ESTATE_IN_BIBLIOTECA = "estate_in_biblioteca"
    OTHER = "other"

    def label(self) -> str:
        return SERVICE_TYPE_LABELS[self]


class SpecialNeed(StrEnum):
    """Needs an offering can declare it supports (health data on the child's side)."""

    DSA = "dsa"
    ADHD = "adhd"
    BES = "bes"
    DISABILITA = "disabilita"

    def label(self) -> str:
        return SPECIAL_NEED_LABELS[self]


class SchoolLevel(StrEnum):
    NIDO = "nido"
    INFANZIA = "infanzia"
    PRIMARIA = "primaria"
    SECONDARIA_PRIMO_GRADO = "secondaria_primo_grado"
    SECONDARIA_SECONDO_GRADO = "secondaria_secondo_grado"

    def label(self) -> str:
        return SCHOOL_LEVEL_LABELS[self]


class PeriodKind(StrEnum):
    """Term time and the school-suspension periods families need cover for."""

    TERM_TIME = "term_time"
    CHRISTMAS = "christmas"
    EASTER = "easter"
    EARLY_SEPTEMBER = "early_september"
    SUMMER = "summer"

    def label(self) -> str:
        return PERIOD_KIND_LABELS[self]


class PriceUnit(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    FLAT = "flat"

    def label(self) -> str:
        return PRICE_UNIT_LABELS[self]


class AttendanceMode(StrEnum):
    """Flexible attendance ("forme flessibili di frequenza", family friendly)."""

    FULL = "full"
    CHOSEN_DAYS = "chosen_days"
    HOUR_PACKAGE = "hour_package"

    def label(self) -> str:
        return ATTENDANCE_MODE_LABELS[self]


class OfferingStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    SUSPENDED = "suspended"
    ARCHIVED = "archived"

    def label(self) -> str:
        return OFFERING_STATUS_LABELS[self]


SERVICE_TYPE_LABELS: dict[ServiceType, str] = {
    ServiceType.POST_SCUOLA: "Post scuola",
    ServiceType.POST_SCUOLA_DSA_ADHD_BES: "Post scuola DSA/ADHD/BES",
    ServiceType.SPAZIO_COMPITI: "Spazio compiti",
    ServiceType.SPAZIO_PREADOLESCENTI: "Spazio preadolescenti",
    ServiceType.LABORATORIO_POMERIDIANO: "Laboratorio pomeridiano",
    ServiceType.ATTIVITA_VACANZE_SCOLASTICHE: ("Attività ludico-educative nelle vacanze scolastiche"),
    ServiceType.CENTRO_ESTIVO: "Centro estivo",
    ServiceType.MICRONIDO: "Micronido",
    ServiceType.CENTRO_PRIMA_INFANZIA: "Centro prima infanzia",
    ServiceType.NIDO_FAMIGLIA: "Nido famiglia",
    ServiceType.BABY_SITTING: "Baby-sitting",
    ServiceType.BABY_PARKING: "Baby-parking",
    ServiceType.LUDOTECA: "Ludoteca",
    ServiceType.TRASPORTO_ACCOMPAGNAMENTO: "Trasporto e accompagnamento",
    ServiceType.PERCORSO_GENITORI: "Percorso per genitori",
    ServiceType.ESTATE_IN_BIBLIOTECA: "Estate in biblioteca",
    ServiceType.OTHER: "Altro servizio",
}

SPECIAL_NEED_LABELS: dict[SpecialNeed, str] = {
    SpecialNeed.DSA: "DSA (disturbi specifici dell'apprendimento)",
    SpecialNeed.ADHD: "ADHD (disturbo da deficit di attenzione e iperattività)",
    SpecialNeed.BES: "BES (bisogni educativi speciali)",
    SpecialNeed.DISABILITA: "disabilità con educatore di sostegno",
}

SCHOOL_LEVEL_LABELS: dict[SchoolLevel, str] = {
    SchoolLevel.NIDO: "nido",
    SchoolLevel.INFANZIA: "scuola dell'infanzia",
    SchoolLevel.PRIMARIA: "scuola primaria",
    SchoolLevel.SECONDARIA_PRIMO_GRADO: "scuola secondaria di primo grado",
    SchoolLevel.SECONDARIA_SECONDO_GRADO: "scuola secondaria di secondo grado",
}

PERIOD_KIND_LABELS: dict[PeriodKind, str] = {
    PeriodKind.TERM_TIME: "periodo scolastico",
    PeriodKind.CHRISTMAS: "vacanze di Natale",
    PeriodKind.EASTER: "vacanze di Pasqua",
    PeriodKind.EARLY_SEPTEMBER: "inizio settembre",
    PeriodKind.SUMMER: "estate",
}

PRICE_UNIT_LABELS: dict[PriceUnit, str] = {
    PriceUnit.HOUR: "all'ora",
    PriceUnit.DAY: "al giorno",
    PriceUnit.WEEK: "alla settimana",
    PriceUnit.MONTH: "al mese",
    PriceUnit.FLAT: "forfettario",
}

ATTENDANCE_MODE_LABELS: dict[AttendanceMode, str] = {
    AttendanceMode.FULL: "frequenza completa",
    AttendanceMode.CHOSEN_DAYS: "giorni a scelta",
    AttendanceMode.HOUR_PACKAGE: "pacchetto di ore",
}

OFFERING_STATUS_LABELS: dict[OfferingStatus, str] = {
    OfferingStatus.DRAFT: "bozza",
    OfferingStatus.PUBLISHED: "pubblicata",
    OfferingStatus.SUSPENDED: "sospesa",
    OfferingStatus.ARCHIVED: "archiviata",
}


class EnrolmentStatus(StrEnum):
    """Where an enrolment request stands (``requested`` until the enrolment service decides it)."""

    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    REFUSED = "refused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
