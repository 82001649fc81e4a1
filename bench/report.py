"""Results as JSON, a markdown report and a PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.systems import REFERENCES

BASE = "taskjet"
FLOOR = "taskiq-nats+mark"  # the latency floor of a record written before each run
# Latency cells of systems whose throughput is below this multiple of the offered rate get a ‡.
NEAR_CAPACITY = 1.25


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or math.isnan(value) or math.isnan(base) or not base:
        return ""
    return f" ({value / base:.2f}x)"


def _cells(results: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    return {(c["workload"], c["workers"], c["system"]): c for c in results["cells"]}


def _rows(results: dict[str, Any]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for c in results["cells"]:
        key = (c["workload"], c["workers"])
        if key not in seen:
            seen.append(key)
    order = results["meta"]["options"]["workloads"]
    return sorted(seen, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))


def _figure_table(
    results: dict[str, Any],
    metric: Any,
    digits: int = 0,
    extra_cols: tuple[str, ...] = (),
    mark: Any = None,
) -> list[str]:
    systems = list(results["systems"])
    cells = _cells(results)
    lines = [
        "| workload | workers | " + " | ".join(extra_cols + tuple(systems)) + " |",
        "|---|---:|" + "---:|" * (len(extra_cols) + len(systems)),
    ]
    for workload, workers in _rows(results):
        base_cell = cells.get((workload, workers, BASE))
        for label, get in metric if isinstance(metric, list) else [("", metric)]:
            base = get(base_cell) if base_cell else None
            row = [workload, str(workers), *([label] if extra_cols else [])]
            any_value = False
            for system in systems:
                cell = cells.get((workload, workers, system))
                value = get(cell) if cell else None
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    any_value = True
                text = _num(value, digits)
                if system != BASE:
                    text += _ratio(value, base)
                if cell and cell["errors"]:
                    text += " ⚠"
                if cell and mark is not None and value is not None and mark(cell):
                    text += " ‡"
                row.append(text)
            if any_value:
                lines.append("| " + " | ".join(row) + " |")
    return lines


def _latency(p: str) -> Any:
    def get(cell: dict[str, Any]) -> float | None:
        lat = cell.get("latency")
        return None if not lat else lat[p]

    return get


def _tracing_line(meta: dict[str, Any]) -> list[str]:
    if not meta["options"].get("tracing"):
        return []
    sent = meta.get("tracing", {})
    return [
        "- **Tracing on**: taskjet exported every span over OTLP/HTTP to a local sink "
        f"({sent.get('requests', 0):,} requests, {sent.get('bytes', 0) / 1e6:.1f} MB)."
    ]


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    opts = meta["options"]
    m = meta["machine"]
    out = [
        f"# taskjet benchmark, {meta['started']}",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}",
        f"- Command: `{meta['command']}` ({meta.get('duration_s', 0):.0f} s)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Each figure is the median of {opts['repeat']} run(s); runs of up to "
        f"{opts['tasks']:,} tasks (fewer for slow cells, ≈{opts['run_seconds']} s per run); "
        "ratios are to taskjet in the same run. ⚠ marks a cell with errors (see the JSON).",
        *_tracing_line(meta),
        "",
        "Systems:",
        "",
        *[f"- **{name}**: {notes}" for name, notes in results["systems"].items()],
        "",
        "## End-to-end throughput (tasks/s: enqueue N → all N results readable; higher is better)",
        "",
        *_figure_table(results, lambda c: c["throughput_median"]),
        "",
        "## Enqueue rate (tasks/s from one process, during the same runs; higher is better)",
        "",
        *_figure_table(results, lambda c: c["enqueue_median"]),
        "",
        f"## Latency enqueue → result readable at {opts['latency_rate']:,.0f} tasks/s "
        "(ms; lower is better)",
        "",
        *_figure_table(
            results,
            [(p, _latency(p)) for p in ("p50", "p95", "p99")],
            digits=2,
            extra_cols=("pct",),
            mark=lambda c: c["throughput_median"] < NEAR_CAPACITY * opts["latency_rate"],
        ),
        "",
        f"‡ near or over capacity: the system's end-to-end throughput on this workload is below "
        f"{NEAR_CAPACITY} x {opts['latency_rate']:,.0f} tasks/s, so a queue builds up during the "
        "run and the latency includes the wait in it.",
        "",
        "## Worker CPU per task (µs of CPU time over all the worker's processes, during the "
        "throughput runs; lower is better)",
        "",
        *_figure_table(results, lambda c: c.get("cpu_us_median")),
        "",
        "## Worker peak RSS (MB, summed over the worker's processes; lower is better)",
        "",
        *_figure_table(results, lambda c: c["peak_rss_mb"], digits=1),
        "",
    ]
    out += _idle_table(results)
    out += _extras(results)
    out += _goals(results)
    if results.get("failures"):
        out += ["## Not measured", "", *[f"- {f}" for f in results["failures"]], ""]
    return "\n".join(out) + "\n"


def _idle_table(results: dict[str, Any]) -> list[str]:
    if not results["idle"]:
        return []
    systems = list(results["systems"])
    idle = {(i["workers"], i["system"]): i for i in results["idle"]}
    workers = sorted({i["workers"] for i in results["idle"]})
    lines = [
        "## Worker idle RSS (MB: all processes / each process, manager first)",
        "",
        "| workers | " + " | ".join(systems) + " |",
        "|---:|" + "---:|" * len(systems),
    ]
    for w in workers:
        row = [str(w)]
        for s in systems:
            entry = idle.get((w, s))
            if entry is None:
                row.append("—")
                continue
            each = " + ".join(f"{mb:.0f}" for mb in entry["per_process_mb"])
            row.append(f"{entry['rss_mb']:.1f} ({each})")
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _extras(results: dict[str, Any]) -> list[str]:
    extras = results.get("extras") or {}
    if not extras:
        return []
    lines = ["## taskjet alone", "", "| figure | value |", "|---|---:|"]
    for label, fig in extras.get("enqueue", {}).items():
        lines.append(
            f"| enqueue from Python: {label} ({fig['tasks']:,} tasks) | "
            f"{_num(fig['median'])} tasks/s |"
        )
    for label, fig in (extras.get("peer_enqueue") or {}).items():
        lines.append(
            f"| for comparison, taskiq-nats: {label} ({fig['tasks']:,} tasks) | "
            f"{_num(fig['median'])} tasks/s |"
        )
    for fig in extras.get("http", []):
        if "median" in fig:
            lines.append(
                f"| HTTP `POST {fig['path']}`, one uvicorn process, {fig['connections']} "
                f"connections | {_num(fig['median'])} requests/s |"
            )
        else:
            lines.append(f"| HTTP `POST {fig['path']}` | skipped: {fig['probe_status']} |")
    for entry in results["idle"]:
        if entry["system"] == BASE:
            workers = entry["per_process_mb"][1:] or entry["per_process_mb"]
            lines.append(
                f"| worker idle RSS, {entry['workers']} worker process(es): each worker process | "
                f"{' / '.join(f'{mb:.1f}' for mb in workers)} MB |"
            )
    return [*lines, ""]


def _goals(results: dict[str, Any]) -> list[str]:
    """taskjet's performance goals, each checked against this run's own figures."""
    cells = _cells(results)
    systems = list(results["systems"])
    peers = [s for s in systems if s != BASE and s not in REFERENCES]
    rows: list[tuple[str, str, bool | None]] = []

    def cell(system: str, workload: str = "noop", workers: int = 1) -> dict[str, Any] | None:
        return cells.get((workload, workers, system))

    base = cell(BASE)
    if base is None:
        return []
    mine = base["throughput_median"]
    for peer, goal in (("taskiq-nats", 2.5), ("celery", 5.0)):
        other = cell(peer)
        if other and other["throughput_median"] > 0:
            ratio = mine / other["throughput_median"]
            rows.append(
                (
                    f"1. no-op end to end, 1 worker process: ≥ {goal}x {peer}",
                    f"{ratio:.2f}x",
                    ratio >= goal,
                )
            )
    rows += _no_cell_behind(results, cells, peers)
    rows += _latency_not_behind(cells, "taskiq-nats")
    rows += _latency_floor(cells, "taskiq-nats")
    extras = results.get("extras") or {}
    enqueue = extras.get("enqueue", {})
    many = enqueue.get("kiq_many, batches of 1000")
    gathered = enqueue.get("kiq, 1000 in flight (asyncio.gather)")
    theirs = (extras.get("peer_enqueue") or {}).get("kiq, 1000 in flight (asyncio.gather)")
    if gathered and theirs:
        rows.append(
            (
                "3. `kiq`, 1000 in flight: ≥ taskiq-nats' `kiq`, 1000 in flight",
                f"{gathered['median']:,.0f}/s vs {theirs['median']:,.0f}/s",
                gathered["median"] >= theirs["median"],
            )
        )
    if many:
        rows.append(
            ("3. `kiq_many` ≥ 20,000 tasks/s", f"{many['median']:,.0f}/s", many["median"] >= 20_000)
        )
    for fig in extras.get("http", []):
        if fig.get("path") == "/api/v1/tasks":
            value = f"{fig['median']:,.0f}/s" if "median" in fig else "not measured"
            rows.append(
                (
                    "3. `POST /api/v1/tasks`, one server process: ≥ 2,000 requests/s",
                    value,
                    fig["median"] >= 2000 if "median" in fig else None,
                )
            )
    cpu = base.get("cpu_us_median")
    if cpu is not None and not math.isnan(cpu):
        rows.append(
            (
                "4. worker CPU per no-op task (1 worker process, all its processes): ≤ 200 µs",
                f"{cpu:,.0f} µs",
                cpu <= 200,
            )
        )
    idle = [i for i in results["idle"] if i["system"] == BASE and i["workers"] == 1]
    if idle:
        whole = idle[0]["rss_mb"]
        rows.append(
            (
                "4, 6. idle RSS of a one-process worker, manager included: ≤ 80 MB",
                f"{whole:.1f} MB",
                whole <= 80,
            )
        )
    mark = {True: "met", False: "**not met**", None: "—"}
    return [
        "## Performance goals, as measured in this run",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        *[f"| {goal} | {value} | {mark[ok]} |" for goal, value, ok in rows],
        "",
    ]


def _no_cell_behind(
    results: dict[str, Any], cells: dict[tuple[str, int, str], dict[str, Any]], peers: list[str]
) -> list[tuple[str, str, bool | None]]:
    """Goal 2, throughput: every workload and worker count at least 1.0x every peer."""
    behind: list[str] = []
    count = 0
    for workload, workers in _rows(results):
        base = cells.get((workload, workers, BASE))
        if base is None:
            continue
        count += 1
        ahead_of_me = [
            f"{peer} {other['throughput_median'] / base['throughput_median']:.2f}x"
            for peer in peers
            if (other := cells.get((workload, workers, peer)))
            and other["throughput_median"] > base["throughput_median"]
        ]
        if ahead_of_me:
            behind.append(f"{workload} w{workers} ({', '.join(ahead_of_me)})")
    if not count:
        return []
    value = f"{count - len(behind)} of {count}" + (
        f"; behind: {'; '.join(behind)}" if behind else ""
    )
    return [("2. throughput cells at least 1.0x every peer", value, not behind)]


def _latency_above(
    cells: dict[tuple[str, int, str], dict[str, Any]], system: str, peer: str
) -> tuple[int, list[str]]:
    """Latency p50 and p99 at the latency rate (no-op and 1 ms I/O, 1 and 2 workers): how many
    were compared, and those where `system`'s is higher than `peer`'s."""
    above: list[str] = []
    count = 0
    for workload in ("noop", "io1ms"):
        for workers in (1, 2):
            mine = (cells.get((workload, workers, system)) or {}).get("latency")
            theirs = (cells.get((workload, workers, peer)) or {}).get("latency")
            if not mine or not theirs:
                continue
            for p in ("p50", "p99"):
                count += 1
                if mine[p] > theirs[p]:
                    above.append(f"{workload} w{workers} {p} {mine[p]:.2f} vs {theirs[p]:.2f} ms")
    return count, above


def _latency_not_behind(
    cells: dict[tuple[str, int, str], dict[str, Any]], peer: str
) -> list[tuple[str, str, bool | None]]:
    """Goal 2, latency: p50 and p99 no higher than the peer's."""
    count, behind = _latency_above(cells, BASE, peer)
    if not count:
        return []
    value = f"{count - len(behind)} of {count}" + (
        f"; behind: {'; '.join(behind)}" if behind else ""
    )
    return [(f"2. latency p50 and p99 no higher than {peer}", value, not behind)]


