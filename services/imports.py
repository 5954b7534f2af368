"""Readings from outside the gateways (CSV imports, manual entries) onto the readings topic, so the
aggregator counts them with the same kernels as live data. All or nothing per request: every row
is checked, against the plant and the stored readings around it, before anything is published.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute import codec
from compute.errors import PlantPulseError
from compute.import_batches import ChannelSummary, batches, stored_issues, summaries
from compute.import_csv import CsvReadings, ImportChannel, ImportRejected, Issue, ParsedReadings
from compute.model import datetime_ns
from compute.plant import ChannelKind, Plant
from services.publisher import PublishingBus
from services.store import Store
from services.store.records import AuditEntry

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 << 10
MAX_READINGS = 2_000_000  # per request: a year of 15-minute readings of 57 channels


class ImportIncomplete(PlantPulseError):
    """The bus failed part-way: `published` of `total` batches went out. Publishing the same
    readings again is safe (a reading is identified by channel and time)."""

    def __init__(self, published: int, total: int, cause: BaseException) -> None:
        super().__init__(
            f"the bus failed after {published} of {total} batches ({cause!r}); the readings "
            "already published stay; sending the same readings again is safe"
        )
        self.published = published
        self.total = total


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    import_id: str
    receive_ts_ns: int
    batches: int
    channels: list[ChannelSummary]

    @property
    def readings(self) -> int:
        return sum(c.readings for c in self.channels)

    @property
    def already_stored(self) -> int:
        return sum(c.already_stored for c in self.channels)


async def import_channels(plant: Plant, store: Store) -> dict[str, ImportChannel]:
    """What validation needs of each channel, with the replacements configured and recorded."""
    recorded: dict[str, list[int]] = {}
    for e in await store.meter_replacements():
        recorded.setdefault(e.channel_id, []).append(e.at_ns)
    out = {}
    for key, ref in plant.channels.items():
        configured = [datetime_ns(r.at) for r in ref.channel.replacements]
        out[key] = ImportChannel(
            meter_id=ref.meter.id,
            is_counter=ref.channel.kind is ChannelKind.COUNTER,
            wrap_modulus=ref.wrap_modulus,
            replacements_ns=tuple(sorted(configured + recorded.get(key, []))),
        )
    return out


async def parse_stream(
    chunks: AsyncIterator[bytes], parser: CsvReadings
) -> tuple[ParsedReadings, str]:
    """Feed a UTF-8 byte stream to the parser line by line, as it arrives; the readings and the
    stream's SHA-256. ImportRejected when it is not text or a line is too long."""
    digest = hashlib.sha256()
    decode = codecs.getincrementaldecoder("utf-8-sig")()
    tail = ""
    async for chunk in chunks:
        digest.update(chunk)
        try:
            text = tail + decode.decode(chunk)
        except UnicodeDecodeError as e:
            raise ImportRejected([Issue(row=0, column="", message=f"not UTF-8 text: {e}")]) from e
        lines = text.splitlines(keepends=True)
        tail = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        if len(tail) > MAX_LINE_BYTES:
            raise ImportRejected([Issue(row=0, column="", message="a line is over 64 KiB")])
        parser.feed(lines)
    parser.feed([tail + decode.decode(b"", final=True)])
    return parser.finish(), digest.hexdigest()


class Importer:
    """Checks parsed readings against the store and publishes them as batches, then audits."""

    def __init__(
        self,
        store: Store,
        bus: PublishingBus | None,
        topic: str,
        *,
        clock_ns: Callable[[], int],
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.topic = topic
        self.clock_ns = clock_ns
        self.publish_timeout_s = publish_timeout_s

    async def check_stored(
        self, p: ParsedReadings, channels: dict[str, ImportChannel]
    ) -> npt.NDArray[np.bool_]:
        """The mask of readings stored identically already; ImportRejected naming each reading
        that contradicts a stored one."""
        known = np.zeros(p.size, np.bool_)
        issues: list[Issue] = []
        for c, cid in enumerate(p.channel_ids):
            part = p.of(c)
            around = await self.store.readings_around(
                cid, int(p.ts_ns[part][0]), int(p.ts_ns[part][-1])
            )
            found, known[part] = stored_issues(p, c, around, channels[cid])
            issues += found
        if issues:
            raise ImportRejected(sorted(issues, key=lambda i: i.row))
        return known

    async def publish(
        self,
        p: ParsedReadings,
        known: npt.NDArray[np.bool_],
        channels: dict[str, ImportChannel],
        *,
        source: str,
        actor: str,
        reason: str,
        sha256: str,
    ) -> ImportResult:
        """Publish the new readings, one meter per batch keyed by its id, then write the audit
        entry; ImportIncomplete (audited too) when the bus fails part-way."""
        if self.bus is None:
            raise PlantPulseError("no bus to publish to: set PT_KAFKA_BOOTSTRAP for the API")
        receive_ns = self.clock_ns()
        import_id = f"{source}-{secrets.token_hex(6)}"
        out = batches(p, ~known, channels, source=source, receive_ts_ns=receive_ns)
        result = ImportResult(
            import_id=import_id,
            receive_ts_ns=receive_ns,
            batches=len(out),
            channels=summaries(p, known),
        )
        headers = [("source", source.encode()), ("import_id", import_id.encode())]
        done = 0
        try:
            for key, batch in out:
                async with asyncio.timeout(self.publish_timeout_s):
                    await self.bus.publish(self.topic, key.encode(), codec.encode(batch), headers)
                done += 1
        except (PlantPulseError, OSError, TimeoutError) as e:
            await self._audit(result, actor, reason, sha256, f"{done} of {len(out)} batches")
            raise ImportIncomplete(done, len(out), e) from e
        await self._audit(result, actor, reason, sha256, None)
        log.info("%s: %d readings in %d batches by %s", import_id, result.readings, done, actor)
        return result

    async def _audit(
        self, r: ImportResult, actor: str, reason: str, sha256: str, incomplete: str | None
    ) -> None:
        doc = {
            "sha256": sha256,
            "receive_ts_ns": r.receive_ts_ns,
            "batches": r.batches,
            "channels": [
                [c.channel_id, c.readings, c.already_stored, c.first_ts_ns, c.last_ts_ns]
                for c in r.channels
            ],
        }
        if incomplete:
            doc["published"] = incomplete
        await self.store.append_audit(
            AuditEntry(
                at_ns=self.clock_ns(),
                actor=actor,
                action="readings import incomplete" if incomplete else "readings imported",
                subject=f"import:{r.import_id}",
                old_value=None,
                new_value=json.dumps(doc, separators=(",", ":")),
                reason=reason,
            )
        )
