"""Apply a meter's OPC UA options to an asyncua Client: client certificate, server trust, user.

Never trusts a server certificate it was not told to trust. Reads no environment: the caller
passes the mapping that password_env names are looked up in.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen, security_policies
from asyncua.crypto.validator import CertificateValidatorMethod
from asyncua.ua.status_codes import StatusCodes, get_name_and_doc
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from compute.errors import PlantPulseError
from compute.opcua_config import OpcUaOptions, SecurityMode, SecurityPolicy, UserAuth

log = logging.getLogger(__name__)

Secrets = Mapping[str, str]  # where password_env names are looked up (the services pass os.environ)
NO_SECRETS: Secrets = MappingProxyType({})
NO_SECURITY = OpcUaOptions()
DEFAULT_PKI_DIR = Path(".plantpulse") / "opcua-pki"  # under the default data directory
CLIENT_CERT = "plantpulse-client.der"
CLIENT_KEY = "plantpulse-client-key.pem"
CERT_DAYS = 5 * 365
_TRUST_SUFFIXES = {".der", ".pem", ".crt", ".cer"}

POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
    SecurityPolicy.AES128_SHA256_RSAOAEP: security_policies.SecurityPolicyAes128Sha256RsaOaep,
    SecurityPolicy.AES256_SHA256_RSAPSS: security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {
    SecurityMode.NONE: ua.MessageSecurityMode.None_,
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


class OpcUaSecurityError(PlantPulseError):
    """The OPC UA security options cannot be applied, or the server is not trusted."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientIdentity:
    """Our application instance certificate, its key and the URI the certificate names."""

    cert_path: Path
    key_path: Path
    application_uri: str
    fingerprint: str


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def first_certificate(der: bytes) -> x509.Certificate:
    """The leading certificate of a DER blob, which some servers send with its chain appended."""
    if len(der) < 2 or der[0] != 0x30:
        raise ValueError("not a DER certificate")
    size = der[1]
    if size & 0x80:  # long form: the low bits count the length bytes that follow
        n = size & 0x7F
        size, head = int.from_bytes(der[2 : 2 + n], "big"), 2 + n
    else:
        head = 2
    return x509.load_der_x509_certificate(der[: head + size])


def _application_uri(cert: x509.Certificate) -> str:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        raise OpcUaSecurityError("the client certificate names no application URI")
    return str(uris[0])


def ensure_client_certificate(cert_dir: Path) -> ClientIdentity:
    """Load our certificate and key from cert_dir, generating them on first use only.

    Blocking file and key work: call it in a thread. A lock file keeps concurrent sources from
    generating two different keys.
    """
    cert_path, key_path = cert_dir / CLIENT_CERT, cert_dir / CLIENT_KEY
    try:
        cert_dir.mkdir(parents=True, exist_ok=True)
        with open(cert_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (cert_path.exists() and key_path.exists()):
                _generate(cert_path, key_path)
            cert = x509.load_der_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as e:
        raise OpcUaSecurityError(f"client certificate in {cert_dir}: {e}") from e
    if cert.not_valid_after_utc < datetime.now(UTC):
        raise OpcUaSecurityError(
            f"the client certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}; "
            "remove it and its key to generate a new one, then trust that on the servers"
        )
    return ClientIdentity(
        cert_path=cert_path,
        key_path=key_path,
        application_uri=_application_uri(cert),
        fingerprint=fingerprint(cert),
    )


def _generate(cert_path: Path, key_path: Path) -> None:
    host = socket.gethostname()
    uri = f"urn:{host}:plantpulse"
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"plantpulse@{host}",
        {"organizationName": "plantpulse"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host)],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
        days=CERT_DAYS,
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    log.warning(
        "generated the OPC UA client certificate %s (SHA-256 %s); servers must trust it",
        cert_path,
        fingerprint(cert),
    )


def trusted_fingerprints(trust_dir: Path) -> set[str]:
    """SHA-256 fingerprints of the certificates (PEM or DER) in a trust list directory."""
    found: set[str] = set()
    try:
        files = sorted(p for p in trust_dir.iterdir() if p.suffix.lower() in _TRUST_SUFFIXES)
    except OSError as e:
        raise OpcUaSecurityError(f"trust list {trust_dir}: {e.strerror or e}") from e
    for path in files:
        try:
            data = path.read_bytes()
            if b"-----BEGIN CERTIFICATE-----" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [first_certificate(data)]
        except (OSError, ValueError) as e:
            log.warning("skipping %s in the trust list: %s", path, e)
            continue
        found.update(fingerprint(c) for c in certs)
    return found


