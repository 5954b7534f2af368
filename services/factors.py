"""The emission factors in effect, for every service that computes emissions: the recorded
versions (services.store) with their supersessions applied, over the built-in defaults."""

from __future__ import annotations

from compute.emissions import EmissionFactor, FactorTable
from compute.factor_versions import DEFAULT_FACTORS, effective, with_defaults
from services.store import Store


async def factors_in_effect(store: Store) -> list[EmissionFactor]:
    """Recorded factors where they are valid, the defaults elsewhere; pieces of one version
    keep its ref, but the later pieces of a default split by recorded ones are numbered
    ("mee-2024#2")."""
    return with_defaults(effective(await store.factor_versions()), DEFAULT_FACTORS)


async def factor_table(store: Store) -> FactorTable:
    """The table emissions are computed with (compute.emissions)."""
    return FactorTable(await factors_in_effect(store))
