"""The alert rules as stored: read from a rules file, seeded into the store, validated for the API
and bound to the plant rule by rule. Shared by the alerting process and the API."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from compute.alert_config import AlertConfigError, parse_rules, resolve, rule_to_dict
from compute.alert_rules import AlertRule, Binding
from compute.plant import ConfigIssue, Plant
from services.store.alerts import AlertStore, RuleChange, RuleRecord, canonical

log = logging.getLogger(__name__)


def load_rules_file(path: Path) -> tuple[AlertRule, ...]:
    """The rules of a YAML file; AlertConfigError names every bad key, OSError if unreadable."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise AlertConfigError([ConfigIssue(path=str(path), message=f"not YAML: {e}")]) from e
    if data is not None and not isinstance(data, Mapping):
        raise AlertConfigError([ConfigIssue(path=str(path), message="must be a mapping")])
    return parse_rules(data)


def body_of(rule: AlertRule) -> str:
    """The rule's stored form: its YAML form as canonical JSON."""
    return canonical(rule_to_dict(rule))


def parse_body(body: Mapping[str, Any]) -> AlertRule:
    """One rule in its YAML form; AlertConfigError with paths starting "rule"."""
    try:
        (rule,) = parse_rules({"rules": [dict(body)]})
    except AlertConfigError as e:
        raise AlertConfigError(
            [
                ConfigIssue(path=i.path.replace("rules[0]", "rule", 1), message=i.message)
                for i in e.issues
            ]
        ) from e
    return rule


def rules_of(records: Sequence[RuleRecord]) -> list[AlertRule]:
    """The live rules of stored records; one that no longer parses is skipped and logged."""
    out = []
    for r in records:
        if r.body is None:
            continue
        try:
            out.append(parse_body(json.loads(r.body)))
        except (AlertConfigError, ValueError) as e:
            log.error("alert rule %s (version %d) is skipped: %s", r.rule_id, r.version, e)
    return out


def bind(rules: Sequence[AlertRule], plant: Plant) -> list[Binding]:
    """Each rule's bindings; a rule that does not fit this plant is skipped and logged, so one
    bad rule never silences the others."""
    out: list[Binding] = []
    for r in rules:
        try:
            out += resolve([r], plant)
        except AlertConfigError as e:
            log.error("alert rule %s is not watched: %s", r.id, e)
    return out


async def seed(store: AlertStore, rules: Sequence[AlertRule], source: str, at_ns: int) -> int:
    """Load a rules file into the store: a rule new to the store, or changed in the file since it
    was last loaded from it, is written (audited); one edited through the API since, and not
    changed in the file, keeps the API's version. Returns how many rules changed."""
    known = {r.rule_id: r for r in await store.alert_rules(deleted=True)}
    changed = 0
    for rule in rules:
        body = body_of(rule)
        sha = hashlib.sha256(body.encode()).hexdigest()
        old = known.get(rule.id)
        if old is not None and old.file_sha256 == sha:
            continue  # the file says what it said when last loaded
        why = "new in the rules file" if old is None else "changed in the rules file"
        got = await store.change_alert_rule(
            RuleChange(
                rule_id=rule.id,
                body=body,
                at_ns=at_ns,
                actor=f"rules file {source}",
                reason=why,
                file_sha256=sha,
            )
        )
        changed += got is not None
    return changed
