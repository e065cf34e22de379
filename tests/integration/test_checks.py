"""`python -m ucoder_common.checks`, what the chart's `helm test` pods run, against a real local
stack: NATS, the executor (gVisor) and the clusterer as processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ucoder_common import checks
from ucoder_common.localstack import StackInfo, StackPaths, free_ports, start_stack, stop_stack
from ucoder_common.pb import common_pb2, executor_pb2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    paths = StackPaths(tmp_path_factory.mktemp("checks-home"))
    info = start_stack(paths, services=("executor", "clusterer"), timeout_s=120)
    try:
        yield info
    finally:
        stop_stack(paths)


def run_checks(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UCODER_NATS_")} | env
    return subprocess.run(
        [sys.executable, "-m", "ucoder_common.checks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )


def test_health_passes_when_every_service_serves(stack: StackInfo) -> None:
    proc = run_checks("health", stack.address("executor"), stack.address("clusterer"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        f"ok   health {stack.address('executor')}: SERVING",
        f"ok   health {stack.address('clusterer')}: SERVING",
    ]


def test_health_fails_naming_the_service_that_does_not_answer(stack: StackInfo) -> None:
    (dead_port,) = free_ports(1)
    dead = f"127.0.0.1:{dead_port}"
    proc = run_checks("health", "--timeout", "1", stack.address("executor"), dead)
    assert proc.returncode == 1
    assert f"FAIL health {dead}: UNREACHABLE" in proc.stdout
    assert f"ok   health {stack.address('executor')}: SERVING" in proc.stdout


def test_nats_round_trip_runs_a_program_on_the_executor(stack: StackInfo) -> None:
    proc = run_checks("nats-roundtrip", "--nats-url", stack.nats_url, "--timeout", "60")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok   nats round trip to the executor: add(1, 2) == 3 on backend")


def test_nats_round_trip_presents_the_credential_from_the_environment(stack: StackInfo) -> None:
    # As in the helm-test pod: the URL carries no credential, the token comes from a Secret as
    # UCODER_NATS_TOKEN (the services' own setting).
    proc = run_checks(
        "nats-roundtrip",
        "--nats-url",
        stack.nats_address,
        "--timeout",
        "60",
        UCODER_NATS_TOKEN=stack.nats_token,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    refused = run_checks("nats-roundtrip", "--nats-url", stack.nats_address, "--timeout", "5")
    assert refused.returncode == 1
    assert refused.stdout.startswith("FAIL nats round trip to the executor: cannot connect")
    assert "authorization" in refused.stdout.lower(), refused.stdout
    bad = run_checks("nats-roundtrip", "--nats-url", stack.nats_address, UCODER_NATS_PASSWORD="p")
    assert bad.returncode == 2 and bad.stdout == "FAIL settings: nats_password: needs nats_user\n"


def test_nats_round_trip_fails_without_an_executor(tmp_path_factory: pytest.TempPathFactory) -> None:
    paths = StackPaths(tmp_path_factory.mktemp("checks-no-executor"))
    info = start_stack(paths, services=("clusterer",), timeout_s=120)
    try:
        proc = run_checks("nats-roundtrip", "--nats-url", info.nats_url, "--timeout", "3")
    finally:
        stop_stack(paths)
    assert proc.returncode == 1
    assert "FAIL nats round trip to the executor: no executor answers" in proc.stdout


def test_nats_round_trip_fails_readably_when_nats_is_down() -> None:
    (port,) = free_ports(1)
    proc = run_checks("nats-roundtrip", "--nats-url", f"nats://127.0.0.1:{port}", "--timeout", "2")
    assert proc.returncode == 1
    assert proc.stdout.startswith(
        f"FAIL nats round trip to the executor: cannot connect to nats://127.0.0.1:{port}"
    )
    assert "Traceback" not in proc.stderr


def _reply(kind: int, passed: bool, error: str = "") -> executor_pb2.ExecuteResponse:
    outcome = common_pb2.TestOutcome(kind=kind, passed=passed, value_repr="4", exception_type="")
    return executor_pb2.ExecuteResponse(
        error=error,
        backend="gvisor",
        results=[common_pb2.CandidateResult(candidate_id="c0", outcomes=[outcome])],
    )


def test_judge_roundtrip_accepts_only_the_right_answer() -> None:
    assert checks.judge_roundtrip(_reply(common_pb2.OUTCOME_KIND_RETURNED, True)).ok
    wrong = checks.judge_roundtrip(_reply(common_pb2.OUTCOME_KIND_RETURNED, False))
    assert not wrong.ok and "OUTCOME_KIND_RETURNED 4" in wrong.detail
    refused = checks.judge_roundtrip(_reply(common_pb2.OUTCOME_KIND_RETURNED, True, error="entry_point: bad"))
    assert not refused.ok and "executor refused: entry_point: bad" in refused.detail
    assert not checks.judge_roundtrip(executor_pb2.ExecuteResponse()).ok
