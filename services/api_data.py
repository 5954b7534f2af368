"""API routes for external and manual data: CSV imports and manual meter readings onto the readings
topic, and meter replacements recorded after the fact. Writes need the engineer role; refused
input gets a 4xx naming the row or field, and then nothing at all is published.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from compute.errors import PlantPulseError
from compute.import_csv import (
    CsvReadings,
    ImportChannel,
    ImportRejected,
    ParsedReadings,
    one_reading,
)
from compute.meter_events import (
    KIND_HEADER,
    REPLACEMENT_KIND,
    ReplacementError,
    ReplacementEvent,
    check_event,
    encode_event,
)
from compute.model import Quality, datetime_ns
from compute.plant import ChannelKind, ChannelRef, Plant
from services.access import Permission
from services.api_auth import Caller, require
from services.api_time import iso
from services.imports import (
    MAX_READINGS,
    Importer,
    ImportIncomplete,
    ImportResult,
    import_channels,
    parse_stream,
)
from services.publisher import PublishingBus
from services.store import Store

PUBLISH_TIMEOUT_S = 10.0
CSV_DOC = (
    "CSV, UTF-8, header `channel_id,ts,value[,quality]` in any order: channel_id is "
    "meter.channel; ts is ISO 8601 with a UTC offset (2024-05-01T00:00:00+08:00 or ...Z), not in "
    "the future; value a finite number (empty only for a bad reading); quality good (default), "
    "uncertain or bad. A file is refused whole (422 with each row and column) for an unknown "
    "channel, a bad number or time, a duplicate (channel, ts), a counter going back within the "
    "file or against the stored readings around it, or a reading contradicting a stored one."
)


class ChannelImportOut(BaseModel):
    channel_id: str
    readings: int  # new to the store
    already_stored: int  # the same value and quality at the same time: left out
    first_ts: datetime
    last_ts: datetime


class ImportOut(BaseModel):
    import_id: str
    readings: int
    already_stored: int
    batches: int
    channels: list[ChannelImportOut]
    note: str = (
        "published to the readings topic; the aggregator counts them as late data (closed "
        "buckets are restated with revisions), usually within seconds"
    )


class ManualReadingIn(BaseModel):
    ts: AwareDatetime = Field(description="when the meter showed the value; with a UTC offset")
    value: float | None = Field(allow_inf_nan=False, description="empty only for a bad reading")
    quality: Literal["good", "uncertain", "bad"] = "good"
    reason: str = Field(min_length=1, description="why by hand: e.g. 'monthly round, M. Chen'")


class ReplacementIn(BaseModel):
    at: AwareDatetime = Field(description="when the meter was swapped; with a UTC offset")
    old_final: float = Field(ge=0, allow_inf_nan=False, description="the old meter's last reading")
    new_initial: float = Field(ge=0, allow_inf_nan=False, description="the new meter's first")
    reason: str = Field(min_length=1, description="work order, SOP or note")


class ReplacementOut(BaseModel):
    channel_id: str
    at: datetime
    old_final: float
    new_initial: float
    source: Literal["config", "api"]
    reason: str | None = None
    actor: str | None = None
    recorded_at: datetime | None = None


class ReplacementAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    replacement: ReplacementOut
    note: str = (
        "published to the meter's partition; the aggregator records it (with its audit entry) "
        "and recounts the readings around it in one transaction, then it is listed here"
    )


def _rejected(e: ImportRejected) -> HTTPException:
    issues: list[dict[str, Any]] = [
        {"row": i.row, "column": i.column, "message": i.message} for i in e.issues
    ]
    detail = {"reason": str(e), "issues": issues, "issue_count": e.count, "published": 0}
    return HTTPException(422, detail)


def data_routes(
    plant: Plant,
    store: Store,
    bus: PublishingBus | None,
    topic: str,
    clock_ns: Callable[[], int] = time.time_ns,
) -> APIRouter:
    router = APIRouter()
    zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}
    importer = Importer(store, bus, topic, clock_ns=clock_ns)

    def channel(channel_id: str) -> ChannelRef:
        ref = plant.channels.get(channel_id)
        if ref is None:
            raise HTTPException(404, f"unknown channel {channel_id!r}")
        return ref

    def out(r: ImportResult) -> ImportOut:
        def tz(cid: str) -> zoneinfo.ZoneInfo:
            return zones[plant.channels[cid].site.id]

        return ImportOut(
            import_id=r.import_id,
            readings=r.readings,
            already_stored=r.already_stored,
            batches=r.batches,
            channels=[
                ChannelImportOut(
                    channel_id=c.channel_id,
                    readings=c.readings,
                    already_stored=c.already_stored,
                    first_ts=iso(c.first_ts_ns, tz(c.channel_id)),
                    last_ts=iso(c.last_ts_ns, tz(c.channel_id)),
                )
                for c in r.channels
            ],
        )

    async def publish(
        p: ParsedReadings,
        channels: dict[str, ImportChannel],
        caller: Caller,
        source: str,
        reason: str,
        sha: str,
    ) -> ImportOut:
        for cid in p.channel_ids:
            caller.check_site(plant.channels[cid].site.id)
        try:
            known = await importer.check_stored(p, channels)
            if bus is None:
                raise HTTPException(503, "no bus to publish to: set PT_KAFKA_BOOTSTRAP for the API")
            result = await importer.publish(
                p, known, channels, source=source, actor=caller.actor, reason=reason, sha256=sha
            )
        except ImportRejected as e:
            raise _rejected(e) from e
        except ImportIncomplete as e:
            raise HTTPException(503, str(e)) from e
        return out(result)

    @router.post(
        "/v1/imports/readings",
        status_code=202,
        response_model=ImportOut,
        description=CSV_DOC,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    async def import_readings(
        request: Request,
        caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))],
        reason: Annotated[
            str, Query(min_length=1, description="where the data comes from and why it is added")
        ],
    ) -> ImportOut:
        """Import historical readings (utility bills, logger exports) from CSV, streamed; all or
        nothing: published only when every row is right."""
        channels = await import_channels(plant, store)
        parser = CsvReadings(channels, now_ns=clock_ns(), max_readings=MAX_READINGS)
        try:
            parsed, sha = await parse_stream(request.stream(), parser)
        except ImportRejected as e:
            raise _rejected(e) from e
        return await publish(parsed, channels, caller, "import", reason, sha)

    @router.post("/v1/channels/{channel_id}/readings", status_code=202, response_model=ImportOut)
    async def manual_reading(
        channel_id: str,
        body: ManualReadingIn,
        caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))],
    ) -> ImportOut:
        """Enter one meter reading by hand (a meter read on a round, a bill's reading); it is
        checked as an imported row is."""
        channel(channel_id)
        fields = {
            "channel_id": channel_id,
            "ts": body.ts.isoformat(),
            "value": "" if body.value is None else repr(body.value),
            "quality": body.quality,
        }
        channels = await import_channels(plant, store)
        try:
            parsed = one_reading(fields, channels, now_ns=clock_ns())
        except ImportRejected as e:
            raise _rejected(e) from e
        sha = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        return await publish(parsed, channels, caller, "manual", body.reason, sha)

    def replacement_out(e: ReplacementEvent) -> ReplacementOut:
        tz = zones[plant.channels[e.channel_id].site.id]
        return ReplacementOut(
            channel_id=e.channel_id,
            at=iso(e.at_ns, tz),
            old_final=e.old_final,
            new_initial=e.new_initial,
            source="api",
            reason=e.reason,
            actor=e.actor,
            recorded_at=iso(e.recorded_at_ns, tz),
        )

    @router.get(
        "/v1/channels/{channel_id}/replacements",
        response_model=list[ReplacementOut],
        dependencies=[Depends(require(Permission.DATA))],
    )
    async def replacements(channel_id: str) -> list[ReplacementOut]:
        """The channel's meter replacements: those of the plant file and those recorded here."""
        ref = channel(channel_id)
        tz = zones[ref.site.id]
        got = [
            ReplacementOut(
                channel_id=channel_id,
                at=r.at.astimezone(tz),
                old_final=r.old_final,
                new_initial=r.new_initial,
                source="config",
            )
            for r in ref.channel.replacements
        ]
        got += [replacement_out(e) for e in await store.meter_replacements(channel_id)]
        return sorted(got, key=lambda x: x.at)

    @router.post(
        "/v1/channels/{channel_id}/replacements",
        status_code=202,
        response_model=ReplacementAccepted,
    )
    async def add_replacement(
        channel_id: str,
        body: ReplacementIn,
        caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))],
    ) -> ReplacementAccepted:
        """Record a meter replacement of a counter, also after the fact: the consumption across
        it becomes (old_final − the reading before) + (the reading after − new_initial), and the
        stored readings it separates are recounted, closed buckets being restated."""
        ref = channel(channel_id)
        if ref.channel.kind is not ChannelKind.COUNTER:
            raise HTTPException(
                422, f"{channel_id!r} is a gauge: only counters have meter readings"
            )
        now_ns = clock_ns()
        at_ns = datetime_ns(body.at)
        if at_ns > now_ns:
            raise HTTPException(422, "at is in the future: record a replacement once it is done")
        if at_ns < 0:
            raise HTTPException(422, "at is before 1970")
        try:
            e = ReplacementEvent(
                channel_id=channel_id,
                at_ns=at_ns,
                old_final=body.old_final,
                new_initial=body.new_initial,
                reason=body.reason,
                actor=caller.actor,
                recorded_at_ns=now_ns,
            )
            known = [datetime_ns(r.at) for r in ref.channel.replacements]
            known += [x.at_ns for x in await store.meter_replacements(channel_id)]
            if at_ns in known:
                raise HTTPException(409, f"{channel_id!r} has a replacement at {body.at} already")
            rows = await store.readings_around(channel_id, at_ns, at_ns)
            good = [(t, v) for t, v, q in rows if q == Quality.GOOD]
            before = next((x for x in reversed(good) if x[0] <= at_ns), None)
            after = next((x for x in good if x[0] > at_ns), None)
            check_event(e, known, before, after)
        except ReplacementError as err:
            raise HTTPException(422, str(err)) from err
        if bus is None:
            raise HTTPException(503, "no bus to publish to: set PT_KAFKA_BOOTSTRAP for the API")
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await bus.publish(
                    topic, ref.meter.id.encode(), encode_event(e), [(KIND_HEADER, REPLACEMENT_KIND)]
                )
        except (PlantPulseError, OSError, TimeoutError) as err:
            raise HTTPException(503, f"the bus failed, nothing recorded: {err}") from err
        return ReplacementAccepted(replacement=replacement_out(e))

    return router
