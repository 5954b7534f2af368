"""Load the plant model from a YAML file, reporting every problem with its path."""

from __future__ import annotations

from pathlib import Path

import yaml

from compute.plant import ConfigIssue, Plant, PlantConfigError, parse_plant


def load_plant(path: Path) -> Plant:
    """Read and validate a plant file; raise PlantConfigError naming each offending path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise PlantConfigError(
            [ConfigIssue(path=str(path), message=f"cannot read: {e.strerror}")]
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise PlantConfigError([ConfigIssue(path=where, message=f"invalid YAML: {e}")]) from e
    if not isinstance(data, dict):
        raise PlantConfigError([ConfigIssue(path="", message="the plant file must be a mapping")])
    return parse_plant(data)
