"""OPC UA security against our simulator with a server certificate: explicit server trust, the
secure policies, user name / password and X.509 user authentication, and a client certificate
generated once and reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua.crypto import cert_gen
from asyncua.ua.uaerrors import BadIdentityTokenRejected, BadUserAccessDenied
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from compute.model import Quality
from compute.opcua_config import OpcUaOptions
from compute.plant import Plant, Protocol, parse_plant
from ingest.opcua_security import (
    CLIENT_CERT,
    CLIENT_KEY,
    OpcUaSecurityError,
    ensure_client_certificate,
    make_client,
)
from ingest.opcua_source import OpcUaSource
from ingest.simulator.model import PlantSimulator
from ingest.simulator.opcua_secure import SimulatorSecurity, server_certificate
from ingest.simulator.servers import serve
from tests.harness import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "medtech-plant.yaml"
PASSWORD_ENV = "PT_TEST_OPCUA_PASSWORD"
USERS = {"reader": "correct horse battery staple"}
NODE = "ns=2;s=main-incomer.energy-import"


def opcua_plant() -> Plant:
    """The example plant's OPC UA meters, moved to a free port."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    port = free_port()
    data["meters"] = [m for m in data["meters"] if m["protocol"] == Protocol.OPCUA]
    for m in data["meters"]:
        m["endpoint"] = m["endpoint"].replace(":4840/", f":{port}/")
    return parse_plant(data)


@contextlib.asynccontextmanager
async def secure_simulator(
    plant: Plant, pki: Path, **security: Any
) -> AsyncIterator[SimulatorSecurity]:
    cert, key = server_certificate(pki / "server")
    sec = SimulatorSecurity(cert_path=cert, key_path=key, users=USERS, **security)
    sim = PlantSimulator(plant, seed=7, start_ns=time.time_ns())
    async with serve(sim, opcua_security=sec):
        yield sec


def options(**sections: dict[str, Any]) -> OpcUaOptions:
    return OpcUaOptions.model_validate(sections)


def trust_dir_with(tmp_path: Path, *certs: Path) -> Path:
    trust = tmp_path / "trusted"
    trust.mkdir(exist_ok=True)
    for c in certs:
        shutil.copy(c, trust / c.name)
    return trust


async def read_once(endpoint: str, opts: OpcUaOptions, pki: Path, **kw: Any) -> float:
    client = await make_client(endpoint, opts, pki_dir=pki, timeout_s=5.0, **kw)
    async with client:
        return float(await client.get_node(NODE).read_value())


async def good_values(source: OpcUaSource, keys: set[str], timeout_s: float) -> dict[str, float]:
    """The latest good value of each channel, once every one of keys has had one."""
    good: dict[str, float] = {}
    complete = asyncio.Event()

    async def pump() -> None:
        async for batch in source.batches():
            for i in range(batch.size):
                if Quality(int(batch.quality[i])) is Quality.GOOD:
                    good[batch.channel_ids[batch.channel_index[i]]] = float(batch.value[i])
            if keys <= set(good):
                complete.set()

    task = asyncio.create_task(pump())
    try:
        waiter = asyncio.create_task(complete.wait())
        await asyncio.wait({task, waiter}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # the source failed: show why
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        stuck = not task.done()
        if stuck:  # clean up before failing: a second cancel lands on a later await
            task.cancel()
            await asyncio.wait({task}, timeout=5)
    assert not stuck, "the source did not stop within 5 s of being cancelled"
    return good


@pytest.fixture
def plant() -> Plant:
    return opcua_plant()


def _endpoint(plant: Plant) -> str:
    return plant.meters[0].endpoint


async def test_an_untrusted_server_certificate_is_refused_naming_its_fingerprint(
    plant: Plant, tmp_path: Path
) -> None:
    other, _ = server_certificate(tmp_path / "elsewhere", name="another-server")
    trust = trust_dir_with(tmp_path, other)
    secure = {"mode": "SignAndEncrypt", "policy": "Basic256Sha256", "trust_dir": str(trust)}
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path) as sec:
        with pytest.raises(OpcUaSecurityError) as e:
            await read_once(_endpoint(plant), options(security=secure), tmp_path / "pki")
    message = str(e.value)
    assert f"SHA-256 {sec.fingerprint}" in message and "not trusted" in message
    assert _endpoint(plant) in message
    # The refused certificate is kept, so an operator can inspect it and move it to the trust list.
    rejected = tmp_path / "pki" / "rejected" / f"{sec.fingerprint}.der"
    assert rejected.read_bytes() == sec.cert_path.read_bytes()


@pytest.mark.parametrize(
    ("mode", "policy"),
    [
        ("SignAndEncrypt", "Basic256Sha256"),
        ("SignAndEncrypt", "Aes128_Sha256_RsaOaep"),
        ("SignAndEncrypt", "Aes256_Sha256_RsaPss"),
        ("Sign", "Basic256Sha256"),
    ],
)
async def test_a_trusted_server_is_read_with_each_policy(
    plant: Plant, tmp_path: Path, mode: str, policy: str
) -> None:
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path, offer_none=False) as sec:
        trust = trust_dir_with(tmp_path, sec.cert_path)
        opts = options(security={"mode": mode, "policy": policy, "trust_dir": str(trust)})
        value = await read_once(_endpoint(plant), opts, tmp_path / "pki")
    assert value > 1_800_000  # the main incomer's counter


