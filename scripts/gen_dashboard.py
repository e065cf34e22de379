"""Generate the Grafana dashboard the chart ships: charts/ucoder/dashboards/ucoder.json.

The panels are listed here once; this writes the Grafana dashboard model (schema 39, Grafana 10+).
Every query filters on the `namespace` variable with a regex whose "All" value is `.*`, which also
matches series without a namespace label, so the same queries work on a plain local Prometheus
(scripts/prometheus_local.py) and behind a ServiceMonitor in Kubernetes.

Usage: python scripts/gen_dashboard.py [--check]
  (--check: exit 1 when the committed JSON differs from what this would write)
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_PATH = ROOT / "charts" / "ucoder" / "dashboards" / "ucoder.json"

UID = "ucoder-overview"
TITLE = "UCoder"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24
# Services with a JetStream work queue (each has a `ucoder_<stage>_job_duration_seconds` histogram).
WORK_STAGES = ("problemgen", "testsynth", "sampler", "executor", "clusterer", "trainer")
NS = 'namespace=~"$namespace"'


def sel(metric: str, *matchers: str) -> str:
    """`metric{namespace=~"$namespace",<matchers>}`."""
    return f"{metric}{{{','.join((NS, *matchers))}}}"


def rate(metric: str, *matchers: str, by: str = "") -> str:
    """Per-second rate of a counter summed over replicas (and `by` labels) in Grafana's rate window."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({sel(metric, *matchers)}[$__rate_interval]))"


def agg(op: str, metric: str, *matchers: str) -> str:
    """`op(metric{...})`, e.g. max over the replicas that all report the same shared value."""
    return f"{op}({sel(metric, *matchers)})"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    targets: tuple[Target, ...]
    kind: str = "timeseries"  # or "bargauge" (instant queries, one bar per series)
    width: int = 6
    height: int = 8
    stacked: bool = False
    min_max: tuple[float, float] | None = None
    heatmap_format: bool = False  # cumulative histogram buckets shown as per-bucket counts


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def by_version(metric: str) -> str:
    """The latest value per model version seen in the time range (kept across a restart)."""
    return f"max by (model_version) (last_over_time({sel(metric)}[$__range]))"


