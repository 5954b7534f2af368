"""CSV readings: parsed column by column, and refused whole with every row and column at fault."""

from __future__ import annotations

import math

import pytest

from compute.import_batches import batches, stored_issues, summaries
from compute.import_csv import (
    MAX_ISSUES,
    CsvReadings,
    ImportChannel,
    ImportRejected,
    ParsedReadings,
    one_reading,
)
from compute.model import NO_TS, NS_PER_S, Quality

T0 = 1_714_492_800 * NS_PER_S  # 2024-04-30T16:00:00Z = 2024-05-01T00:00:00+08:00
NOW = T0 + 86_400 * NS_PER_S
CHANNELS = {
    "m.energy": ImportChannel(meter_id="m", is_counter=True),
    "m.temp": ImportChannel(meter_id="m", is_counter=False),
    "w.reg": ImportChannel(meter_id="w", is_counter=True, wrap_modulus=1000.0),
    "r.gas": ImportChannel(meter_id="r", is_counter=True, replacements_ns=(T0 + 3600 * NS_PER_S,)),
}


def parse(text: str, *, max_readings: int = 1000, chunk: int = 0) -> ParsedReadings:
    p = CsvReadings(CHANNELS, now_ns=NOW, max_readings=max_readings)
    lines = text.splitlines(keepends=True)
    step = chunk or len(lines) or 1
    for i in range(0, len(lines), step):
        p.feed(lines[i : i + step])
    return p.finish()


def rejected(text: str, **kw: int) -> list[str]:
    with pytest.raises(ImportRejected) as e:
        parse(text, **kw)
    return [str(i) for i in e.value.issues]


def test_rows_are_parsed_sorted_by_channel_and_time_whatever_the_chunks() -> None:
    text = (
        "\ufeffts,channel_id,value,quality\n"
        "2024-05-01T01:00:00+08:00,m.energy,110.5,\n"
        "2024-05-01T00:00:00+08:00,m.energy,100,good\n"
        "\n"
        "2024-04-30T16:30:00Z,m.temp,21.5,Uncertain\n"
        "2024-04-30T16:45:00Z,m.temp,,bad\n"
    )
    for chunk in (0, 1, 2):
        p = parse(text, chunk=chunk)
        assert p.channel_ids == ("m.energy", "m.temp")
        assert p.ts_ns.tolist() == [
            T0,
            T0 + 3600 * NS_PER_S,
            T0 + 1800 * NS_PER_S,
            T0 + 2700 * NS_PER_S,
        ]
        assert p.value[:3].tolist() == [100.0, 110.5, 21.5] and math.isnan(p.value[3])
        assert p.quality.tolist() == [Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN, Quality.BAD]
        assert p.row.tolist() == [3, 2, 5, 6]  # the file's lines, the header being row 1


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("nope.x,2024-05-01T00:00:00+08:00,1", "row 2, channel_id: unknown channel 'nope.x'"),
        ("m.energy,2024-05-01T00:00:00+08:00,12kWh", "row 2, value: '12kWh' is not a number"),
        ("m.energy,2024-05-01T00:00:00+08:00,nan", "row 2, value: 'nan' is not a finite number"),
        ("m.energy,2024-05-01T00:00:00+08:00,", "row 2, value: '' is not a number"),
        ("m.energy,2024-05-01T00:00:00,1", "row 2, ts: '2024-05-01T00:00:00' has no UTC offset"),
        ("m.energy,yesterday,1", "row 2, ts: 'yesterday' is not an ISO 8601 time"),
        ("m.energy,0001-01-01T00:00:00Z,1", "row 2, ts: '0001-01-01T00:00:00Z' is before 1970"),
        (
            "m.energy,2024-05-02T00:00:01+08:00,1",
            "row 2, ts: '2024-05-02T00:00:01+08:00' is in the future",
        ),
        ("m.energy,2024-05-01T00:00:00+08:00,1,stale", "row 2, quality: 'stale' is not one of"),
        ("m.energy,2024-05-01T00:00:00+08:00,1,good,x", "row 2: 5 cells, the header has 4"),
    ],
)
def test_a_bad_row_is_named_with_its_column(row: str, expected: str) -> None:
    (issue,) = rejected(f"channel_id,ts,value,quality\n{row}\n")
    assert issue.startswith(expected)


def test_header_problems_are_named() -> None:
    issues = rejected("channel,ts,value,ts\n")
    assert issues[0].startswith("row 1, channel: unknown column")
    assert "row 1, ts: the column appears twice" in issues
    assert any(i.startswith("row 1, channel_id: missing column") for i in issues)
    assert rejected("") == ["empty input: the first line is the header channel_id,ts,value"]
    assert rejected("channel_id,ts,value\n") == ["no readings below the header"]


def test_duplicates_and_a_counter_going_back_are_refused_with_both_rows() -> None:
    text = (
        "channel_id,ts,value\n"
        "m.energy,2024-05-01T00:00:00+08:00,100\n"
        "m.energy,2024-05-01T01:00:00+08:00,90\n"
        "m.temp,2024-05-01T00:00:00+08:00,20\n"
        "m.temp,2024-04-30T16:00:00Z,21\n"
    )
    assert rejected(text) == [
        "row 3, value: counter 'm.energy' goes back from 100 (row 2) to 90: record the meter "
        "replacement first if there was one",
        "row 5, ts: duplicate: channel 'm.temp' has a reading at this time in row 4 too",
    ]