async def test_values_flow_from_opcua_source_over_sign_and_encrypt(
    plant: Plant, tmp_path: Path
) -> None:
    refs = [r for r in plant.channels.values() if r.meter.protocol is Protocol.OPCUA]
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path, offer_none=False) as sec:
        opts = options(
            security={
                "mode": "SignAndEncrypt",
                "policy": "Aes256_Sha256_RsaPss",
                "server_fingerprint": sec.fingerprint,
            },
            user={"auth": "username", "username": "reader", "password_env": PASSWORD_ENV},
        )
        source = OpcUaSource(
            _endpoint(plant),
            refs,
            publish_interval_s=0.2,
            security=opts,
            pki_dir=tmp_path / "pki",
            secrets={PASSWORD_ENV: USERS["reader"]},
        )
        good = await good_values(source, {r.key for r in refs}, timeout_s=15)
    assert set(good) == {r.key for r in refs}


async def test_username_and_password_accepted_and_a_wrong_password_refused(
    plant: Plant, tmp_path: Path
) -> None:
    user = {"auth": "username", "username": "reader", "password_env": PASSWORD_ENV}
    trust = trust_dir_with(tmp_path)
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path, allow_anonymous=False) as sec:
        shutil.copy(sec.cert_path, trust / "simulator.der")
        secure = {"mode": "SignAndEncrypt", "policy": "Basic256Sha256", "trust_dir": str(trust)}
        for opts in (options(user=user), options(security=secure, user=user)):
            right = {PASSWORD_ENV: USERS["reader"]}
            assert await read_once(_endpoint(plant), opts, tmp_path / "pki", secrets=right) > 0
            with pytest.raises(BadUserAccessDenied):
                await read_once(
                    _endpoint(plant), opts, tmp_path / "pki", secrets={PASSWORD_ENV: "wrong"}
                )
        with pytest.raises(OpcUaSecurityError, match=f"{PASSWORD_ENV} named by password_env"):
            await read_once(_endpoint(plant), options(user=user), tmp_path / "pki")
        with pytest.raises(BadIdentityTokenRejected):  # anonymous sessions are not offered
            await read_once(_endpoint(plant), options(), tmp_path / "pki")


def _user_certificate(directory: Path, name: str) -> tuple[Path, Path, str]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {},
        [x509.UniformResourceIdentifier(f"urn:test:{name}")],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.der", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path, cert.fingerprint(hashes.SHA256()).hex()


async def test_an_x509_user_certificate_authenticates(plant: Plant, tmp_path: Path) -> None:
    known_cert, known_key, known_fp = _user_certificate(tmp_path / "users", "operator")
    other_cert, other_key, _ = _user_certificate(tmp_path / "users", "stranger")
    kw = {"allow_anonymous": False, "user_cert_fingerprints": frozenset({known_fp})}
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path, **kw) as sec:
        secure = {
            "mode": "SignAndEncrypt",
            "policy": "Basic256Sha256",
            "server_fingerprint": sec.fingerprint,
        }
        user = {"auth": "certificate", "cert": str(known_cert), "key": str(known_key)}
        opts = options(security=secure, user=user)
        assert await read_once(_endpoint(plant), opts, tmp_path / "pki") > 0
        stranger = {"auth": "certificate", "cert": str(other_cert), "key": str(other_key)}
        with pytest.raises(BadUserAccessDenied):
            await read_once(_endpoint(plant), options(security=secure, user=stranger), tmp_path)


async def test_the_client_certificate_is_generated_once_and_reused(
    plant: Plant, tmp_path: Path
) -> None:
    pki = tmp_path / "pki"
    async with asyncio.timeout(30), secure_simulator(plant, tmp_path) as sec:
        opts = options(
            security={
                "mode": "SignAndEncrypt",
                "policy": "Aes128_Sha256_RsaOaep",
                "server_fingerprint": sec.fingerprint,
            }
        )
        await read_once(_endpoint(plant), opts, pki)
        first = (pki / CLIENT_CERT).read_bytes(), (pki / CLIENT_KEY).read_bytes()
        await read_once(_endpoint(plant), opts, pki)
        # A cert_dir in the options wins over the default directory.
        moved = replace_cert_dir(opts, tmp_path / "elsewhere")
        await read_once(_endpoint(plant), moved, pki)
    assert ((pki / CLIENT_CERT).read_bytes(), (pki / CLIENT_KEY).read_bytes()) == first
    assert (tmp_path / "elsewhere" / CLIENT_CERT).read_bytes() != first[0]
    assert (pki / CLIENT_KEY).stat().st_mode & 0o077 == 0  # the key is private


def replace_cert_dir(opts: OpcUaOptions, cert_dir: Path) -> OpcUaOptions:
    return opts.model_copy(
        update={"security": opts.security.model_copy(update={"cert_dir": cert_dir})}
    )


def test_concurrent_sources_share_one_generated_certificate(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        identities = list(pool.map(ensure_client_certificate, [tmp_path] * 4))
    assert len({i.fingerprint for i in identities}) == 1
    cert = x509.load_der_x509_certificate((tmp_path / CLIENT_CERT).read_bytes())
    assert identities[0].application_uri in str(cert.extensions)
