"""k8s/: every overlay renders with `kubectl kustomize`, validates with kubernetes-validate and
keeps the deployment's invariants (probes, least privilege, aggregators <= partitions).

The optional overlays add custom resources (Strimzi's Kafka, CloudNativePG's Cluster) whose
schemas kubernetes-validate does not ship: those are checked for shape only, by group.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ["dev", "prod", "strimzi", "cloudnativepg"]
PROCESSES = {"gateway", "aggregator", "alerting", "api"}
# Kubernetes versions the rendered objects must be valid for: an older supported one and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ["1.30.0", "1.34.0"]
# Custom resources of the optional overlays; their CRDs come with the operators.
CRD_KINDS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("postgresql.cnpg.io/v1", "Cluster"),
}
IN_CI = os.environ.get("CI", "").lower() == "true"

Doc = dict[str, Any]


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is unavailable")
    pytest.skip(f"{what} unavailable")


@cache
def _render(path: str) -> tuple[Doc, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _unavailable("kubectl (Debian: apt-get install kubernetes-client)")
        raise AssertionError  # not reached
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def _of(docs: tuple[Doc, ...], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _settings(docs: tuple[Doc, ...]) -> dict[str, str]:
    maps = [d for n, d in _of(docs, "ConfigMap").items() if n.startswith("plantpulse-settings")]
    assert len(maps) == 1
    data: dict[str, str] = maps[0]["data"]
    return data


@pytest.mark.parametrize("overlay", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_renders_and_validates(overlay: str) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        _unavailable("kubernetes-validate (pip install -e '.[dev]')")
        raise
    docs = _render(overlay)
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            # no schema to hand: the shape the operator needs, and only where it is expected
            assert overlay.split("/")[-1] in ("strimzi", "cloudnativepg"), doc["kind"]
            assert doc["metadata"]["name"] and isinstance(doc["spec"], dict)
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployments_follow_the_rules(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    deployments = _of(docs, "Deployment")
    assert {
        d["spec"]["template"]["spec"]["containers"][0]["args"][0] for d in deployments.values()
    } == PROCESSES
    pdbs = _of(docs, "PodDisruptionBudget")
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "plantpulse"
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
        assert "livenessProbe" in c and "readinessProbe" in c
        store = next(e for e in c["env"] if e["name"] == "PT_STORE__URL")
        assert "secretKeyRef" in store["valueFrom"]  # never a value in the manifests
        # the writable paths are volumes, the root filesystem is read-only
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/var/lib/plantpulse", "/etc/plantpulse/plant"} <= mounts
        pdb = pdbs[name]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= (
            dep["spec"]["template"]["metadata"]["labels"].items()
        )
    settings = _settings(docs)
    api = deployments["plantpulse-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    gateway = deployments["plantpulse-gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (port,) = gateway["ports"]
    assert port["containerPort"] == int(settings["PT_GATEWAY_METRICS_PORT"])
    assert settings["PT_GATEWAY_METRICS_HOST"] == settings["PT_API_HOST"] == "0.0.0.0"
    # the consumers serve /healthz (alive) and /readyz (consuming, store answering) too
    for process in ("aggregator", "alerting"):
        c = deployments[f"plantpulse-{process}"]["spec"]["template"]["spec"]["containers"][0]
        (port,) = c["ports"]
        assert port["containerPort"] == int(settings[f"PT_{process.upper()}_METRICS_PORT"])
        assert settings[f"PT_{process.upper()}_METRICS_HOST"] == "0.0.0.0"
        for probe, path in (
            ("startup", "/healthz"),
            ("liveness", "/healthz"),
            ("readiness", "/readyz"),
        ):
            assert c[f"{probe}Probe"]["httpGet"] == {"path": path, "port": port["name"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_aggregators_do_not_outnumber_partitions(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    replicas = _of(docs, "Deployment")["plantpulse-aggregator"]["spec"]["replicas"]
    assert 1 <= replicas <= int(_settings(docs)["PT_KAFKA_PARTITIONS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_least_privilege_and_no_secrets(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "Secret"}
    (sa,) = _of(docs, "ServiceAccount").values()
    assert sa["automountServiceAccountToken"] is False
    (hpa,) = _of(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "plantpulse-api"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_reaches_only_the_ot_network_kafka_and_dns(overlay: str) -> None:
    docs = _render(f"overlays/{overlay}")
    policy = _of(docs, "NetworkPolicy")["plantpulse-gateway"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == (
        "plantpulse-gateway"
    )
    assert "Egress" in policy["spec"]["policyTypes"]
    peers = [peer for rule in policy["spec"]["egress"] for peer in rule["to"]]
    blocks = [p["ipBlock"]["cidr"] for p in peers if "ipBlock" in p]
    assert len(blocks) == 1 and not blocks[0].startswith("0.0.0.0")
    names = {
        p["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
        for p in peers
        if "podSelector" in p
    }
    apps = {p["podSelector"]["matchLabels"].get("k8s-app") for p in peers if "podSelector" in p}
    assert "kafka" in names and "kube-dns" in apps


def test_plant_model_copies_match_the_examples() -> None:
    """kustomize reads no file outside k8s/: the ConfigMap's sources are copies, kept equal."""
    examples = ROOT / "deploy" / "examples"
    plant = K8S / "base" / "plant"
    assert (plant / "plant.yaml").read_bytes() == (examples / "medtech-plant.yaml").read_bytes()
    assert (plant / "rules.yaml").read_bytes() == (examples / "medtech-alerts.yaml").read_bytes()
