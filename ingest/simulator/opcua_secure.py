"""Optional security for the simulated OPC UA server: a server certificate, the secure policies and
a user list, so tests can run Sign, SignAndEncrypt and user authentication against our simulator.

Test and demo scaffolding only: it never decides what a real client trusts.
"""

from __future__ import annotations

import hmac
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.server import Server
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

APPLICATION_URI = "urn:plantpulse:simulator"
SECURE_POLICIES = [
    ua.SecurityPolicyType.Basic256Sha256_Sign,
    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorSecurity:
    """The server's certificate and key, and who may open a session."""

    cert_path: Path  # DER
    key_path: Path  # PEM
    users: Mapping[str, str] = field(default_factory=dict)  # user name -> password
    user_cert_fingerprints: frozenset[str] = frozenset()  # SHA-256 of accepted user certificates
    allow_anonymous: bool = True
    offer_none: bool = True  # also offer the unsecured endpoint (policy None)

    @property
    def fingerprint(self) -> str:
        cert = x509.load_der_x509_certificate(self.cert_path.read_bytes())
        return cert.fingerprint(hashes.SHA256()).hex()


def server_certificate(pki_dir: Path, name: str = "simulator") -> tuple[Path, Path]:
    """A self-signed server certificate and key in pki_dir, generated when missing."""
    cert_path, key_path = pki_dir / f"{name}.der", pki_dir / f"{name}-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    pki_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"plantpulse {name}",
        {},
        [x509.UniformResourceIdentifier(APPLICATION_URI), x509.DNSName(host)],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH],
        days=365,
    )
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cert_path, key_path


class _Users(UserManager):
    """asyncua user manager: a session is someone we know, or anonymous when allowed."""

    def __init__(self, security: SimulatorSecurity) -> None:
        self.security = security

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None:
            expected = self.security.users.get(username)
            ok = expected is not None and hmac.compare_digest(expected, password or "")
            return User(role=UserRole.User, name=username) if ok else None
        # asyncua passes the channel's client certificate for anonymous sessions too, so a
        # certificate that is not a known user's falls back to anonymous (when allowed).
        if certificate:  # empty on an unsecured channel
            fp = x509.load_der_x509_certificate(bytes(certificate)).fingerprint(hashes.SHA256())
            if fp.hex() in self.security.user_cert_fingerprints:
                return User(role=UserRole.User, name=f"cert:{fp.hex()[:12]}")
        # asyncua lets the Anonymous role do nothing at all: anonymous readers are plain users.
        return User(role=UserRole.User, name="anonymous") if self.security.allow_anonymous else None


async def secure_server(server: Server, security: SimulatorSecurity) -> None:
    """Load the certificate, offer the secure policies and install the user list (before start)."""
    await server.set_application_uri(APPLICATION_URI)
    await server.load_certificate(str(security.cert_path))
    await server.load_private_key(str(security.key_path))
    offered = [ua.SecurityPolicyType.NoSecurity] if security.offer_none else []
    server.set_security_policy(offered + SECURE_POLICIES)
    tokens: list[type] = []
    if security.allow_anonymous:
        tokens.append(ua.AnonymousIdentityToken)
    if security.users:
        tokens.append(ua.UserNameIdentityToken)
    if security.user_cert_fingerprints:
        tokens.append(ua.X509IdentityToken)
    server.set_identity_tokens(tokens)
    server.iserver.set_user_manager(_Users(security))
