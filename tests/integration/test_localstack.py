"""The local stack's start/stop mechanics with real processes: nats-server and a stand-in service.

`tests.fixtures.dummy_service` stands in for the seven services (no `services/<name>/__main__`
starts in seconds without a model): it goes through the same `run_service` bootstrap, so
flags, NATS connection, grpc.health.v1, ready file and SIGTERM handling are the real ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ucoder_common.localstack import (
    NATS,
    NATS_MAX_PAYLOAD_BYTES,
    REPO_ROOT,
    StackError,
    StackPaths,
    health,
    pid_alive,
    read_stack,
    start_stack,
    stop_stack,
)

REAL_CLUSTERER = REPO_ROOT / "services" / "clusterer" / "__main__.py"
DUMMY = {"alpha": "tests.fixtures.dummy_service", "beta": "tests.fixtures.dummy_service"}


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackPaths]:
    monkeypatch.setenv("UCODER_HOME", str(tmp_path / "home"))
    stack_paths = StackPaths.default()
    yield stack_paths
    stop_stack(stack_paths, grace_s=5)


def test_home_from_env(paths: StackPaths, tmp_path: Path) -> None:
    assert paths.home == tmp_path / "home"
    assert StackPaths.default({}).home == Path.home() / ".ucoder"


def test_start_status_stop(paths: StackPaths) -> None:
    events: list[tuple[str, str]] = []
    info = start_stack(
        paths,
        services=("alpha", "beta"),
        modules=DUMMY,
        on_status=lambda name, state: events.append((name, state)),
        timeout_s=60,
    )
    assert ("alpha", "serving") in events and ("beta", "serving") in events
    assert events[0] == (NATS, "starting")
    for name in ("alpha", "beta"):
        assert health(info.address(name), 2.0) == "SERVING"
        assert info.alive(name)
        assert paths.ready_file(name).exists()
        ready = json.loads(paths.ready_file(name).read_text())
        assert ready["grpc_port"] == info.services[name].grpc_port
        log = paths.log_file(name).read_text()
        assert '"msg": "serving"' in log  # JSON logs, appended to the service's log file
    assert info.alive(NATS)

    raw = json.loads(paths.stack_file.read_text())
    assert raw["nats_url"] == info.nats_address  # shown without the token, which has its own field
    assert raw["nats_token"] == info.nats_token and info.nats_url.startswith(f"nats://{info.nats_token}@")
    assert raw["grpc_token"] == info.grpc_token and info.grpc_token != info.nats_token
    assert set(raw["services"]) == {"alpha", "beta"}
    assert raw["services"]["alpha"]["pid"] == info.services["alpha"].pid
    assert read_stack(paths) == info
    assert info.orchestrator_address == ""  # this stack has no orchestrator
    assert _server_max_payload(info.nats_url) == NATS_MAX_PAYLOAD_BYTES  # the server read its config

    with pytest.raises(StackError, match="already running"):
        start_stack(paths, services=("alpha",), modules=DUMMY, timeout_s=30)
    assert info.alive("alpha")  # the refused start touched nothing

    pids = [p.pid for p in (info.nats, *info.services.values())]
    stop_stack(paths, grace_s=10)
    assert not any(pid_alive(pid) for pid in pids)
    assert read_stack(paths) is None
    assert health(info.address("alpha"), 1.0) == "UNREACHABLE"
    assert '"msg": "stopped"' in paths.log_file("alpha").read_text()  # graceful SIGTERM path
    stop_stack(paths)  # idempotent


def test_service_exiting_at_startup_is_named(paths: StackPaths) -> None:
    # An unknown UCODER_DUMMY_* setting makes the real config loader refuse to start (exit 2).
    with pytest.raises(StackError) as caught:
        start_stack(
            paths,
            services=("alpha",),
            modules=DUMMY,
            extra_env={"UCODER_DUMMY_BOGUS": "1"},
            timeout_s=60,
        )
    message = str(caught.value)
    assert "alpha exited during start-up with code 2" in message
    assert "UCODER_DUMMY_BOGUS" in message  # the log tail says why
    assert read_stack(paths) is None  # the half-started stack was cleaned up


def test_service_whose_start_up_fails_exits_non_zero(paths: StackPaths) -> None:
    # The ready step raising (e.g. the executor's sandboxes cannot start) is a failure, not a stop.
    with pytest.raises(StackError) as caught:
        start_stack(
            paths, services=("alpha",), modules={"alpha": "tests.fixtures.failing_service"}, timeout_s=60
        )
    message = str(caught.value)
    assert "alpha exited during start-up with code 1" in message
    assert "the backend this service needs is missing" in message


def test_timeout_names_who_is_not_serving(paths: StackPaths) -> None:
    # The stand-in stays NOT_SERVING (like a sampler still loading its model) past the timeout.
    with pytest.raises(StackError, match=r"not serving after 4s: slow"):
        start_stack(
            paths,
            services=("slow",),
            modules={"slow": DUMMY["alpha"]},
            extra_env={"DUMMY_SERVICE_READY_DELAY_S": "300"},
            timeout_s=4,
        )
    assert read_stack(paths) is None  # stopped and cleaned up
    assert '"msg": "stopped"' in paths.log_file("slow").read_text()


def test_missing_module_and_stale_stack_file(paths: StackPaths) -> None:
    with pytest.raises(StackError, match="ghost exited"):
        start_stack(paths, services=("ghost",), modules={"ghost": "tests.fixtures.no_such"}, timeout_s=60)
    # A stack.json whose processes are gone does not block a new start.
    paths.stack_file.write_text(
        json.dumps({"nats": {"pid": 2**22 + 7, "grpc_port": 1}, "services": {}, "started_unix": 0})
    )
    info = start_stack(paths, services=("alpha",), modules=DUMMY, timeout_s=60)
    assert info.alive("alpha")


def test_stop_without_stack(paths: StackPaths) -> None:
    stop_stack(paths)
    assert read_stack(paths) is None


@pytest.mark.skipif(not REAL_CLUSTERER.exists(), reason="services/clusterer/__main__.py not written yet")
def test_real_clusterer(paths: StackPaths) -> None:
    """The same mechanics with a real service (the clusterer is pure logic and starts in seconds)."""
    info = start_stack(paths, services=("clusterer",), timeout_s=120)
    assert health(info.address("clusterer"), 2.0) == "SERVING"
    pid = info.services["clusterer"].pid
    stop_stack(paths)
    assert not pid_alive(pid)
    assert '"msg": "stopped"' in paths.log_file("clusterer").read_text()


def _server_max_payload(url: str) -> int:
    import asyncio

    import nats

    async def read() -> int:
        nc = await nats.connect(url)
        try:
            return int(nc.max_payload)
        finally:
            await nc.close()

    return asyncio.run(read())