def test_a_wrap_or_a_known_replacement_explains_a_counter_going_back() -> None:
    text = (
        "channel_id,ts,value\n"
        "w.reg,2024-05-01T00:00:00+08:00,990\n"
        "w.reg,2024-05-01T01:00:00+08:00,5\n"  # wrapped at 1000
        "r.gas,2024-05-01T00:00:00+08:00,500\n"
        "r.gas,2024-05-01T02:00:00+08:00,3\n"  # the meter was replaced at 01:00
        "m.energy,2024-05-01T00:00:00+08:00,100\n"
        "m.energy,2024-05-01T01:00:00+08:00,50,bad\n"  # a bad reading is not counted
        "m.energy,2024-05-01T02:00:00+08:00,101\n"
    )
    text = text.replace("value\n", "value,quality\n", 1)
    assert parse(text).size == 7
    (issue,) = rejected(
        "channel_id,ts,value\nw.reg,2024-05-01T00:00:00Z,400\nw.reg,2024-05-01T01:00:00Z,5\n"
    )
    assert "goes back from 400" in issue  # a wrap would be over half the register


def test_issues_are_capped_and_counted_and_readings_are_bounded() -> None:
    rows = "".join(f"x.y,2024-05-01T00:00:{i:02d}Z,1\n" for i in range(30))
    with pytest.raises(ImportRejected) as e:
        parse("channel_id,ts,value\n" + rows)
    assert len(e.value.issues) == MAX_ISSUES and e.value.count == 30
    assert "(and 10 more)" in str(e.value)
    rows = "".join(f"m.temp,2024-05-01T00:00:{i:02d}Z,1\n" for i in range(5))
    assert rejected("channel_id,ts,value\n" + rows, max_readings=3) == [
        "row 5: more than 3 readings: split the file"
    ]


def test_one_reading_is_checked_like_a_row_and_names_only_the_field() -> None:
    got = one_reading(
        {"channel_id": "m.energy", "ts": "2024-05-01T00:00:00+08:00", "value": "7.5"},
        CHANNELS,
        now_ns=NOW,
    )
    assert (got.ts_ns.tolist(), got.value.tolist(), got.row.tolist()) == ([T0], [7.5], [2])
    with pytest.raises(ImportRejected) as e:
        one_reading(
            {"channel_id": "m.energy", "ts": "2030-01-01T00:00:00Z", "value": "1"},
            CHANNELS,
            now_ns=NOW,
        )
    assert str(e.value) == "ts: '2030-01-01T00:00:00Z' is in the future"


def _energy(text: str) -> ParsedReadings:
    return parse("channel_id,ts,value\n" + text)


def test_readings_contradicting_stored_ones_are_refused_and_identical_ones_left_out() -> None:
    p = _energy("m.energy,2024-05-01T00:00:00+08:00,100\nm.energy,2024-05-01T01:00:00+08:00,110\n")
    stored = [(T0, 100.0, 0), (T0 + 1800 * NS_PER_S, 104.0, 0), (T0 + 7200 * NS_PER_S, 120.0, 0)]
    issues, known = stored_issues(p, 0, stored, CHANNELS["m.energy"])
    assert issues == [] and known.tolist() == [True, False]
    issues, _ = stored_issues(p, 0, [(T0, 99.0, 0)], CHANNELS["m.energy"])
    assert [str(i) for i in issues] == [
        "row 2, value: channel 'm.energy' has a stored reading at this time, 99 (good): a "
        "stored reading is never replaced"
    ]
    issues, _ = stored_issues(p, 0, [(T0 + 7200 * NS_PER_S, 105.0, 0)], CHANNELS["m.energy"])
    assert [i.row for i in issues] == [3]  # 110 at 01:00, then 105 stored at 02:00
    assert "the stored one after (110 -> 105)" in issues[0].message
    issues, _ = stored_issues(p, 0, [(T0 - 1, 150.0, 0), (T0 - 2, 1.0, 2)], CHANNELS["m.energy"])
    assert [i.row for i in issues] == [2]


def test_batches_hold_one_meter_in_time_order_keyed_by_its_id() -> None:
    text = "".join(
        f"{c},2024-05-01T00:{m:02d}:00+08:00,{m}\n"
        for m in range(0, 7)
        for c in ("m.energy", "m.temp", "w.reg")
    )
    p = _energy(text)
    keep = p.ts_ns != T0 + 60 * NS_PER_S  # the 00:01 readings are stored already
    out = batches(p, keep, CHANNELS, source="import", receive_ts_ns=5, max_readings=4)
    assert [(k, b.meter_id, b.size) for k, b in out] == [
        ("m", "import:m", 4),
        ("m", "import:m", 4),
        ("m", "import:m", 4),
        ("w", "import:w", 4),
        ("w", "import:w", 2),
    ]
    first = out[0][1]
    assert first.channel_ids == ("m.energy", "m.temp") and first.receive_ts_ns == 5
    assert [first.channel_ids[i] for i in first.channel_index] == ["m.energy", "m.temp"] * 2
    assert (first.server_ts_ns == NO_TS).all()
    all_ts = [t for _, b in out if b.meter_id == "import:w" for t in b.ts_ns.tolist()]
    assert all_ts == sorted(all_ts) and len(all_ts) == 6
    (energy, temp, reg) = summaries(p, ~keep)
    assert (energy.channel_id, energy.readings, energy.already_stored) == ("m.energy", 6, 1)
    assert (reg.first_ts_ns, reg.last_ts_ns) == (T0, T0 + 360 * NS_PER_S)
    assert temp.readings == 6