def _server_certificate(
    endpoints: list[ua.EndpointDescription], endpoint: str, options: OpcUaOptions
) -> x509.Certificate:
    sec = options.security
    assert sec.policy is not None  # check_options guarantees it for Sign and SignAndEncrypt
    uri, mode = POLICIES[sec.policy].URI, MODES[sec.mode]
    for ep in endpoints:
        if ep.SecurityPolicyUri == uri and ep.SecurityMode == mode and ep.ServerCertificate:
            return first_certificate(ep.ServerCertificate)
    offered = sorted(
        {f"{e.SecurityMode.name}/{e.SecurityPolicyUri.rpartition('#')[2]}" for e in endpoints}
    )
    raise OpcUaSecurityError(
        f"{endpoint} offers no {sec.mode}/{sec.policy} endpoint; it offers {', '.join(offered)}"
    )


def _check_trusted(cert: x509.Certificate, endpoint: str, options: OpcUaOptions, pki: Path) -> str:
    sec = options.security
    fp = fingerprint(cert)
    trusted = {sec.server_fingerprint} if sec.server_fingerprint else set()
    if sec.trust_dir is not None:
        trusted |= trusted_fingerprints(sec.trust_dir)
    if fp in trusted:
        return fp
    rejected = pki / "rejected" / f"{fp}.der"
    with contextlib.suppress(OSError):  # only a convenience for the operator
        rejected.parent.mkdir(parents=True, exist_ok=True)
        rejected.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    how = f"copy {rejected} into {sec.trust_dir} or " if sec.trust_dir else ""
    raise OpcUaSecurityError(
        f"the server certificate of {endpoint} is not trusted: SHA-256 {fp} "
        f"({cert.subject.rfc4514_string()}); to trust it, {how}set server_fingerprint: {fp}"
    )


def _pinned_validator(fp: str) -> CertificateValidatorMethod:
    async def validate(cert: x509.Certificate, _app: ua.ApplicationDescription) -> None:
        if fingerprint(cert) != fp:  # the session must present the certificate we checked
            raise ServiceError(StatusCodes.BadCertificateUntrusted)

    return validate


async def _secure(
    client: Client, endpoint: str, options: OpcUaOptions, pki: Path, t: float
) -> None:
    identity = await asyncio.to_thread(ensure_client_certificate, pki)
    client.application_uri = identity.application_uri
    async with asyncio.timeout(t):  # not wait_for, which can swallow a cancel in 3.11
        endpoints = await client.connect_and_get_server_endpoints()
    cert = _server_certificate(endpoints, endpoint, options)
    fp = _check_trusted(cert, endpoint, options, pki)
    sec = options.security
    assert sec.policy is not None
    await client.set_security(
        POLICIES[sec.policy],
        str(identity.cert_path),
        str(identity.key_path),
        server_certificate=cert.public_bytes(serialization.Encoding.DER),
        mode=MODES[sec.mode],
    )
    client.certificate_validator = _pinned_validator(fp)


async def _authenticate(client: Client, options: OpcUaOptions, secrets: Secrets) -> None:
    user = options.user
    if user.auth is UserAuth.USERNAME:
        assert user.username is not None and user.password_env is not None
        password = secrets.get(user.password_env)
        if password is None:
            raise OpcUaSecurityError(
                f"the environment variable {user.password_env} named by password_env is not set"
            )
        client.set_user(user.username)
        client.set_password(password)
    elif user.auth is UserAuth.CERTIFICATE:
        assert user.cert is not None and user.key is not None
        try:
            await client.load_client_certificate(str(user.cert))
            await client.load_private_key(user.key)
        except (OSError, ValueError) as e:
            raise OpcUaSecurityError(f"user certificate {user.cert} / {user.key}: {e}") from e


async def make_client(
    endpoint: str,
    options: OpcUaOptions,
    *,
    pki_dir: Path,
    secrets: Secrets = NO_SECRETS,
    timeout_s: float = 5.0,
) -> Client:
    """An unconnected Client for endpoint with the options applied.

    pki_dir keeps the client certificate unless the options name a cert_dir. For a secure mode
    this asks the server for its endpoints, so it waits up to timeout_s.
    """
    client = Client(endpoint, timeout=timeout_s)
    client.name = client.description = "plantpulse"
    client.product_uri = "urn:plantpulse"
    if options.security.secure:
        pki = options.security.cert_dir or pki_dir
        await _secure(client, endpoint, options, pki, timeout_s)
    await _authenticate(client, options, secrets)
    return client


def explain(e: BaseException) -> str:
    """A one-line reason for a failed connection, for people."""
    if isinstance(e, UaStatusCodeError):
        name, doc = get_name_and_doc(e.code)
        return f"{name}: {doc}"
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__
