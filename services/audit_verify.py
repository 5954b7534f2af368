"""Verifies a store's hash-chained tables page by page; compute.audit_chain does the checking.
Reads only: for `plantpulse audit verify` and any other caller wanting the verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from compute.audit_chain import Chain, ChainBreak, ChainRow, ChainState, check_anchor, verify

PAGE_ROWS = 5000


class ChainReader(Protocol):
    async def chain_page(self, chain: Chain, after_seq: int, limit: int) -> list[ChainRow]: ...

    async def chain_origin(self, chain: Chain) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    chain: Chain
    state: ChainState  # up to the last row that verified
    origin_seq: int  # rows up to here predate the chain
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


async def verify_chain(
    store: ChainReader,
    chain: Chain,
    *,
    page_rows: int = PAGE_ROWS,
    anchor: tuple[int, str] | None = None,
) -> ChainReport:
    """Walk the chain in seq order, page_rows at a time; stop at the first break. anchor is a
    (seq, sha256) recorded earlier that must still be there."""
    origin = await store.chain_origin(chain)
    state, after = ChainState(), 0
    anchored: ChainRow | None = None
    while rows := await store.chain_page(chain, after, page_rows):
        state, broken = verify(chain, rows, state, origin_seq=origin)
        if broken is not None:
            return ChainReport(chain=chain, state=state, origin_seq=origin, broken=broken)
        if anchor is not None:
            anchored = next((r for r in rows if r.seq == anchor[0]), anchored)
        after = rows[-1].seq
    broken = None if anchor is None else check_anchor(chain, anchor[0], anchor[1], anchored)
    return ChainReport(chain=chain, state=state, origin_seq=origin, broken=broken)
