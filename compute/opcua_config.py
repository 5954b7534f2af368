"""Per-meter OPC UA connection options: message security, server trust and user authentication.

Pure configuration: it names files and environment variables but never reads them.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


class SecurityMode(enum.StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class SecurityPolicy(enum.StrEnum):
    """The policy names of the OPC UA specification (the fragment of their URIs)."""

    BASIC256SHA256 = "Basic256Sha256"
    AES128_SHA256_RSAOAEP = "Aes128_Sha256_RsaOaep"
    AES256_SHA256_RSAPSS = "Aes256_Sha256_RsaPss"


class UserAuth(enum.StrEnum):
    ANONYMOUS = "anonymous"
    USERNAME = "username"
    CERTIFICATE = "certificate"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits; colons, spaces and case are ignored."""
    digits = re.sub(r"[\s:]", "", text).lower()
    if not _FINGERPRINT.match(digits):
        raise ValueError("a SHA-256 fingerprint is 64 hex digits, optionally separated by colons")
    return digits


class OpcUaSecurity(_Strict):
    """Message security and how the server's certificate is trusted."""

    mode: SecurityMode = SecurityMode.NONE
    policy: SecurityPolicy | None = None
    # A directory of trusted server certificates (PEM or DER), compared by SHA-256 fingerprint.
    trust_dir: Path | None = None
    server_fingerprint: str | None = None  # pins one server certificate by its SHA-256
    # Where the client certificate and key are generated once and kept (default: under the
    # data directory).
    cert_dir: Path | None = None

    @field_validator("server_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else normalize_fingerprint(value)

    @property
    def secure(self) -> bool:
        return self.mode is not SecurityMode.NONE


class OpcUaUser(_Strict):
    """Who the session runs as; a password only ever comes from the named environment variable."""

    auth: UserAuth = UserAuth.ANONYMOUS
    username: Annotated[str, Field(min_length=1)] | None = None
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    cert: Path | None = None  # X.509 user certificate (PEM or DER)
    key: Path | None = None  # its private key (PEM or DER, unencrypted)


class OpcUaOptions(_Strict):
    security: OpcUaSecurity = OpcUaSecurity()
    user: OpcUaUser = OpcUaUser()


def check_options(options: OpcUaOptions) -> list[tuple[str, str]]:
    """Every inconsistency in the options, as (path below the options, message)."""
    issues: list[tuple[str, str]] = []
    sec, user = options.security, options.user
    if not sec.secure:
        if sec.policy is not None:
            issues.append(
                ("security.policy", "mode None takes no policy; use Sign or SignAndEncrypt")
            )
        for name in ("trust_dir", "server_fingerprint"):
            if getattr(sec, name) is not None:
                issues.append((f"security.{name}", "only used with mode Sign or SignAndEncrypt"))
    else:
        if sec.policy is None:
            policies = ", ".join(p.value for p in SecurityPolicy)
            issues.append(("security.policy", f"mode {sec.mode} needs a policy: {policies}"))
        if sec.trust_dir is None and sec.server_fingerprint is None:
            issues.append(
                (
                    "security.trust_dir",
                    f"mode {sec.mode} needs a trust list directory of server certificates "
                    "or a pinned server_fingerprint",
                )
            )
    wanted = {
        UserAuth.ANONYMOUS: set(),
        UserAuth.USERNAME: {"username", "password_env"},
        UserAuth.CERTIFICATE: {"cert", "key"},
    }[user.auth]
    for name in ("username", "password_env", "cert", "key"):
        given = getattr(user, name) is not None
        if name in wanted and not given:
            issues.append((f"user.{name}", f"auth {user.auth} needs {name}"))
        elif given and name not in wanted:
            issues.append((f"user.{name}", f"not used with auth {user.auth}"))
    return issues
