"""deploy/compose.yaml and deploy/Dockerfile, without a container engine: `docker-compose config`
(Debian's docker-compose) or `docker compose config` accepts the file with .env.example filled
in, and the structure holds (variables documented, dependencies known, paths present)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
IN_CI = os.environ.get("CI", "").lower() == "true"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(:?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _compose_command() -> list[str] | None:
    if exe := shutil.which("docker-compose"):
        return [exe]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    return None


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    cmd = _compose_command()
    if cmd is None:
        if IN_CI:
            pytest.fail("docker-compose is required in CI (Debian: apt-get install docker-compose)")
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{k}={v or 'not-a-real-secret'}\n" for k, v in _env_example().items())
    )
    base = [*cmd, "-f", str(COMPOSE), "--env-file", str(env_file)]
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    ok = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    # without the passwords compose refuses, naming the missing one
    env_file.write_text(ENV_EXAMPLE.read_text())
    missing = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, env=env)
    assert missing.returncode != 0
    assert "POSTGRES_PASSWORD" in missing.stderr or "GRAFANA" in missing.stderr


def test_every_variable_is_documented_and_used() -> None:
    used = {m.group(1) for m in _VAR.finditer(COMPOSE.read_text())}
    documented = _env_example()
    assert used - documented.keys() == set(), "add them to deploy/.env.example"
    assert documented.keys() - used - {"COMPOSE_PROJECT_NAME"} == set(), "unused in compose.yaml"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), f"{line.split('=')[0]}: explain it just above"
    for secret in SECRETS:
        assert documented[secret] == "", "no password is committed"
        assert f"${{{secret}:?" in COMPOSE.read_text(), "compose must refuse to start without it"


def test_services_depend_on_known_services_and_ports_do_not_collide() -> None:
    services = _compose()["services"]
    assert {"kafka", "timescaledb", "gateway", "alerting", "api", "grafana"} <= services.keys()
    assert sum(1 for s in services.values() if s.get("command") == ["aggregator"]) == 2
    host_ports = []
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in services and dep != name
            assert cond["condition"] in ("service_started", "service_healthy")
            if cond["condition"] == "service_healthy":
                # the image's HEALTHCHECK serves plantpulse services without their own
                assert "healthcheck" in services[dep] or services[dep].get("build"), dep
        for port in svc.get("ports", []):
            host_ports.append(port.rsplit(":", 1)[0].split(":")[-1])
        if "build" in svc:
            assert svc["command"][0] in ("gateway", "aggregator", "alerting", "api")
            assert svc["environment"]["PT_STORE__URL"].startswith("postgresql://")
    assert len(host_ports) == len(set(host_ports)), host_ports


def test_mounted_paths_exist() -> None:
    defaults = _env_example()
    for svc in _compose()["services"].values():
        for volume in svc.get("volumes", []):
            source = _VAR.sub(lambda m: defaults[m.group(1)], volume.split(":")[0])
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


def test_dockerfile_runs_as_non_root_with_pins_and_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.count("FROM ") >= 2  # build and runtime stages
    assert re.search(r"^USER 10001", text, re.M)
    assert "HEALTHCHECK" in text and 'ENTRYPOINT ["plantpulse"]' in text
    assert "-r deploy/requirements.lock" in text
    pins = {
        re.split(r"==", line)[0].lower().replace("_", "-")
        for line in (DEPLOY / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert all(
        "==" in line
        for line in (DEPLOY / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in deploy/requirements.lock"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".git" in ignored and ".venv" in ignored and "deploy/.env" in ignored


def test_health_check_probes_the_process_port(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None and spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    monkeypatch.setenv("PT_API_PORT", "8123")
    monkeypatch.setenv("PT_ALERTING_METRICS_PORT", "0")  # turned off: nothing to probe
    for name in ("PT_GATEWAY_METRICS_PORT", "PT_AGGREGATOR_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert healthcheck._port("api") == 8123
    assert healthcheck._port("gateway") == 9108
    assert healthcheck._port("aggregator") == 9109
    assert healthcheck._port("alerting") == healthcheck._port("") == 0


def test_consumers_are_healthy_when_ready() -> None:
    services = _compose()["services"]
    for name, process in (
        ("aggregator-1", "aggregator"),
        ("aggregator-2", "aggregator"),
        ("alerting", "alerting"),
    ):
        svc = services[name]
        assert svc["healthcheck"]["test"][-2:] == ["/opt/plantpulse/healthcheck.py", "/readyz"]
        assert svc["environment"][f"PT_{process.upper()}_METRICS_HOST"] == "0.0.0.0"
        assert svc["environment"]["PT_STORE__URL"].startswith("postgresql://")
