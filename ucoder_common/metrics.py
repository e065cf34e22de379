"""Prometheus metrics: the /metrics endpoint and the metrics every service shares.

Each metric is declared once, named `ucoder_<service>_<thing>_<unit>`, with help text
and bounded labels. Service-specific metrics are declared in the service's package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram, start_http_server

STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


@dataclass(frozen=True)
class WorkerMetrics:
    jobs: Counter
    seconds: Histogram
    backlog: Gauge
    in_flight: Gauge


@functools.cache
def worker_metrics(stage: str) -> WorkerMetrics:
    """Job counters and latency of a stage's JetStream worker (declared once per stage)."""
    return WorkerMetrics(
        jobs=Counter(
            f"ucoder_{stage}_jobs",
            f"Jobs handled by the {stage} worker, by outcome (ok, retry, rejected, dead_letter, cancelled, "
            "skipped: its iteration had ended).",
            ["outcome"],
        ),
        seconds=Histogram(
            f"ucoder_{stage}_job_duration_seconds",
            f"Wall time of one {stage} job.",
            buckets=STAGE_BUCKETS,
        ),
        backlog=Gauge(
            f"ucoder_{stage}_queue_backlog",
            f"Jobs waiting in the {stage} work queue, not yet delivered to any worker (all replicas).",
        ),
        in_flight=Gauge(
            f"ucoder_{stage}_queue_in_flight",
            f"Jobs of the {stage} work queue delivered and not yet acknowledged (all replicas).",
        ),
    )


def start_metrics_server(host: str, port: int) -> int:
    """Serve /metrics on `port` (0 = any free port); returns the bound port, or -1 when disabled."""
    if port < 0:
        return -1
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