def _latency_floor(
    cells: dict[tuple[str, int, str], dict[str, Any]], peer: str
) -> list[tuple[str, str, bool | None]]:
    """Goal 2's latency against its floor: `FLOOR` is the peer plus one awaited Redis write
    before each run and nothing else. Where the floor is higher than the peer, so is any system
    that records a task's start before running it (as taskjet must: a task cancelled while
    queued, already ended or dispatched anew is not run)."""
    count, above = _latency_above(cells, FLOOR, peer)
    if not count:
        return []
    value = f"higher in {len(above)} of {count}" + (f": {'; '.join(above)}" if above else "")
    goal = f"2. (reference) {FLOOR}, {peer} + one Redis write before each run, against {peer}"
    return [(goal, value, None)]


def plot(results: dict[str, Any], path: Path) -> bool:
    """A 2x2 PNG; False (with nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    systems = list(results["systems"])
    cells = _cells(results)
    rows = _rows(results)
    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    width = 0.8 / max(1, len(systems))

    def bars(ax: Any, get: Any, title: str, log: bool, keys: list[tuple[str, int]]) -> None:
        for i, system in enumerate(systems):
            values = []
            for workload, workers in keys:
                cell = cells.get((workload, workers, system))
                value = get(cell) if cell else None
                values.append(value if value is not None and not math.isnan(value) else 0)
            xs = [x + (i - (len(systems) - 1) / 2) * width for x in range(len(keys))]
            ax.bar(xs, values, width, label=system)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([f"{w}\n{n} worker{'s' * (n > 1)}" for w, n in keys], fontsize=8)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)

    bars(
        axes[0][0],
        lambda c: c["throughput_median"],
        "end-to-end throughput (tasks/s, log)",
        True,
        rows,
    )
    bars(axes[0][1], lambda c: c["enqueue_median"], "enqueue rate (tasks/s, log)", True, rows)
    lat_rows = [
        r for r in rows if any((cells.get((r[0], r[1], s)) or {}).get("latency") for s in systems)
    ]
    if lat_rows:
        bars(
            axes[1][0],
            _latency("p50"),
            "latency p50 (bars) and p99 (dots), ms, log",
            True,
            lat_rows,
        )
        for i, system in enumerate(systems):
            for x, (workload, workers) in enumerate(lat_rows):
                cell = cells.get((workload, workers, system))
                p99 = _latency("p99")(cell) if cell else None
                if p99 is not None and not math.isnan(p99):
                    axes[1][0].plot(x + (i - (len(systems) - 1) / 2) * width, p99, "k.")
    else:
        axes[1][0].set_visible(False)
    bars(axes[1][1], lambda c: c["peak_rss_mb"], "worker peak RSS (MB)", False, rows)
    axes[0][0].legend(fontsize=8)
    meta = results["meta"]
    fig.suptitle(
        f"taskjet benchmark {meta['started']} — {meta['machine']['cpu']}, "
        f"{meta['machine']['cores']} cores",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out: Path, name: str) -> tuple[str, list[Path]]:
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    paths = [out / f"{name}.md", out / f"{name}.json"]
    paths[0].write_text(text)
    paths[1].write_text(json.dumps(results, indent=1, default=str) + "\n")
    png = out / f"{name}.png"
    if plot(results, png):
        paths.append(png)
    else:
        print("notice: matplotlib is not installed, no plot written (pip install -e '.[bench]')")
    return text, paths
