"""Every Grafana dashboard query against a real Prometheus scraping the real local stack.

Prometheus (the Debian package) runs on loopback from the start of the e2e session and scrapes
every service once a second (tests/e2e/conftest.py). pytest runs this module after
test_iteration.py, so it reads what that module's iterations left there; run alone, it first
runs one small iteration itself. Then every query of charts/ucoder/dashboards/ucoder.json goes
through Prometheus's HTTP API with the dashboard variables filled in as Grafana would for a plain
local Prometheus: each one parses and evaluates, and the throughput panels show the work done.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from scripts import gen_dashboard
from scripts.prometheus_local import job_name
from tests.prometheus_server import Prometheus
from ucoder_common.localstack import SERVICES, StackInfo, StackPaths
from ucoder_common.pb import orchestrator_pb2, orchestrator_pb2_grpc

pytestmark = pytest.mark.slow

THROUGHPUT = ("Problems / s", "Tests / s", "Candidates / s", "Executions / s")
# Rate panels that any iteration moves: the throughput ones, and the sampler's tokens.
RATES = (*THROUGHPUT, "Tokens / s")
SMALL = orchestrator_pb2.IterationSpec(
    num_problems=2,
    tests_per_problem=4,
    samples_per_problem=4,
    temperature=0.2,  # the weak default model writes usable tests more often at a low temperature
    max_tokens=96,
    skip_evaluation=True,
)


def completed(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> list[orchestrator_pb2.Iteration]:
    listed = stub.ListIterations(orchestrator_pb2.ListIterationsRequest()).iterations
    return [i for i in listed if i.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED]


def executed(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> bool:
    """Whether some completed iteration on this stack executed candidates."""
    return any(i.executions > 0 for i in completed(stub))


def run_small_iterations(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> None:
    """Up to three small iterations until one executed candidates (the weak model may write no test)."""
    for _ in range(3):
        started = stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=SMALL))
        request = orchestrator_pb2.WatchIterationRequest(iteration_id=started.iteration_id)
        for _event in stub.WatchIteration(request, timeout=1200):
            pass
        if executed(stub):
            return
    pytest.fail("three small iterations executed no candidate")


@pytest.fixture(scope="module")
def prom(prometheus: Prometheus | None, stack: tuple[StackPaths, StackInfo]) -> Prometheus:
    """The session's Prometheus, once it holds the metrics of an iteration that executed candidates."""
    if prometheus is None:
        pytest.fail("prometheus not found: install the Debian prometheus package (make system-deps)")
    with stack[1].channel("orchestrator") as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        if not executed(stub):
            run_small_iterations(stub)
        done = len(completed(stub))
    # The orchestrator counts an iteration as it ends, after every other metric of it was set: once
    # Prometheus has scraped that count, it holds the whole iteration.
    scraped = f'sum(ucoder_orchestrator_iterations_total{{phase="completed"}}) >= {done}'
    deadline = time.monotonic() + 30
    while not prometheus.api("query", query=scraped)["data"]["result"]:
        assert time.monotonic() < deadline, "Prometheus did not scrape the end of the last iteration"
        time.sleep(0.5)
    return prometheus


@pytest.fixture(scope="module")
def variables(prom: Prometheus) -> dict[str, str]:
    """Grafana's variables: every namespace (series here have none), a time range covering the session."""
    session_s = int(time.time() - prom.started_unix) + 60
    return {"namespace": ".*", "__rate_interval": "15s", "__range": f"{session_s}s", "__interval": "5s"}


def panel(title: str) -> dict[str, object]:
    model = json.loads(gen_dashboard.DASHBOARD_PATH.read_text())
    (found,) = [p for p in model["panels"] if p["title"] == title]
    return found  # type: ignore[no-any-return]


def instant(prom: Prometheus, expr: str, variables: dict[str, str]) -> list[dict[str, object]]:
    reply = prom.api("query", query=gen_dashboard.expand(expr, variables))
    assert reply["status"] == "success", (expr, reply)
    return reply["data"]["result"]  # type: ignore[no-any-return]


def values(series: list[dict[str, object]]) -> list[float]:
    """Every sample value of a query result (instant or range), NaN left out."""
    out = []
    for s in series:
        points = s["values"] if "values" in s else [s["value"]]
        out += [float(v) for _, v in points]  # type: ignore[misc, union-attr]
    return [v for v in out if not math.isnan(v)]


def test_prometheus_scrapes_every_service(prom: Prometheus) -> None:
    targets = prom.api("targets")["data"]["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in targets}
    assert health == {job_name(name): "up" for name in SERVICES}


def test_every_dashboard_query_parses_and_evaluates(prom: Prometheus, variables: dict[str, str]) -> None:
    model = json.loads(gen_dashboard.DASHBOARD_PATH.read_text())
    queries = gen_dashboard.queries(model)
    assert len(queries) >= 13
    failed = []
    for title, ref, expr in queries:
        reply = prom.api("query", query=gen_dashboard.expand(expr, variables))
        if reply["status"] != "success":
            failed.append(f"{title} {ref}: {reply.get('errorType')}: {reply.get('error')}")
    assert failed == []


def test_throughput_and_token_panels_show_the_iterations_work(
    prom: Prometheus, variables: dict[str, str]
) -> None:
    """Over the session, each of these panels has a point above zero (a rate, not just a series)."""
    start, end = prom.started_unix, time.time()
    for title in RATES:
        points: list[float] = []
        for target in panel(title)["targets"]:  # type: ignore[attr-defined]
            reply = prom.api(
                "query_range",
                query=gen_dashboard.expand(target["expr"], variables),
                start=f"{start:.3f}",
                end=f"{end:.3f}",
                step="1s" if end - start < 10_000 else "5s",
            )
            assert reply["status"] == "success", (title, reply)
            points += values(reply["data"]["result"])
        assert points, f"{title}: no data"
        assert max(points) > 0, f"{title}: only zeros"


def test_panels_every_iteration_feeds_show_it(prom: Prometheus, variables: dict[str, str]) -> None:
    def query(title: str, ref: str = "A") -> list[dict[str, object]]:
        (target,) = [t for t in panel(title)["targets"] if t["refId"] == ref]  # type: ignore[attr-defined]
        return instant(prom, target["expr"], variables)

    # One executor process exports metrics; no kube-state-metrics here, so no Deployment series.
    assert values(query("Executor replicas")) == [1.0]
    assert query("Executor replicas", "B") == []
    # The orchestrator reads the backlog of every stage's consumer (each service created its own).
    stages = {s["metric"]["stage"] for s in query("Backlog by stage")}  # type: ignore[index]
    assert stages == set(gen_dashboard.WORK_STAGES)
    latency = {s["metric"]["stage"]: values([s]) for s in query("Stage latency")}  # type: ignore[index]
    assert latency["problems"] and latency["problems"][0] > 0
    entropy = values(query("Lexical entropy by model version"))
    assert entropy and all(0 < bits < 20 for bits in entropy)
    consensus = values(query("Consensus rate by model version"))
    assert consensus and all(0 <= share <= 1 for share in consensus)
