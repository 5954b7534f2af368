"""Hash chains over the append-only audit tables: a row's canonical bytes, its SHA-256, and
verification that finds the first broken row. Pure: rows in, hashes and verdicts out; no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from compute.errors import PlantPulseError

GENESIS_SHA256 = "0" * 64  # the prev_sha256 of a chain's first row
CHAIN_VERSION = 1  # in every row's canonical bytes: a new format is a new version
FIELD_DIGEST_CHARS = 8  # per-field digests, only to name the fields an edit changed

Scalar = str | int | float | bool | None


class ChainError(PlantPulseError):
    """A row cannot be put into canonical form (an unknown field, a wrong type)."""


class Chain(enum.StrEnum):
    """The chained tables; each is its own chain, with its own head."""

    AUDIT_LOG = "audit_log"
    ALERT_EVENTS = "alert_events"


class Kind(enum.Enum):
    INT = "int"
    FLOAT = "float"
    TEXT = "text"
    BOOL = "bool"


_I, _F, _T, _B = Kind.INT, Kind.FLOAT, Kind.TEXT, Kind.BOOL
# The content fields of each chain, as stored (column name, kind). Any may be NULL.
FIELDS: dict[Chain, tuple[tuple[str, Kind], ...]] = {
    Chain.AUDIT_LOG: (
        *(("at_ns", _I), ("actor", _T), ("action", _T), ("subject", _T)),
        *(("old_value", _T), ("new_value", _T), ("reason", _T)),
    ),
    Chain.ALERT_EVENTS: (
        *(("alert_id", _T), ("channel_id", _T), ("rule_id", _T), ("event", _T)),
        *(("ts_ns", _I), ("value", _F), ("actor", _T), ("comment", _T), ("recorded_at_ns", _I)),
    ),
}


def field_names(chain: Chain) -> tuple[str, ...]:
    return tuple(name for name, _ in FIELDS[chain])


def _canon(kind: Kind, v: Scalar) -> Scalar:
    """One value as hashed. The stores keep NaN as NULL (SQLite cannot keep it), -0.0 as 0.0
    (SQLite reads it back so) and booleans as 0/1 (SQLite): this maps both sides alike."""
    if v is None:
        return None
    if kind is Kind.FLOAT:
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return 0.0 if f == 0 else f
    if kind is Kind.INT:
        if isinstance(v, bool | float | str):
            raise ChainError(f"expected an integer, got {v!r}")
        return operator.index(v)  # numpy integers too
    if kind is Kind.BOOL:
        return bool(v)
    if not isinstance(v, str):
        raise ChainError(f"expected text, got {v!r}")
    return v


def _content(chain: Chain, fields: Mapping[str, Scalar]) -> dict[str, Scalar]:
    if unknown := set(fields) - set(field_names(chain)):
        raise ChainError(f"{chain}: unknown fields {sorted(unknown)}")
    try:
        return {name: _canon(kind, fields.get(name)) for name, kind in FIELDS[chain]}
    except (ChainError, TypeError, ValueError) as e:
        raise ChainError(f"{chain}: {e}") from e


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def canonical_bytes(chain: Chain, fields: Mapping[str, Scalar], prev_sha256: str) -> bytes:
    """Compact JSON, keys sorted, ASCII only: {"chain", "prev_sha256", "row": {...}, "v"}."""
    doc = {
        "chain": chain.value,
        "prev_sha256": prev_sha256,
        "row": _content(chain, fields),
        "v": CHAIN_VERSION,
    }
    return _dumps(doc)


def row_sha256(chain: Chain, fields: Mapping[str, Scalar], prev_sha256: str) -> str:
    return hashlib.sha256(canonical_bytes(chain, fields, prev_sha256)).hexdigest()


def field_digests(chain: Chain, fields: Mapping[str, Scalar]) -> str:
    """Short digests of each field's canonical [name, value], comma-separated in FIELDS order.
    Not part of the chain: they only tell which fields an edited row had changed."""
    content = _content(chain, fields)
    return ",".join(
        hashlib.sha256(_dumps([name, content[name]])).hexdigest()[:FIELD_DIGEST_CHARS]
        for name in field_names(chain)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainedRow:
    """A row to insert: its content, the head it follows, its hash and field digests."""

    fields: Mapping[str, Scalar]
    prev_sha256: str
    sha256: str
    field_digests: str


def link(chain: Chain, rows: Iterable[Mapping[str, Scalar]], head_sha256: str) -> list[ChainedRow]:
    """Chain rows onto the head (GENESIS_SHA256 for an empty chain), in order."""
    out = []
    prev = head_sha256
    for fields in rows:
        sha = row_sha256(chain, fields, prev)
        out.append(
            ChainedRow(
                fields=fields,
                prev_sha256=prev,
                sha256=sha,
                field_digests=field_digests(chain, fields),
            )
        )
        prev = sha
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainRow:
    """A stored row as read back for verification, in seq order."""

    seq: int
    fields: Mapping[str, Scalar]
    prev_sha256: str | None
    sha256: str | None
    field_digests: str | None = None


class Problem(enum.StrEnum):
    UNCHAINED = "unchained"  # no hash: written around the store, or its hashes were erased
    LINK = "link"  # prev_sha256 is not the hash of the row before
    CONTENT = "content"  # the content does not hash to the stored sha256
    ANCHOR = "anchor"  # a head recorded outside the database is gone or changed


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    """The first row that does not verify: what was expected, what is stored, and why."""

    chain: Chain
    seq: int
    problem: Problem
    expected_sha256: str
    stored_sha256: str | None
    changed_fields: tuple[str, ...] = ()
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainState:
    """Verification so far: the head reached, and how many rows were checked."""

    head_sha256: str = GENESIS_SHA256
    head_seq: int = 0  # 0: no chained row yet
    checked: int = 0  # chained rows that verified
    legacy: int = 0  # rows at or before the chain's origin, which it does not cover


def _changed(chain: Chain, row: ChainRow) -> tuple[str, ...]:
    if not row.field_digests:
        return ()
    stored = row.field_digests.split(",")
    now = field_digests(chain, row.fields).split(",")
    if len(stored) != len(now):
        return ()
    return tuple(n for n, a, b in zip(field_names(chain), stored, now, strict=True) if a != b)


def _check(chain: Chain, row: ChainRow, st: ChainState) -> ChainBreak | None:
    where = f"{chain} seq {row.seq}"
    if row.sha256 is None or row.prev_sha256 is None:
        return ChainBreak(
            chain=chain,
            seq=row.seq,
            problem=Problem.UNCHAINED,
            expected_sha256=row_sha256(chain, row.fields, st.head_sha256),
            stored_sha256=row.sha256,
            detail=f"{where} has no hash: it was written around the store, or its hashes erased",
        )
    if row.prev_sha256 != st.head_sha256:
        if st.head_seq == 0:
            why = "the chain does not start at the genesis value: its first rows were removed"
        else:
            gap = "" if row.seq == st.head_seq + 1 else f", seq {st.head_seq + 1}.. missing"
            why = (
                f"prev_sha256 is not the sha256 of seq {st.head_seq}{gap}: a row between was "
                f"deleted or inserted, or seq {st.head_seq} was rewritten with a new hash"
            )
        return ChainBreak(
            chain=chain,
            seq=row.seq,
            problem=Problem.LINK,
            expected_sha256=st.head_sha256,
            stored_sha256=row.prev_sha256,
            detail=f"{where}: {why}",
        )
    expected = row_sha256(chain, row.fields, row.prev_sha256)
    if expected != row.sha256:
        changed = _changed(chain, row)
        which = f"changed: {', '.join(changed)}" if changed else "no field digest differs"
        return ChainBreak(
            chain=chain,
            seq=row.seq,
            problem=Problem.CONTENT,
            expected_sha256=expected,
            stored_sha256=row.sha256,
            changed_fields=changed,
            detail=f"{where}: the content does not match its sha256 ({which})",
        )
    return None


def verify(
    chain: Chain, rows: Iterable[ChainRow], state: ChainState, *, origin_seq: int = 0
) -> tuple[ChainState, ChainBreak | None]:
    """Check rows (ascending seq, following those `state` covers) and return the state after
    them and the first break, or None. Rows with seq <= origin_seq predate the chain."""
    st = state
    for row in rows:
        if row.seq <= origin_seq:
            st = ChainState(
                head_sha256=st.head_sha256,
                head_seq=st.head_seq,
                checked=st.checked,
                legacy=st.legacy + 1,
            )
            continue
        if (broken := _check(chain, row, st)) is not None:
            return st, broken
        assert row.sha256 is not None
        st = ChainState(
            head_sha256=row.sha256, head_seq=row.seq, checked=st.checked + 1, legacy=st.legacy
        )
    return st, None


def check_anchor(
    chain: Chain, anchor_seq: int, anchor_sha256: str, row: ChainRow | None
) -> ChainBreak | None:
    """A head (seq, sha256) recorded earlier, e.g. from `audit verify`'s output: the chain must
    still hold it. Catches what the chain alone cannot: the newest rows removed, or the chain
    rewritten from some row on. row is the stored row at anchor_seq, None if there is none."""
    if row is None:
        detail = f"{chain} seq {anchor_seq} is gone: the chain was cut back"
    elif row.sha256 != anchor_sha256:
        detail = f"{chain} seq {anchor_seq} no longer has the recorded sha256: rewritten"
    else:
        return None
    return ChainBreak(
        chain=chain,
        seq=anchor_seq,
        problem=Problem.ANCHOR,
        expected_sha256=anchor_sha256,
        stored_sha256=None if row is None else row.sha256,
        detail=detail,
    )
