"""The Grafana dashboard the chart ships, and the Prometheus config for the local stack.

Queries are parsed by the real promtool (Debian `prometheus`, installed by `make system-deps`);
tests/e2e/test_prometheus.py runs them against a real Prometheus scraping a real iteration.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import gen_dashboard, prometheus_local
from ucoder_common.localstack import ProcessInfo, StackInfo

# Grafana's variables, with the values a plain local Prometheus (no namespace label) needs.
VARIABLES = {"namespace": ".*", "__rate_interval": "15s", "__range": "1h", "__interval": "5s"}
# What the issue asks the dashboard to show, by panel title.
REQUIRED_PANELS = (
    "Problems / s",
    "Tests / s",
    "Candidates / s",
    "Executions / s",
    "Executor backlog",
    "Executor replicas",
    "Tokens / s",
    "Stage latency",
    "Consensus rate by model version",
    "Cluster sizes",
    "Lexical entropy by model version",
    "Training loss",
    "HumanEval pass@1 by model version",
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install the Debian prometheus package (make system-deps)")
    return found


@pytest.fixture(scope="module")
def model() -> dict[str, object]:
    return json.loads(gen_dashboard.DASHBOARD_PATH.read_text())  # type: ignore[no-any-return]


def test_committed_json_is_what_the_generator_writes() -> None:
    assert gen_dashboard.DASHBOARD_PATH.read_text() == gen_dashboard.render(), (
        "charts/ucoder/dashboards/ucoder.json is out of date: run python scripts/gen_dashboard.py"
    )
    assert gen_dashboard.main(["--check"]) == 0


def test_dashboard_identity_and_variables(model: dict[str, object]) -> None:
    assert model["uid"] == "ucoder-overview" and model["title"] == "UCoder"
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    variables = {v["name"]: v for v in model["templating"]["list"]}  # type: ignore[index]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    namespace = variables["namespace"]
    # "All" must match series without a namespace label too (a local Prometheus has none).
    assert namespace["includeAll"] and namespace["allValue"] == ".*"
    assert namespace["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_panels_are_laid_out_on_the_grid_with_units_and_the_datasource_variable(
    model: dict[str, object],
) -> None:
    panels = model["panels"]
    assert isinstance(panels, list)
    assert len({p["id"] for p in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert all('namespace=~"$namespace"' in t["expr"] for t in panel["targets"]), panel["title"]
    titles = [p["title"] for p in panels if p["type"] != "row"]
    assert sorted(set(REQUIRED_PANELS) - set(titles)) == []


def test_every_query_parses(model: dict[str, object], tmp_path: Path) -> None:
    rules = []
    for i, (title, ref, expr) in enumerate(gen_dashboard.queries(model)):
        expanded = gen_dashboard.expand(expr, VARIABLES)
        assert "$" not in expanded, (title, ref, expanded)
        rules.append({"record": f"dashboard_query_{i}", "expr": expanded})
    assert len(rules) >= len(REQUIRED_PANELS)
    # A rules file is JSON-compatible YAML; promtool parses every expression in it.
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(rules)} rules found" in run.stdout


def test_a_malformed_query_is_caught_by_the_parse_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    bad = gen_dashboard.expand(
        'sum(rate(ucoder_x_total{namespace=~"$namespace"}[$__rate_interval])', VARIABLES
    )
    path.write_text(json.dumps({"groups": [{"name": "g", "rules": [{"record": "r", "expr": bad}]}]}))
    run = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode != 0


def test_expand_replaces_longer_variable_names_first() -> None:
    variables = {"__rate": "BAD", "__rate_interval": "15s", "namespace": "ns"}
    assert gen_dashboard.expand('x{a=~"${namespace}"}[$__rate_interval]', variables) == 'x{a=~"ns"}[15s]'


# Run in a fresh interpreter: the test session's own registry also holds whatever other tests
# registered (workers of made-up stages, vLLM's engine metrics), which no service process exports.
_EXPORT_METRICS = """
import json
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
import services.clusterer.app, services.executor.app, services.orchestrator.app
import services.problemgen.app, services.sampler.metrics, services.testsynth.app, services.trainer.app
from scripts import gen_dashboard
from ucoder_common import metrics

for stage in (*gen_dashboard.WORK_STAGES, "orchestrator"):
    metrics.worker_metrics(stage)
# A labelled metric is exported only once it has a child: give each one, so all are linted.
for collector in list(REGISTRY._collector_to_names):
    if isinstance(collector, MetricWrapperBase) and collector._labelnames:
        collector.labels(*["lint"] * len(collector._labelnames))
names = sorted({family.name for family in REGISTRY.collect()})
print(json.dumps({"names": names, "exposition": generate_latest(REGISTRY).decode()}))
"""


@functools.cache
def _service_metrics() -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", _EXPORT_METRICS],
        cwd=gen_dashboard.ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    exported: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return exported


def declared_metric_names() -> set[str]:
    """Names of the metric families the services declare, imported as their processes do."""
    return set(_service_metrics()["names"])


def test_every_metric_a_query_names_is_declared_by_a_service(model: dict[str, object]) -> None:
    declared = declared_metric_names()
    used = set()
    for _title, _ref, expr in gen_dashboard.queries(model):
        for name in re.findall(r"\bucoder_\w+", expr):
            used.add(re.sub(r"_(total|bucket|sum|count)$", "", name))
    assert used and sorted(used - declared) == []


def test_local_prometheus_config_scrapes_every_service_and_is_valid(tmp_path: Path) -> None:
    def proc(name: str, port: int) -> ProcessInfo:
        return ProcessInfo(name=name, pid=1, grpc_port=port - 1, metrics_port=port, log="")

    info = StackInfo(
        home=str(tmp_path),
        started_unix=0.0,
        model="",
        nats=proc("nats", 4222),
        services={"orchestrator": proc("orchestrator", 41001), "executor": proc("executor", 41003)},
    )
    text = prometheus_local.prometheus_config(info, "1s")
    assert "job_name: ucoder-orchestrator" in text and "'127.0.0.1:41001'" in text
    assert "job_name: ucoder-executor" in text and "'127.0.0.1:41003'" in text
    assert "4222" not in text  # nats-server's monitor port does not serve Prometheus metrics
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    run = subprocess.run([promtool(), "check", "config", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_docs_describe_every_metric_and_panel(model: dict[str, object]) -> None:
    docs = (gen_dashboard.ROOT / "docs" / "observability.md").read_text()
    stages = "|".join((*gen_dashboard.WORK_STAGES, "orchestrator"))
    worker = re.compile(rf"ucoder_({stages})_(jobs|job_duration_seconds|queue_backlog|queue_in_flight)$")
    missing = []
    for name in sorted(n for n in declared_metric_names() if n.startswith("ucoder_")):
        # Worker metrics are described once, as `ucoder_<stage>_...`.
        match = worker.match(name)
        documented = f"ucoder_<stage>_{match.group(2)}" if match else name
        if f"`{documented}" not in docs:
            missing.append(name)
    assert missing == []
    titles = [p["title"] for p in model["panels"] if p["type"] != "row"]  # type: ignore[attr-defined, index]
    assert [t for t in titles if f"| {t} |" not in docs] == []


def test_every_declared_metric_passes_promtool_lint() -> None:
    """Naming and help text by Prometheus's own linter (counter suffixes, base units, HELP present)."""
    text = _service_metrics()["exposition"]
    assert "ucoder_orchestrator_consensus_ratio{" in text
    run = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
