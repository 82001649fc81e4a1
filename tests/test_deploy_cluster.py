"""k8s/ for a cluster: the NATS Helm values and the PodDisruptionBudgets agree with the
manifests and settings taskjet ships (a PDB selecting no pod, or NATS with fewer nodes than the
stream replicas, would be accepted by Kubernetes and fail only during an outage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from src.config import load_settings

K8S = Path(__file__).resolve().parent.parent / "k8s"


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _budgets() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents("pdb.yaml")}


def _deployments() -> dict[str, dict[str, Any]]:
    found = {}
    for name in ("server-deployment.yaml", "worker-deployment.yaml"):
        (deployment,) = _documents(name)
        found[deployment["metadata"]["name"]] = deployment
    return found


def _quantity(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * factor
    return int(text)


def test_the_kustomization_applies_the_budgets() -> None:
    (kustomization,) = _documents("kustomization.yaml")
    assert "pdb.yaml" in kustomization["resources"]


@pytest.mark.parametrize("name", ["taskjet-server", "taskjet-worker"])
def test_each_deployment_has_a_budget_that_selects_its_pods_and_allows_a_drain(name: str) -> None:
    budget, deployment = _budgets()[name], _deployments()[name]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["kind"] == "PodDisruptionBudget"
    selector = budget["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items(), "the budget selects the deployment's pods"
    assert selector == deployment["spec"]["selector"]["matchLabels"]
    replicas = deployment["spec"]["replicas"]
    spec = budget["spec"]
    assert ("minAvailable" in spec) != ("maxUnavailable" in spec), "exactly one of the two"
    if "minAvailable" in spec:
        assert 1 <= spec["minAvailable"] < replicas, "one pod up, and a node can still drain"
    else:
        assert 1 <= spec["maxUnavailable"] < replicas


def test_the_budgets_select_nothing_else() -> None:
    selectors = [b["spec"]["selector"]["matchLabels"] for b in _budgets().values()]
    assert len({tuple(sorted(s.items())) for s in selectors}) == len(selectors)


def test_nats_values_give_a_jetstream_cluster_for_the_configured_replicas() -> None:
    (values,) = _documents("helm/nats-values.yaml")
    (configmap,) = _documents("configmap.yaml")
    replicas = int(configmap["data"]["TASKJET_STREAM_REPLICAS"])
    cluster = values["config"]["cluster"]
    assert cluster["enabled"] is True
    assert cluster["replicas"] >= replicas >= 3, "an R3 stream survives one node lost"
    assert cluster["replicas"] % 2 == 1, "an odd number of nodes keeps a quorum"
    assert configmap["data"]["NATS_URL"].startswith("nats://nats.nats.svc:")


def test_nats_values_store_jetstream_on_volumes_big_enough_for_the_task_stream() -> None:
    (values,) = _documents("helm/nats-values.yaml")
    jetstream = values["config"]["jetstream"]
    assert jetstream["enabled"] is True
    store = jetstream["fileStore"]
    assert store["enabled"] is True
    assert store["pvc"]["enabled"] is True
    assert jetstream["memoryStore"]["enabled"] is False, "tasks survive a node restart"
    limit = _quantity(store["maxSize"])
    assert limit <= _quantity(store["pvc"]["size"]), "JetStream's limit fits on its volume"
    (configmap,) = _documents("configmap.yaml")
    data = configmap["data"]
    stream_bytes = int(data.get("TASKJET_STREAM_MAX_BYTES", load_settings().stream_max_bytes))
    assert stream_bytes * 2 <= limit, "the task stream at its limit takes under half the store"


def test_nats_values_request_resources_and_spread_nodes() -> None:
    (values,) = _documents("helm/nats-values.yaml")
    resources = values["container"]["merge"]["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert _quantity(resources["limits"]["memory"]) >= _quantity(resources["requests"]["memory"])
    spread = values["podTemplate"]["topologySpreadConstraints"]
    assert "kubernetes.io/hostname" in spread
    assert values["podDisruptionBudget"]["enabled"] is True
