"""`plantpulse browse` against our simulator (plain and secured), a server with engineering units,
and node-opcua: the table lists node ids, browse paths, data types and units; exit codes say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.server.server import Server

from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from services.cli import main
from tests.harness import free_port
from tests.integration.test_opcua_security import (
    PASSWORD_ENV,
    USERS,
    opcua_plant,
    secure_simulator,
)
from tests.peers.harness import node_opcua_server

Table = dict[str, tuple[str, str, str]]  # node id -> (browse path, data type, unit)


async def browse(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Table, str]:
    """Run the command in a thread (it runs its own event loop); its rows, by node id."""
    capsys.readouterr()
    code = await asyncio.wait_for(asyncio.to_thread(main, ["browse", *args]), 60)
    out, err = capsys.readouterr()
    rows: Table = {}
    lines = out.splitlines()
    if lines:
        assert lines[0].split() == ["NODE_ID", "BROWSE_PATH", "DATA_TYPE", "UNIT"]
        for line in lines[1:]:
            node_id, path, data_type, unit = line.split()
            rows[node_id] = (path, data_type, unit)
    return code, rows, err


async def test_browse_lists_the_example_plants_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plant = opcua_plant()
    sim = PlantSimulator(plant, seed=1, start_ns=time.time_ns())
    async with serve(sim):
        code, rows, err = await browse(capsys, plant.meters[0].endpoint)
        # One level shows the meters' folders only: no variables.
        shallow, none, _ = await browse(capsys, plant.meters[0].endpoint, "--depth", "1")
        # Below one meter's folder, only its variables.
        folder = await _folder_id(plant.meters[0].endpoint, plant.meters[0].id)
        one, only, _ = await browse(capsys, plant.meters[0].endpoint, "--node", folder)
    assert (code, err) == (0, "")
    expected = {r.channel.node_id: r for r in plant.channels.values()}
    assert set(rows) == set(expected)
    for node_id, (path, data_type, unit) in rows.items():
        ref = expected[node_id]
        assert path == f"{ref.meter.id}/{ref.channel.id}"
        assert (data_type, unit) == ("Double", "-")
    assert (shallow, none) == (0, {})
    assert one == 0
    assert set(only) == {c.node_id for c in plant.meters[0].channels}


async def _folder_id(endpoint: str, name: str) -> str:
    async with asyncio.timeout(10), Client(endpoint, timeout=5) as client:
        for child in await client.nodes.objects.get_children():
            if (await child.read_browse_name()).Name == name:
                return str(child.nodeid.to_string())
    raise AssertionError(f"no folder {name}")


async def test_browse_honours_security_flags(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant = opcua_plant()
    endpoint = plant.meters[0].endpoint
    trust = tmp_path / "trusted"
    trust.mkdir()
    monkeypatch.setenv(PASSWORD_ENV, USERS["reader"])
    monkeypatch.setenv("PT_TEST_WRONG_PASSWORD", "guess")
    secure = ["--mode", "SignAndEncrypt", "--policy", "Aes256_Sha256_RsaPss"]
    secure += ["--trust", str(trust), "--cert-dir", str(tmp_path / "pki")]
    user = ["--user", "reader", "--password-env", PASSWORD_ENV]
    async with secure_simulator(plant, tmp_path, allow_anonymous=False, offer_none=False) as sec:
        untrusted = await browse(capsys, endpoint, *secure, *user)
        (trust / "simulator.der").write_bytes(sec.cert_path.read_bytes())
        trusted = await browse(capsys, endpoint, *secure, *user)
        wrong = await browse(
            capsys,
            endpoint,
            *secure,
            "--user",
            "reader",
            "--password-env",
            "PT_TEST_WRONG_PASSWORD",
        )
        pinned = await browse(
            capsys,
            endpoint,
            *["--mode", "Sign", "--policy", "Basic256Sha256", "--fingerprint", sec.fingerprint],
            *["--cert-dir", str(tmp_path / "pki"), *user],
        )
    code, rows, err = untrusted
    assert (code, rows) == (1, {})
    assert len(err.strip().splitlines()) == 1
    assert "not trusted" in err and f"SHA-256 {sec.fingerprint}" in err
    code, rows, err = trusted
    assert code == 0 and len(rows) == len(plant.channels)
    code, rows, err = wrong
    assert (code, rows) == (1, {}) and "BadUserAccessDenied" in err
    code, rows, err = pinned
    assert code == 0 and len(rows) == len(plant.channels)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--policy", "Basic256Sha256"], "--policy: mode None takes no policy"),
        (["--mode", "SignAndEncrypt", "--policy", "Basic256Sha256"], "--trust: "),
        (["--mode", "Sign", "--policy", "Basic999"], "--policy: "),
        (["--fingerprint", "abc", "--mode", "Sign", "--policy", "Basic256Sha256"], "64 hex"),
        (["--user", "reader"], "--password-env: auth username needs password_env"),
        (["--user", "u", "--password-env", "PT_TEST_SURELY_UNSET"], "PT_TEST_SURELY_UNSET"),
        (["--node", "not a node"], "--node: "),
        (["--depth", "0"], "--depth must be 1 or more"),
    ],
)
async def test_bad_arguments_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    code, rows, err = await browse(capsys, "opc.tcp://127.0.0.1:1/", *args)
    assert (code, rows) == (2, {})
    assert err.startswith("plantpulse browse: ") and says in err, err


async def test_a_bad_endpoint_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = await browse(capsys, "127.0.0.1:4840")
    assert code == 2 and "opc.tcp://" in err


def test_an_unknown_mode_exits_2() -> None:
    with pytest.raises(SystemExit) as e:  # argparse rejects a mode outside its choices
        main(["browse", "opc.tcp://127.0.0.1:1/", "--mode", "Encrypt"])
    assert e.value.code == 2


async def test_no_server_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/nothing"
    code, rows, err = await browse(capsys, endpoint, "--timeout", "2")
    assert (code, rows) == (1, {})
    assert err.count("\n") == 1 and err.startswith(f"plantpulse browse: {endpoint}: ")


@contextlib.asynccontextmanager
async def _server_with_units(endpoint: str) -> AsyncIterator[None]:
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    idx = await server.register_namespace("urn:plantpulse:browse-test")
    meter = await server.nodes.objects.add_object(idx, "meter")
    power = await meter.add_variable(ua.NodeId("meter.power", idx), "power", 1.5)
    kw = ua.EUInformation(
        NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
        UnitId=4937544,  # "KWT"
        DisplayName=ua.LocalizedText("kW"),
        Description=ua.LocalizedText("kilowatt"),
    )
    await power.add_property(0, "EngineeringUnits", ua.Variant(kw))
    await meter.add_variable(
        ua.NodeId("meter.count", idx), "count", ua.Variant(7, ua.VariantType.UInt32)
    )
    async with server:
        yield


async def test_engineering_units_and_data_types_are_listed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/units"
    async with asyncio.timeout(30), _server_with_units(endpoint):
        code, rows, _ = await browse(capsys, endpoint)
    assert code == 0
    assert rows == {
        "ns=2;s=meter.power": ("meter/power", "Double", "kW"),
        "ns=2;s=meter.count": ("meter/count", "UInt32", "-"),
    }


@pytest.fixture
def opcua_peer(peers_installed: None) -> Iterator[str]:
    with node_opcua_server(free_port()) as endpoint:
        yield endpoint


@pytest.mark.peers
async def test_browse_lists_node_opcua_variables(
    capsys: pytest.CaptureFixture[str], opcua_peer: str
) -> None:
    code, rows, err = await browse(capsys, opcua_peer)
    assert code == 0, err
    names = ("temperature", "pressure-diff", "energy", "humidity", "particles")
    for name in names:
        assert rows[f"ns=1;s=peer.{name}"] == (f"PlantPulsePeer/{name}", "Double", "-")
