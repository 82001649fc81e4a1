"""k8s/ for platforms: every manifest against the Kubernetes schemas, the KEDA ScaledObject
against the ScaledObject schema, and the Grafana dashboard's queries against taskjet's metrics.

`kubernetes-validate` ships the Kubernetes schemas (offline) but not KEDA's CRD: the
ScaledObject is checked against `tests/schemas/keda-scaledobject.json`, written from the CRD's
openAPIV3Schema and KEDA's nats-jetstream scaler documentation.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from src.config import Settings
from src.engine.core.layout import Layout
from src.engine.core.priority import LANES

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
KEDA = K8S / "keda-scaledobject.yaml"
DASHBOARD = K8S / "grafana-dashboard.json"
KEDA_SCHEMA = json.loads((ROOT / "tests" / "schemas" / "keda-scaledobject.json").read_text())

# The metrics GET /metrics serves (histograms with their series suffixes).
METRICS = {
    "taskjet_queue_depth",
    "taskjet_tasks_in_flight",
    "taskjet_dead_letters",
    "taskjet_tasks_total",
    "taskjet_workers",
    "taskjet_schedule_lag_seconds",
    *(
        f"{histogram}{suffix}"
        for histogram in ("taskjet_task_run_seconds", "taskjet_task_wait_seconds")
        for suffix in ("_bucket", "_sum", "_count")
    ),
}
LABELS = {"task", "queue", "lane", "outcome", "schedule", "le"}
OUTCOMES = {"succeeded", "failed", "retried", "dead", "cancelled"}
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset",
}  # fmt: skip


def _keda() -> dict[str, Any]:
    return yaml.safe_load(KEDA.read_text())


def _kubernetes_manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml" and p != KEDA)


@pytest.mark.parametrize("manifest", _kubernetes_manifests(), ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(manifest: Path) -> None:
    for document in yaml.safe_load_all(manifest.read_text()):
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_validation_catches_a_wrong_field() -> None:
    worker = yaml.safe_load((K8S / "worker-deployment.yaml").read_text())
    worker["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, kubernetes_validate.latest_version(), strict=True)


def test_scaled_object_matches_keda_schema() -> None:
    jsonschema.validate(_keda(), KEDA_SCHEMA)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "triggers", 0, "metadata", "lagThreshold"), 100),  # must be a string
        (("spec", "triggers", 0, "metadata", "natsServerMonitoringEndpoint"), "http://nats:8222"),
        (("spec", "minReplicaCount"), -1),
        (("spec", "maxReplicas"), 3),  # a typo of maxReplicaCount
    ],
)
def test_keda_schema_refuses_a_broken_scaled_object(path: tuple[Any, ...], value: Any) -> None:
    broken = copy.deepcopy(_keda())
    *parents, last = path
    node = broken
    for key in parents:
        node = node[key]
    node[last] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


def test_keda_schema_refuses_a_trigger_without_consumer() -> None:
    broken = copy.deepcopy(_keda())
    del broken["spec"]["triggers"][0]["metadata"]["consumer"]
    with pytest.raises(jsonschema.ValidationError, match="consumer"):
        jsonschema.validate(broken, KEDA_SCHEMA)


def test_scaled_object_scales_the_worker_on_every_lane_of_the_default_queue() -> None:
    spec = _keda()["spec"]
    worker = yaml.safe_load((K8S / "worker-deployment.yaml").read_text())
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert spec["scaleTargetRef"]["kind"] == worker["kind"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    layout = Layout.from_settings(settings)
    triggers = [t["metadata"] for t in spec["triggers"] if t["type"] == "nats-jetstream"]
    assert {t["consumer"] for t in triggers} == {
        layout.consumer(settings.default_queue, lane) for lane in LANES
    }
    assert {t["stream"] for t in triggers} == {layout.stream}


# The dashboard ------------------------------------------------------------------------------
def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return queries


def metric_names(expr: str) -> set[str]:
    """The series a PromQL expression selects: what is left once strings, label matchers,
    ranges, grouping clauses, functions, keywords and numbers are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    names = set(re.findall(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text))
    return names - _PROMQL_WORDS


def _matchers(expr: str) -> list[tuple[str, str]]:
    return re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', expr)


def test_metric_names_finds_the_series_of_an_expression() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (task, le) (rate(taskjet_task_run_seconds_bucket{queue=~"$'
        'queue"}[5m]))) / on (task) group_left max(other_metric) > bool 2'
    )
    assert metric_names(expr) == {"taskjet_task_run_seconds_bucket", "other_metric"}


def test_dashboard_queries_name_only_taskjet_metrics() -> None:
    queries = _queries(_dashboard())
    assert queries
    for expr in queries:
        names = metric_names(expr)
        assert names, expr
        assert names <= METRICS, f"{expr}: {names - METRICS}"


def test_dashboard_filters_only_on_taskjet_labels_and_outcomes() -> None:
    for expr in _queries(_dashboard()):
        for label, value in _matchers(expr):
            assert label in LABELS, expr
            if label == "outcome":
                assert set(value.split("|")) <= OUTCOMES, expr
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= LABELS, expr


def test_dashboard_covers_every_metric() -> None:
    queries = _queries(_dashboard())
    named = set().union(*(metric_names(e) for e in queries))
    histograms = {"taskjet_task_run_seconds_bucket", "taskjet_task_wait_seconds_bucket"}
    assert named >= {m for m in METRICS if not m.endswith(("_sum", "_count"))}
    for histogram in histograms:
        assert any(f"histogram_quantile(0.95, sum by (le) (rate({histogram}" in e for e in queries)


def test_dashboard_panels_are_laid_out_once() -> None:
    panels = _dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
