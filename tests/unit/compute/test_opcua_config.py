"""OPC UA security options in the plant model: every inconsistency is named by its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compute.opcua_config import OpcUaOptions, SecurityMode, SecurityPolicy, UserAuth
from compute.plant import PlantConfigError, parse_plant

FP = "0123456789abcdef" * 4
ENDPOINT = "opc.tcp://127.0.0.1:4840/plant/"


def _meter(meter_id: str, opcua: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    meter: dict[str, Any] = {
        "id": meter_id,
        "site": "s",
        "area": "utility",
        "protocol": "opcua",
        "endpoint": ENDPOINT,
        "channels": [
            {
                "id": "energy",
                "node_id": f"ns=2;s={meter_id}.energy",
                "unit": "kWh",
                "kind": "counter",
                "utility": "electricity",
            }
        ],
        **extra,
    }
    if opcua is not None:
        meter["opcua"] = opcua
    return meter


def _plant(*meters: dict[str, Any]) -> dict[str, Any]:
    site = {
        "id": "s",
        "name": "Site",
        "timezone": "Europe/Berlin",
        "areas": [{"id": "utility", "kind": "utility"}],
    }
    return {"sites": [site], "meters": list(meters)}


def _issues(*meters: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantConfigError) as e:
        parse_plant(_plant(*meters))
    return [str(i) for i in e.value.issues]


SECURE = {
    "security": {"mode": "SignAndEncrypt", "policy": "Aes256_Sha256_RsaPss", "trust_dir": "pki/t"},
    "user": {"auth": "username", "username": "reader", "password_env": "PT_OPCUA_PASSWORD"},
}


def test_no_options_mean_no_security_and_anonymous() -> None:
    plant = parse_plant(_plant(_meter("a")))
    opts = plant.meters[0].opcua
    assert opts == OpcUaOptions()
    assert opts.security.mode is SecurityMode.NONE and opts.security.policy is None
    assert opts.user.auth is UserAuth.ANONYMOUS


def test_a_complete_secure_configuration_is_accepted() -> None:
    plant = parse_plant(_plant(_meter("a", SECURE), _meter("b", SECURE)))
    sec = plant.meters[1].opcua.security
    assert sec.mode is SecurityMode.SIGN_AND_ENCRYPT
    assert sec.policy is SecurityPolicy.AES256_SHA256_RSAPSS
    assert sec.trust_dir == Path("pki/t")


def test_mode_none_takes_no_policy_nor_trust() -> None:
    opcua = {"security": {"policy": "Basic256Sha256", "server_fingerprint": FP}}
    issues = _issues(_meter("a", opcua))
    assert issues == [
        "meters[0].opcua.security.policy: mode None takes no policy; use Sign or SignAndEncrypt",
        "meters[0].opcua.security.server_fingerprint: only used with mode Sign or SignAndEncrypt",
    ]


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_a_secure_mode_needs_a_policy_and_a_trust_list(mode: str) -> None:
    issues = _issues(_meter("a", {"security": {"mode": mode}}))
    assert len(issues) == 2
    assert issues[0].startswith(f"meters[0].opcua.security.policy: mode {mode} needs a policy")
    assert issues[1].startswith("meters[0].opcua.security.trust_dir: ")
    assert "trust list" in issues[1] and "server_fingerprint" in issues[1]


def test_a_pinned_fingerprint_is_trust_enough_and_is_normalised() -> None:
    pinned = ":".join(FP[i : i + 2] for i in range(0, 64, 2)).upper()
    opcua = {"security": {"mode": "Sign", "policy": "Basic256Sha256", "server_fingerprint": pinned}}
    plant = parse_plant(_plant(_meter("a", opcua)))
    assert plant.meters[0].opcua.security.server_fingerprint == FP


def test_unknown_mode_policy_and_bad_fingerprint_name_their_paths() -> None:
    opcua = {"security": {"mode": "Encrypt", "policy": "Basic128Rsa15", "server_fingerprint": "ab"}}
    issues = _issues(_meter("a", opcua))
    assert [i.split(":")[0] for i in issues] == [
        "meters[0].opcua.security.mode",
        "meters[0].opcua.security.policy",
        "meters[0].opcua.security.server_fingerprint",
    ]
    assert "64 hex digits" in issues[2]


def test_a_password_never_sits_in_the_yaml() -> None:
    opcua = {"user": {"auth": "username", "username": "reader", "password": "secret"}}
    issues = _issues(_meter("a", opcua))
    assert "meters[0].opcua.user.password: Extra inputs are not permitted" in issues


def test_username_auth_needs_a_user_and_a_password_variable() -> None:
    issues = _issues(_meter("a", {"user": {"auth": "username"}}))
    assert issues == [
        "meters[0].opcua.user.username: auth username needs username",
        "meters[0].opcua.user.password_env: auth username needs password_env",
    ]
    bad_name = {"user": {"auth": "username", "username": "u", "password_env": "1-PASS"}}
    (issue,) = _issues(_meter("a", bad_name))
    assert issue.startswith("meters[0].opcua.user.password_env: String should match pattern")


def test_certificate_auth_needs_cert_and_key_and_nothing_else() -> None:
    opcua = {"user": {"auth": "certificate", "cert": "user.der", "username": "u"}}
    issues = _issues(_meter("a", opcua))
    assert issues == [
        "meters[0].opcua.user.username: not used with auth certificate",
        "meters[0].opcua.user.key: auth certificate needs key",
    ]


def test_meters_sharing_an_endpoint_share_their_options() -> None:
    issues = _issues(_meter("a", SECURE), _meter("b"))
    assert issues == [
        "meters[1].opcua: differs from meters[0], which shares its endpoint and session"
    ]


def test_a_modbus_meter_takes_no_opcua_options() -> None:
    modbus = _meter("m", {"user": {"auth": "anonymous", "username": "x"}})
    modbus.update(protocol="modbus_tcp", endpoint="127.0.0.1:5020")
    modbus["channels"][0].pop("node_id")
    modbus["channels"][0]["register"] = {"address": 0, "type": "uint16"}
    issues = _issues(_meter("a"), modbus)
    assert issues == ["meters[1].opcua: only OPC UA meters take opcua options"]