ROWS: tuple[Row, ...] = (
    Row(
        "Throughput",
        (
            Panel(
                "Problems / s",
                "Problems the problem generator kept (parsed, compiled, not duplicates) and rejected.",
                "suffix:problems/s",
                (
                    Target(rate("ucoder_problemgen_problems_total", 'verdict="kept"'), "kept"),
                    Target(rate("ucoder_problemgen_problems_total", 'verdict=~"rejected_.+"'), "rejected"),
                ),
            ),
            Panel(
                "Tests / s",
                "Test inputs written by the model, kept (valid, distinct) or rejected.",
                "suffix:tests/s",
                (Target(rate("ucoder_testsynth_tests_total", by="verdict"), "{{verdict}}"),),
            ),
            Panel(
                "Candidates / s",
                "Candidate solutions sampled for problems (the sampler's other completions are problems, "
                "tests and HumanEval answers).",
                "suffix:candidates/s",
                (Target(rate("ucoder_orchestrator_candidates_total"), "candidates"),),
            ),
            Panel(
                "Executions / s",
                "Test executions (candidate x test input) by all executor replicas, by outcome.",
                "suffix:executions/s",
                (Target(rate("ucoder_executor_executions_total", by="kind"), "{{kind}}"),),
                stacked=True,
            ),
        ),
    ),
    Row(
        "Executors and queues",
        (
            Panel(
                "Executor backlog",
                "Execute jobs (one per problem and round) not done: read by the orchestrator (works at "
                "zero replicas), and as the executors see them: waiting and delivered (in flight).",
                "short",
                (
                    Target(
                        agg("max", "ucoder_orchestrator_backlog_messages", 'stage="executor"'), "not done"
                    ),
                    Target(agg("max", "ucoder_executor_queue_backlog"), "waiting"),
                    Target(agg("max", "ucoder_executor_queue_in_flight"), "in flight"),
                ),
                width=8,
            ),
            Panel(
                "Executor replicas",
                "Executor processes exporting metrics (local and Kubernetes), and the executor "
                "Deployment's replicas when kube-state-metrics runs.",
                "short",
                (
                    Target(agg("count", "ucoder_executor_busy_jobs"), "exporting metrics"),
                    Target(
                        agg("sum", "kube_deployment_status_replicas", 'deployment=~".+-executor"'),
                        "deployment replicas",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Backlog by stage",
                "Jobs of each stage's work queue not done yet (waiting plus in flight).",
                "short",
                (Target(agg("max by (stage) ", "ucoder_orchestrator_backlog_messages"), "{{stage}}"),),
                width=8,
            ),
        ),
    ),
    Row(
        "Model and stages",
        (
            Panel(
                "Tokens / s",
                "Tokens the sampler's engine processed per second (all replicas): generated, and prompt "
                "tokens prefilled.",
                "suffix:tokens/s",
                (Target(rate("ucoder_sampler_engine_tokens_total", by="kind"), "{{kind}}"),),
            ),
            Panel(
                "Stage latency",
                "Mean wall time of an iteration's stage (first problem in to last problem out), over "
                "the time range (stages that did not complete in it are left out).",
                "s",
                (
                    Target(
                        "sum by (stage) (increase("
                        + sel("ucoder_orchestrator_stage_duration_seconds_sum")
                        + "[$__range])) / (sum by (stage) (increase("
                        + sel("ucoder_orchestrator_stage_duration_seconds_count")
                        + "[$__range])) > 0)",
                        "{{stage}}",
                    ),
                ),
                kind="bargauge",
            ),
            Panel(
                "Job latency p90",
                "90th percentile of one job's wall time, per stage's service.",
                "s",
                tuple(
                    Target(
                        "histogram_quantile(0.9, sum by (le) (rate("
                        + sel(f"ucoder_{stage}_job_duration_seconds_bucket")
                        + "[$__rate_interval])))",
                        stage,
                    )
                    for stage in WORK_STAGES
                ),
            ),
            Panel(
                "Cluster sizes",
                "Problems by the size of their largest eligible cluster of agreeing candidates, over "
                "the time range.",
                "short",
                (
                    Target(
                        "sum by (le) (increase("
                        + sel("ucoder_clusterer_selected_cluster_size_bucket")
                        + "[$__range]))",
                        "{{le}}",
                    ),
                ),
                kind="bargauge",
                heatmap_format=True,
            ),
        ),
    ),
    Row(
        "Method health",
        (
            Panel(
                "Consensus rate by model version",
                "Share of an iteration's problems whose consensus solution was selected, for the latest "
                "iteration sampling from each model version.",
                "percentunit",
                (Target(by_version("ucoder_orchestrator_consensus_ratio"), "v{{model_version}}"),),
                kind="bargauge",
                min_max=(0, 1),
            ),
            Panel(
                "Lexical entropy by model version",
                "Mean Shannon entropy of the word tokens of an iteration's problem descriptions (the "
                "paper's problems: 3.64 bits); a drop means the problems grow repetitive.",
                "suffix:bits",
                (Target(by_version("ucoder_orchestrator_problem_lexical_entropy"), "v{{model_version}}"),),
                kind="bargauge",
            ),
            Panel(
                "HumanEval pass@1 by model version",
                "pass@1 of each model version as last measured (an iteration measures its input and "
                "output versions).",
                "percentunit",
                (Target(by_version("ucoder_eval_pass_at_1"), "v{{model_version}}"),),
                kind="bargauge",
                min_max=(0, 1),
            ),
            Panel(
                "Training loss",
                "Loss of the trainer's latest optimizer step.",
                "none",
                (Target(agg("max", "ucoder_trainer_loss"), "loss"),),
            ),
        ),
    ),
)


def _target(ref: str, target: Target, instant: bool, heatmap: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": target.expr,
        "instant": instant,
        "legendFormat": target.legend,
        "range": not instant,
        "refId": ref,
    }
    if heatmap:
        out["format"] = "heatmap"
    return out


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.min_max is not None:
        defaults["min"], defaults["max"] = panel.min_max
    options: dict[str, Any]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 20 if panel.stacked else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if panel.stacked else "none"},
        }
        options = {
            "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        options = {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
        }
    instant = panel.kind == "bargauge"
    return {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": options,
        "targets": [
            _target(chr(ord("A") + i), t, instant, panel.heatmap_format) for i, t in enumerate(panel.targets)
        ],
        "title": panel.title,
        "type": panel.kind,
    }


def _panels() -> list[dict[str, Any]]:
    """Rows one under another; a row's panels left to right, wrapping at the grid's 24 columns."""
    out: list[dict[str, Any]] = []
    y = 0
    for row in ROWS:
        out.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "id": len(out) + 1,
                "panels": [],
                "title": row.title,
                "type": "row",
            }
        )
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            out.append(_panel(panel, len(out) + 1, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return out


def _templating() -> dict[str, Any]:
    namespace_query = "label_values(ucoder_orchestrator_running_iterations, namespace)"
    return {
        "list": [
            {
                "current": {},
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "type": "datasource",
            },
            {
                # "All" is `.*`, which also matches series without a namespace label (local stack).
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "datasource": DATASOURCE,
                "definition": namespace_query,
                "hide": 0,
                "includeAll": True,
                "label": "Namespace",
                "multi": True,
                "name": "namespace",
                "options": [],
                "query": {"qryType": 1, "query": namespace_query, "refId": "PrometheusVariableQueryEditor"},
                "refresh": 2,
                "regex": "",
                "sort": 1,
                "type": "query",
            },
        ]
    }


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard model."""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "UCoder: pipeline throughput, executors and queues, stages, and the method's health.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _panels(),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["ucoder"],
        "templating": _templating(),
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def queries(model: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every panel target of a dashboard model."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
    ]


def expand(expr: str, variables: dict[str, str]) -> str:
    """A query with dashboard variables replaced as Grafana does before sending it ($name and ${name})."""
    # Longest names first: $__rate_interval must not be read as $__rate followed by text.
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    return expr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DASHBOARD_PATH.exists() or DASHBOARD_PATH.read_text() != text:
            print(f"{DASHBOARD_PATH} is out of date: run python scripts/gen_dashboard.py", file=sys.stderr)
            return 1
        return 0
    DASHBOARD_PATH.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_PATH.write_text(text)
    print(f"wrote {DASHBOARD_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
