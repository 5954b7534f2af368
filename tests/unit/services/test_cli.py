"""`plantpulse check-config`: ok exits 0; every problem is named by its path and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


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


def _store_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}
    return {**env, "PT_STORE__URL": url}


def test_a_bad_store_url_names_its_variable_and_exits_2(example_plant_file: Path) -> None:
    env = _store_env("mysql://ops:s3cret@db/plant")
    for args in (("db", "status"), ("api", "--config", str(example_plant_file))):
        r = _plantpulse(*args, env=env)
        assert r.returncode == 2, r.stderr
        assert "PT_STORE__URL: " in r.stderr and "postgresql://" in r.stderr
        assert "sqlite:///" in r.stderr and "s3cret" not in r.stderr


def test_a_sqlite_store_url_without_a_path_exits_2() -> None:
    r = _plantpulse("db", "upgrade", env=_store_env("sqlite://"))
    assert r.returncode == 2 and "PT_STORE__URL: " in r.stderr and "file path" in r.stderr


def test_db_status_on_sqlite_lists_applied_and_pending_migrations(tmp_path: Path) -> None:
    db = tmp_path / "store" / "pp.sqlite3"
    env = _store_env(f"sqlite:///{db}")  # absolute: sqlite:////tmp/...
    r = _plantpulse("db", "status", env=env)
    assert r.returncode == 0, r.stderr
    assert f"store: sqlite {db}" in r.stdout and "schema version: 0 " in r.stdout
    assert "applied:\n  none\npending:\n  0001 initial\n" in r.stdout
    assert not db.exists()  # status reads, it does not create the database

    assert _plantpulse("db", "upgrade", env=env).returncode == 0
    r = _plantpulse("db", "status", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("pending:\n  none\n")
    assert "  0001 initial " in r.stdout.split("pending:")[0]


def test_db_status_exits_1_naming_why_the_store_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "junk.sqlite3").write_text("not a database, " * 100)
    r = _plantpulse("db", "status", env=_store_env(f"sqlite:///{tmp_path}/junk.sqlite3"))
    assert r.returncode == 1 and "file is not a database" in r.stderr


def test_the_default_store_is_in_the_data_dir_and_a_relative_url_is_from_the_cwd(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}
    r = _plantpulse("db", "status", env={**env, "PT_DATA_DIR": str(tmp_path / "data")})
    assert r.returncode == 0 and f"store: sqlite {tmp_path}/data/plantpulse.sqlite3" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "services.cli", "db", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**_store_env("sqlite:///rel/s.sqlite3"), "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
    )
    assert r.returncode == 0 and "store: sqlite rel/s.sqlite3" in r.stdout


def test_pt_pg_dsn_still_selects_postgresql_unless_a_store_url_is_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}
    dsn = "host=127.0.0.1 port=1 user=ops password=s3cret dbname=plant connect_timeout=2"
    r = _plantpulse("db", "status", env={**env, "PT_PG_DSN": dsn})
    assert r.returncode == 1  # nothing listens on port 1: unreachable, and the reason
    assert "store: postgresql " in r.stdout and "port=1" in r.stdout and "s3cret" not in r.stdout
    assert "PT_PG_DSN is deprecated" in r.stderr and "Connection refused" in r.stderr

    url = f"sqlite:///{tmp_path}/s.sqlite3"
    r = _plantpulse("db", "status", env={**env, "PT_PG_DSN": dsn, "PT_STORE__URL": url})
    assert r.returncode == 0 and f"store: sqlite {tmp_path}/s.sqlite3" in r.stdout


def test_export_writes_a_sites_readings_and_says_what_is_wrong(
    example_plant_file: Path, tmp_path: Path
) -> None:
    env = {
        **_store_env(f"sqlite:///{tmp_path / 's.sqlite3'}"),
        "PT_CONFIG": str(example_plant_file),
    }
    period = ("--start", "2026-11-23T12:00", "--end", "2026-11-23T13:00")
    ok = _plantpulse("export", "--site", "suzhou", *period, "--out", str(tmp_path / "out"), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "0 readings, 0 buckets of 19 channels" in ok.stdout  # an empty store: empty files
    assert (tmp_path / "out" / "readings.csv").read_text().startswith("channel_id,ts_utc,")
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert '"start_utc": "2026-11-23T04:00:00.000000+00:00"' in manifest  # site time, Shanghai
    ghost = _plantpulse("export", "--channels", "ghost.x", *period, "--out", "x", env=env)
    assert ghost.returncode == 2 and "unknown channels ['ghost.x']" in ghost.stderr
    backwards = ("--start", "2026-11-23T13:00", "--end", "2026-11-23T12:00")
    bad = _plantpulse("export", "--site", "suzhou", *backwards, "--out", "x", env=env)
    assert bad.returncode == 2 and "--end: must be after --start" in bad.stderr
