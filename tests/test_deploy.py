"""Dockerfile and k8s/ manifests: the properties taskjet relies on when deployed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from src.config import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
CONFIGMAP = "taskjet-config"
KEDA = "keda-scaledobject.yaml"


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((K8S / name).read_text())


def _pod(name: str) -> dict[str, Any]:
    return _load(name)["spec"]["template"]["spec"]


def _container(name: str) -> dict[str, Any]:
    (container,) = _pod(name)["containers"]
    return container


def _env(name: str) -> dict[str, str]:
    """Literal values; variables taken from a Secret show as `<secret>`."""
    return {e["name"]: e.get("value", "<secret>") for e in _container(name).get("env", [])}


def _dockerfile() -> list[str]:
    """Dockerfile instructions, comments dropped and continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


SERVER = "server-deployment.yaml"
WORKER = "worker-deployment.yaml"
DEPLOYMENTS = [SERVER, WORKER]


@pytest.mark.parametrize(("manifest", "mode"), [(SERVER, "server"), (WORKER, "worker")])
def test_deployment_sets_run_mode(manifest: str, mode: str) -> None:
    assert _env(manifest)["RUN_MODE"] == mode


@pytest.mark.parametrize("manifest", DEPLOYMENTS)
def test_deployment_takes_env_from_configmap(manifest: str) -> None:
    assert {"configMapRef": {"name": CONFIGMAP}} in _container(manifest)["envFrom"]


def test_configmap_names_only_real_settings() -> None:
    data = _load("configmap.yaml")["data"]
    assert {"NATS_URL", "REDIS_URL"} <= data.keys()
    for key in data:
        if key.startswith(ENV_PREFIX):
            assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, key


@pytest.mark.parametrize("manifest", DEPLOYMENTS)
def test_deployment_env_names_only_real_settings(manifest: str) -> None:
    for key in _env(manifest):
        if key.startswith(ENV_PREFIX):
            assert key[len(ENV_PREFIX) :].lower() in Settings.model_fields, key


@pytest.mark.parametrize("manifest", DEPLOYMENTS)
def test_service_links_are_off(manifest: str) -> None:
    # Service "taskjet" would otherwise inject TASKJET_SERVICE_HOST etc., which Settings rejects.
    assert _pod(manifest)["enableServiceLinks"] is False


def test_configmap_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _load("configmap.yaml")["data"].items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.stream_replicas == 3
    assert settings.env == "production"


def test_worker_environment_loads_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**_load("configmap.yaml")["data"], **_env(WORKER)}.items():
        monkeypatch.setenv(key, value)
    assert load_settings().worker_processes == 2


def test_server_probes_health() -> None:
    container = _container(SERVER)
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe


def test_worker_liveness_checks_the_worker_not_its_servers() -> None:
    probe = _container(WORKER)["livenessProbe"]
    assert probe["exec"]["command"][:4] == ["python", "-m", "src", "alive"]
    assert probe["timeoutSeconds"] < probe["periodSeconds"]
    folder = _env(WORKER)["TASKJET_WORKER_HEARTBEAT_DIR"]
    mounts = [m["mountPath"] for m in _container(WORKER)["volumeMounts"]]
    assert any(folder.startswith(m.rstrip("/") + "/") for m in mounts), "a writable folder"


def test_server_serves_metrics_on_their_own_port() -> None:
    container = _container(SERVER)
    port = int(_env(SERVER)["TASKJET_METRICS_PORT"])
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    annotations = _load(SERVER)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_worker_has_time_to_finish_tasks() -> None:
    assert _pod(WORKER)["terminationGracePeriodSeconds"] >= 60


def test_worker_grace_ends_before_kubernetes_kills_the_pod() -> None:
    """Tasks still running when their grace period ends are handed back; that takes the worker
    a few seconds, which must fit before the pod's SIGKILL. The rest of the pod's grace period
    is the tasks' own."""
    env = {**_load("configmap.yaml")["data"], **_env(WORKER)}
    default = Settings.model_fields["shutdown_grace_s"].default
    grace_s = float(env.get(f"{ENV_PREFIX}SHUTDOWN_GRACE_S", default))
    margin_s = _pod(WORKER)["terminationGracePeriodSeconds"] - grace_s
    assert 10 <= margin_s <= 20


@pytest.mark.parametrize("manifest", DEPLOYMENTS)
def test_container_runs_as_non_root(manifest: str) -> None:
    context = _container(manifest)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] != 0
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in _container(manifest)["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod(manifest)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_service_selects_only_server_pods() -> None:
    service = _load("service.yaml")["spec"]
    server_labels = _load(SERVER)["spec"]["template"]["metadata"]["labels"]
    worker_labels = _load(WORKER)["spec"]["template"]["metadata"]["labels"]
    selector = service["selector"].items()
    assert selector <= server_labels.items()
    assert not selector <= worker_labels.items()
    assert service["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


def test_kustomization_lists_every_manifest() -> None:
    # The KEDA ScaledObject is applied on its own: it needs KEDA's CRDs in the cluster.
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", KEDA}
    assert set(_load("kustomization.yaml")["resources"]) == manifests


def test_dockerfile_is_multi_stage() -> None:
    assert len([i for i in _dockerfile() if i.upper().startswith("FROM ")]) >= 2


def test_dockerfile_runs_as_non_root() -> None:
    users = [i.split()[1] for i in _dockerfile() if i.upper().startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_entrypoint_is_the_script() -> None:
    (entrypoint,) = [i for i in _dockerfile() if i.upper().startswith("ENTRYPOINT ")]
    assert entrypoint == 'ENTRYPOINT ["/app/docker-entrypoint.sh"]'


def test_server_takes_api_keys_from_a_secret() -> None:
    env = {e["name"]: e for e in _container("server-deployment.yaml").get("env", [])}
    ref = env["TASKJET_API_KEYS"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "taskjet-api-keys", "key": "keys"}
