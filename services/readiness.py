"""Readiness of the API process (GET /readyz): does the store answer a trivial query and is the
bus reachable, each within a timeout. Reads and changes nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from services.store import Store

READY_TIMEOUT_S = 2.0
_NO_TOKEN_ID = "000000000000"  # a well-formed token id that is never issued: a cheap lookup


@runtime_checkable
class Probed(Protocol):
    """A bus that can say whether it is reachable: `probe` raises when it is not."""

    async def probe(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    dependency: str  # "store" or "bus"
    ok: bool
    reason: str | None = None  # why not, when not ok


async def _check(dependency: str, probe: Awaitable[object], timeout_s: float) -> Check:
    try:
        await asyncio.wait_for(probe, timeout_s)
    except TimeoutError:
        return Check(dependency=dependency, ok=False, reason=f"no answer within {timeout_s} s")
    except Exception as e:  # any failure means not ready; the reason says which
        return Check(dependency=dependency, ok=False, reason=f"{type(e).__name__}: {e}")
    return Check(dependency=dependency, ok=True)


async def readiness(
    store: Store, bus: object | None = None, *, timeout_s: float = READY_TIMEOUT_S
) -> list[Check]:
    """The store's check, and the bus's when there is one; a bus that cannot probe itself (an
    in-process bus) counts as reachable."""
    checks = [_check("store", store.token(_NO_TOKEN_ID), timeout_s)]
    if bus is not None and isinstance(bus, Probed):
        checks.append(_check("bus", bus.probe(), timeout_s))
    elif bus is not None:
        checks.append(_check("bus", asyncio.sleep(0), timeout_s))
    return list(await asyncio.gather(*checks))
