"""How an OPC UA meter is acquired: subscription or polling, and per-node sampling options."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Acquisition(enum.StrEnum):
    SUBSCRIBE = "subscribe"  # monitored items; the server reports changes
    POLL = "poll"  # batched Read calls every interval, within the server's MaxNodesPerRead


class Deadband(BaseModel):
    """Report a change only beyond this band: an absolute amount, or a percent of the EURange."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["absolute", "percent"]
    value: Annotated[float, Field(ge=0)]


class NodeSampling(BaseModel):
    """Per-node monitored-item settings; unset ones follow the meter's interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: Annotated[float, Field(ge=0, le=3600)] | None = None
    queue_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    deadband: Deadband | None = None
