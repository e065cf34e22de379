"""What the e2e modules share: one local stack for the session, and a real Prometheus scraping it.

The stack (vLLM among it) takes minutes to start, so every e2e module uses the same one. Prometheus
(the Debian package) scrapes every service once a second from the moment the stack serves, so
test_prometheus.py can query the metrics of every iteration the e2e tests ran.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.prometheus_local import prometheus_config
from tests.prometheus_server import Prometheus
from ucoder_common.localstack import StackInfo, StackPaths, start_stack, stop_stack

SCRAPE_INTERVAL = "1s"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's UCODER_CACHE_DIR, empty when the stack starts: the sampler and the trainer
    start at the same moment and both build the default model into it, as on a newcomer's first
    `make run` (issue 15: that race once failed the first run). One builds under the lock, the
    other waits for it (test_first_start.py checks what they left)."""
    return tmp_path_factory.mktemp("ucoder-cache")


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path
) -> Iterator[tuple[StackPaths, StackInfo]]:
    paths = StackPaths(tmp_path_factory.mktemp("ucoder-home"))
    cache = model_cache
    # The e2e iterations are tiny (a few problems, 2-4 samples of the weak default model): at the
    # clusterer's calibrated confidence threshold (0.95) they would select, and so train, nothing.
    # Abstention is covered by the clusterer's tests and bench/consensus.py. The mutation fill
    # (off by default) is turned on so that test_iteration checks it on the real path.
    info = start_stack(
        paths,
        extra_env={
            "UCODER_CACHE_DIR": str(cache),
            "UCODER_CLUSTERER_DEFAULT_MIN_CONFIDENCE": "0",
            "UCODER_TESTSYNTH_MUTATION_FILL": "1",
        },
        timeout_s=900,
    )
    try:
        yield paths, info
    finally:
        stop_stack(paths)


# Autouse: scraping must run while the other e2e modules' iterations run, before this one asks.
@pytest.fixture(scope="session", autouse=True)
def prometheus(
    stack: tuple[StackPaths, StackInfo], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus | None]:
    binary = shutil.which("prometheus")
    if binary is None:
        yield None  # test_prometheus.py fails saying so; the other e2e tests do not need it
        return
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(prometheus_config(stack[1], SCRAPE_INTERVAL))
    server = Prometheus(binary, config, home / "data", home / "prometheus.log")
    try:
        yield server
    finally:
        server.stop()
