"""`plantpulse check-config`: ok exits 0; every problem is named by its path and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def _plantpulse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return _plantpulse("check-config", str(path))


def test_the_example_plant_passes(example_plant_file: Path) -> None:
    r = _check(example_plant_file)
    assert r.returncode == 0, r.stderr
    assert "10 meters, 19 channels" in r.stdout


def test_a_bad_config_names_the_offending_path_and_exits_2(
    example_plant_file: Path, tmp_path: Path
) -> None:
    data = yaml.safe_load(example_plant_file.read_text())
    data["meters"][3]["channels"][0]["kind"] = "meter-ish"
    data["meters"][6]["channels"][1]["register"]["order"] = "sideways"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    r = _check(bad)
    assert r.returncode == 2
    assert "meters[3].channels[0].kind: " in r.stderr
    assert "meters[6].channels[1].register.order: " in r.stderr


def test_broken_yaml_says_where(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("sites:\n  - id: [unclosed\n")
    r = _check(bad)
    assert r.returncode == 2 and "line 3" in r.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    r = _check(tmp_path / "nope.yaml")
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_a_bad_setting_names_its_variable_and_exits_2(example_plant_file: Path) -> None:
    env = {**os.environ, "PT_BUCKET_S": "a minute"}
    r = _plantpulse("api", "--config", str(example_plant_file), env=env)
    assert r.returncode == 2 and "PT_BUCKET_S: " in r.stderr and "a minute" in r.stderr


def test_a_process_without_kafka_says_which_setting_is_missing(example_plant_file: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PT_KAFKA_BOOTSTRAP"}
    r = _plantpulse("gateway", "--config", str(example_plant_file), env=env)
    assert r.returncode == 1 and "PT_KAFKA_BOOTSTRAP is required" in r.stderr
