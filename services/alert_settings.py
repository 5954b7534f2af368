"""Alert delivery settings under PT_ALERTS__: webhooks (a JSON list), SMTP, the alerts topic
and the per-target queue. Validation only: services.notify_setup builds the notifiers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from compute.alert_rules import Severity


def _severities(v: Any) -> Any:
    """Names (low, medium, high, critical) or numbers 1-4."""
    if v is None:
        return None
    out = []
    for s in v if isinstance(v, list | tuple | set | frozenset) else [v]:
        if isinstance(s, str) and not s.isdigit():
            try:
                out.append(Severity[s.strip().upper()])
            except KeyError:
                names = ", ".join(x.name.lower() for x in Severity)
                raise ValueError(f"unknown severity {s!r}: use {names}") from None
        else:
            out.append(Severity(int(s)))
    return frozenset(out)


class _Filters(BaseModel):
    severities: frozenset[Severity] | None = None  # None: every severity
    sites: frozenset[str] | None = None  # None: every site

    @field_validator("severities", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        return _severities(v)


class WebhookSettings(_Filters):
    """One webhook: {"url": ..., "secret": ..., "name": ..., "severities": [...], "sites": [...]}"""

    url: str
    secret: SecretStr  # the HMAC-SHA256 key receivers verify the signature with
    name: str | None = None  # default: the URL's host
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return v

    @property
    def target_name(self) -> str:
        return self.name or urlsplit(self.url).hostname or self.url


class SmtpSettings(_Filters):
    """E-mail is off while host is unset."""

    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = "plantpulse@localhost"
    recipients: list[str] = Field(default_factory=list)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)


class AlertSettings(BaseModel):
    """PT_ALERTS__WEBHOOKS='[{"url": "https://...", "secret": "..."}]', PT_ALERTS__SMTP__HOST..."""

    topic: str = "plantpulse.alerts"
    publish: bool = True  # every transition onto the topic, for the live views
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    queue_size: int = Field(
        default=1000, ge=1
    )  # per target in memory; past it, read from the store

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, v: list[WebhookSettings]) -> list[WebhookSettings]:
        names = [w.target_name for w in v]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook names must be unique (set name): {names}")
        return v
