"""Dependency providers of the partners service."""

from conciliare.chassis.mongo import MongoRepositoryProvider
from services.partners.repository import PartnersRepository, ensure_indexes


class PartnersStore(MongoRepositoryProvider[PartnersRepository]):
    def __init__(self) -> None:
        super().__init__("partners", PartnersRepository, ensure_indexes)
