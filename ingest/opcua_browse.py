"""Browse an OPC UA server's variables under a node: node id, browse path, data type and unit.

Read-only discovery for writing channel config; it connects with the same options as a meter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.object_ids import ObjectIdNames, ObjectIds
from asyncua.ua.uaerrors import UaError
from pydantic import ValidationError

from compute.errors import PlantPulseError
from compute.opcua_config import OpcUaOptions, check_options
from ingest.opcua_security import NO_SECRETS, Secrets, make_client

# What a failed browse raises: no connection, no answer, refused security or authentication.
BROWSE_ERRORS = (OSError, TimeoutError, UaError, PlantPulseError)
_FLAGS = {
    "security.mode": "--mode",
    "security.policy": "--policy",
    "security.trust_dir": "--trust",
    "security.server_fingerprint": "--fingerprint",
    "security.cert_dir": "--cert-dir",
    "user.username": "--user",
    "user.password_env": "--password-env",
    "user.cert": "--user-cert",
    "user.key": "--user-key",
}

# The server's own diagnostics object: skipped below the start node, listed only when asked for.
_SERVER = ua.NodeId(ua.Int32(ObjectIds.Server))
_HAS_PROPERTY = ua.NodeId(ua.Int32(ObjectIds.HasProperty))
_OBJECT_OR_VARIABLE = cast(ua.NodeClass, ua.NodeClass.Object | ua.NodeClass.Variable)  # a mask


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowsedVariable:
    node_id: str
    path: str  # browse names from the start node, joined by "/"
    data_type: str
    unit: str  # the EngineeringUnits' display name, "" when the variable has none


class _Walker:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.type_names: dict[ua.NodeId, str] = {}
        self.seen: set[ua.NodeId] = set()
        self.found: list[BrowsedVariable] = []

    async def walk(self, node: Node, path: str, depth: int) -> None:
        if depth <= 0:
            return
        refs = await node.get_references(
            ObjectIds.HierarchicalReferences, ua.BrowseDirection.Forward, _OBJECT_OR_VARIABLE
        )
        for ref in refs:
            child_id = ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex)
            if ref.ReferenceTypeId == _HAS_PROPERTY or child_id == _SERVER:
                continue
            if child_id in self.seen:
                continue
            self.seen.add(child_id)
            child = self.client.get_node(child_id)
            child_path = f"{path}/{ref.BrowseName.Name}" if path else str(ref.BrowseName.Name)
            if ref.NodeClass == ua.NodeClass.Variable:
                self.found.append(await self._describe(child, child_path))
            await self.walk(child, child_path, depth - 1)

    async def _describe(self, node: Node, path: str) -> BrowsedVariable:
        return BrowsedVariable(
            node_id=node.nodeid.to_string(),
            path=path,
            data_type=await self._type_name(await node.read_data_type()),
            unit=await self._unit(node),
        )

    async def _type_name(self, type_id: ua.NodeId) -> str:
        if type_id not in self.type_names:
            name = None
            if type_id.NamespaceIndex == 0 and isinstance(type_id.Identifier, int):
                name = ObjectIdNames.get(type_id.Identifier)
            if name is None:
                name = str((await self.client.get_node(type_id).read_browse_name()).Name)
            self.type_names[type_id] = name
        return self.type_names[type_id]

    async def _unit(self, node: Node) -> str:
        props = await node.get_references(
            ObjectIds.HasProperty, ua.BrowseDirection.Forward, ua.NodeClass.Variable
        )
        for prop in props:
            if prop.BrowseName.Name == "EngineeringUnits":
                prop_id = ua.NodeId(prop.NodeId.Identifier, prop.NodeId.NamespaceIndex)
                eu = await self.client.get_node(prop_id).read_value()
                if isinstance(eu, ua.EUInformation):
                    return str(eu.DisplayName.Text or eu.Description.Text or "")
        return ""


async def browse_variables(client: Client, start: ua.NodeId, depth: int) -> list[BrowsedVariable]:
    """Every variable reachable from start over hierarchical references, within depth levels."""
    walker = _Walker(client)
    walker.seen.add(start)
    node = client.get_node(start)
    await node.read_node_class()  # raises BadNodeIdUnknown rather than listing nothing
    await walker.walk(node, "", depth)
    return walker.found


def options_from_flags(
    *,
    mode: str | None = None,
    policy: str | None = None,
    trust: Path | None = None,
    fingerprint: str | None = None,
    cert_dir: Path | None = None,
    user: str | None = None,
    password_env: str | None = None,
    user_cert: Path | None = None,
    user_key: Path | None = None,
) -> OpcUaOptions:
    """The options the browse flags describe; ValueError names each bad flag."""
    auth = "username" if user or password_env else "certificate" if user_cert or user_key else None
    raw = {
        "security": {
            "mode": mode,
            "policy": policy,
            "trust_dir": trust,
            "server_fingerprint": fingerprint,
            "cert_dir": cert_dir,
        },
        "user": {
            "auth": auth,
            "username": user,
            "password_env": password_env,
            "cert": user_cert,
            "key": user_key,
        },
    }
    data = {k: {f: v for f, v in d.items() if v is not None} for k, d in raw.items()}
    try:
        options = OpcUaOptions.model_validate(data)
    except ValidationError as e:
        issues = [(".".join(str(x) for x in err["loc"]), err["msg"]) for err in e.errors()]
    else:
        issues = check_options(options)
    if issues:
        raise ValueError("; ".join(f"{_FLAGS.get(path, path)}: {msg}" for path, msg in issues))
    return options


def parse_target(endpoint: str, node_id: str, depth: int) -> ua.NodeId:
    """The start node of a browse; ValueError for a bad endpoint, node id or depth."""
    if not endpoint.startswith("opc.tcp://"):
        raise ValueError(f"an OPC UA endpoint starts with opc.tcp://, not {endpoint!r}")
    if depth < 1:
        raise ValueError("--depth must be 1 or more")
    try:
        return ua.NodeId.from_string(node_id)
    except (ValueError, UaError) as e:
        raise ValueError(f"--node: {node_id!r} is not a node id such as ns=2;s=name or i=85") from e


async def browse(
    endpoint: str,
    options: OpcUaOptions,
    *,
    start: ua.NodeId,
    depth: int = 3,
    pki_dir: Path,
    secrets: Secrets = NO_SECRETS,
    timeout_s: float = 10.0,
) -> list[BrowsedVariable]:
    """Connect with the options and list the variables under start (e.g. i=85, Objects)."""
    client = await make_client(
        endpoint, options, pki_dir=pki_dir, secrets=secrets, timeout_s=timeout_s
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.connect()
    except BaseException:
        client.disconnect_socket()  # a timeout cancels connect() before it cleans up
        raise
    try:
        return await browse_variables(client, start, depth)
    finally:
        async with asyncio.timeout(timeout_s):
            await client.disconnect()


def format_table(rows: Sequence[BrowsedVariable]) -> str:
    """A plain, aligned table with a header, one variable per line."""
    header = ("NODE_ID", "BROWSE_PATH", "DATA_TYPE", "UNIT")
    lines = [header, *((r.node_id, r.path, r.data_type, r.unit or "-") for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]])
        for line in lines
    )
