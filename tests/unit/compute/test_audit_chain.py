"""The pure hash chain: canonical bytes, hashes, and verification finding the first broken row."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from compute.audit_chain import (
    GENESIS_SHA256,
    Chain,
    ChainError,
    ChainRow,
    ChainState,
    Problem,
    canonical_bytes,
    field_digests,
    link,
    row_sha256,
    verify,
)

A = Chain.AUDIT_LOG


def _fields(i: int) -> dict[str, object]:
    return {
        "at_ns": i,
        "actor": "j.doe",
        "action": "threshold changed",
        "subject": "room-a.dp",
        "old_value": None,
        "new_value": f"{i} Pa",
        "reason": "SOP-114",
    }


def _rows(n: int, first_seq: int = 1) -> list[ChainRow]:
    linked = link(A, [_fields(i) for i in range(n)], GENESIS_SHA256)
    return [
        ChainRow(
            seq=first_seq + i,
            fields=r.fields,
            prev_sha256=r.prev_sha256,
            sha256=r.sha256,
            field_digests=r.field_digests,
        )
        for i, r in enumerate(linked)
    ]


def test_the_canonical_form_is_documented_json() -> None:
    data = canonical_bytes(A, _fields(7), GENESIS_SHA256)
    doc = json.loads(data)
    assert doc == {"chain": "audit_log", "prev_sha256": "0" * 64, "row": _fields(7), "v": 1}
    assert data == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert row_sha256(A, _fields(7), GENESIS_SHA256) == hashlib.sha256(data).hexdigest()


def test_values_are_hashed_as_the_stores_read_them_back() -> None:
    e = Chain.ALERT_EVENTS
    base = {"alert_id": "a", "ts_ns": 1, "value": 1.0}
    h = lambda **kw: row_sha256(e, {**base, **kw}, GENESIS_SHA256)  # noqa: E731
    assert h(value=math.nan) == h(value=None)  # SQLite keeps NaN as NULL
    assert h(value=-0.0) == h(value=0.0)  # and reads -0.0 back as 0.0
    assert h(value=2) == h(value=2.0)
    assert h(value=math.inf) != h(value=-math.inf)
    with pytest.raises(ChainError, match="unknown fields"):
        row_sha256(e, {"nope": 1}, GENESIS_SHA256)
    with pytest.raises(ChainError, match="expected an integer"):
        row_sha256(e, {"ts_ns": "1"}, GENESIS_SHA256)


def test_a_linked_chain_verifies_across_pages() -> None:
    rows = _rows(7)
    st, broken = verify(A, rows[:3], ChainState())
    assert broken is None and st.checked == 3
    st, broken = verify(A, rows[3:], st)
    assert broken is None and st.checked == 7 and st.head_seq == 7
    assert st.head_sha256 == rows[-1].sha256


def test_an_edit_is_found_at_its_row_and_names_the_field() -> None:
    rows = _rows(5)
    rows[2] = dataclasses.replace(rows[2], fields={**rows[2].fields, "actor": "mallory"})
    st, broken = verify(A, rows, ChainState())
    assert broken is not None and broken.seq == 3 and broken.problem is Problem.CONTENT
    assert broken.changed_fields == ("actor",) and st.checked == 2
    assert broken.stored_sha256 == rows[2].sha256


def test_a_gap_or_a_wrong_start_breaks_the_link() -> None:
    rows = _rows(5)
    _, broken = verify(A, rows[:2] + rows[3:], ChainState())
    assert broken is not None and broken.seq == 4 and broken.problem is Problem.LINK
    assert "seq 3.. missing" in broken.detail
    _, broken = verify(A, rows[1:], ChainState())
    assert broken is not None and broken.seq == 2 and "genesis" in broken.detail


def test_rows_before_the_origin_are_legacy_and_later_unhashed_rows_break() -> None:
    legacy = [ChainRow(seq=s, fields=_fields(s), prev_sha256=None, sha256=None) for s in (1, 2)]
    rows = legacy + _rows(2, first_seq=3)
    st, broken = verify(A, rows, ChainState(), origin_seq=2)
    assert broken is None and st.legacy == 2 and st.checked == 2
    _, broken = verify(A, rows, ChainState(), origin_seq=1)
    assert broken is not None and broken.seq == 2 and broken.problem is Problem.UNCHAINED


def test_field_digests_are_short_and_per_field() -> None:
    d = field_digests(A, _fields(1)).split(",")
    assert len(d) == 7 and all(len(x) == 8 for x in d)


_text = st.text(max_size=12)
_audit_fields = st.fixed_dictionaries(
    {
        "at_ns": st.integers(-(2**63), 2**63 - 1),
        "actor": _text,
        "action": _text,
        "subject": _text,
        "old_value": st.none() | _text,
        "new_value": st.none() | _text,
        "reason": _text,
    }
)


@given(
    rows=st.lists(_audit_fields, min_size=1, max_size=8),
    data=st.data(),
)
def test_any_chain_verifies_and_any_single_edit_is_found_at_its_row(
    rows: list[dict[str, object]], data: st.DataObject
) -> None:
    linked = link(A, rows, GENESIS_SHA256)
    stored = [
        ChainRow(seq=i + 1, fields=r.fields, prev_sha256=r.prev_sha256, sha256=r.sha256,
                 field_digests=r.field_digests)
        for i, r in enumerate(linked)
    ]  # fmt: skip
    assert verify(A, stored, ChainState())[1] is None
    i = data.draw(st.integers(0, len(stored) - 1))
    name = data.draw(st.sampled_from(sorted(rows[i])))
    value = data.draw(_audit_fields)[name]
    assume(value != rows[i][name])
    stored[i] = dataclasses.replace(stored[i], fields={**rows[i], name: value})
    _, broken = verify(A, stored, ChainState())
    assert broken is not None and broken.seq == i + 1 and broken.changed_fields == (name,)
