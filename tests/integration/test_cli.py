"""`ucoder` as a user runs it: a subprocess, its exit status, stdout and stderr.

The orchestrator-facing tests talk to `StandInOrchestrator`, a gRPC server in this process
that answers with scripted Iterations: a stand-in for the orchestrator's API contract
(orchestrator.proto), used to check the CLI's side (progress, result table, exit codes,
error lines) in seconds. The local-stack tests start real processes
(nats-server and `tests.fixtures.dummy_service`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from ucoder_common.localstack import REPO_ROOT, StackPaths, read_stack, start_stack, stop_stack
from ucoder_common.pb import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc

pb = orchestrator_pb2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    yield path
    stop_stack(StackPaths(path), grace_s=5)


def ucoder(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UCODER_ORCHESTRATOR", "UCODER_DEBUG")}
    env.update(UCODER_HOME=str(home), COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ucoder: ")
    return lines[0]


# ---------------------------------------------------------------------------- no stack


def test_status_without_stack(home: Path) -> None:
    result = ucoder(home, "status")
    assert result.returncode == 0
    assert "no stack running" in result.stdout


def test_down_without_stack(home: Path) -> None:
    result = ucoder(home, "down")
    assert result.returncode == 0
    assert "no stack running" in result.stdout


def test_iterate_without_stack(home: Path) -> None:
    result = ucoder(home, "iterate", "--problems", "2")
    assert result.returncode == 2
    assert "ucoder up" in one_line_error(result)


def test_get_against_closed_port(home: Path) -> None:
    result = ucoder(home, "get", "it-1", "--orchestrator", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "unavailable" in line and "ucoder up" in line


def test_bad_flag_value_is_an_argparse_error(home: Path) -> None:
    result = ucoder(home, "iterate", "--problems", "abc")
    assert result.returncode == 2
    assert "invalid int value: 'abc'" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- local stack


def test_status_and_down_with_a_stack(home: Path) -> None:
    paths = StackPaths(home)
    info = start_stack(
        paths, services=("alpha",), modules={"alpha": "tests.fixtures.dummy_service"}, timeout_s=60
    )
    result = ucoder(home, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alpha" in result.stdout and "nats" in result.stdout and "SERVING" in result.stdout
    assert str(info.services["alpha"].pid) in result.stdout

    # No orchestrator in this stack: commands that need one say so.
    result = ucoder(home, "list")
    assert result.returncode != 0
    one_line_error(result)

    result = ucoder(home, "down")
    assert result.returncode == 0 and "stopped" in result.stdout
    assert read_stack(paths) is None
    assert not info.alive("alpha") and not info.alive("nats")


def test_up_with_a_service_that_cannot_start(home: Path) -> None:
    result = ucoder(home, "up", "--services", "nosuchservice", "--timeout", "60")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.split("--- last lines")[0]
    assert result.stderr.startswith("ucoder: nosuchservice exited during start-up")
    assert read_stack(StackPaths(home)) is None  # nothing left running


@pytest.mark.skipif(
    not (REPO_ROOT / "services" / "clusterer" / "__main__.py").exists(), reason="no clusterer service yet"
)
def test_up_status_down_with_a_real_service(home: Path) -> None:
    result = ucoder(home, "up", "--services", "clusterer", "--timeout", "120", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "clusterer: serving" in result.stdout and "stack up" in result.stdout
    again = ucoder(home, "up", "--services", "clusterer")
    assert again.returncode == 1 and "already running" in one_line_error(again)
    status = ucoder(home, "status")
    assert status.returncode == 0 and "clusterer" in status.stdout and "SERVING" in status.stdout
    assert ucoder(home, "down").returncode == 0
    assert read_stack(StackPaths(home)) is None


# ---------------------------------------------------------------------------- orchestrator API


class StandInOrchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):  # type: ignore[misc]
    """Scripted answers following orchestrator.proto (see the module docstring)."""

    def __init__(self) -> None:
        self.started: list[pb.IterationSpec] = []
        self.final_phase = pb.ITERATION_PHASE_COMPLETED

    def _iteration(self, phase: int) -> pb.Iteration:
        t0 = 1_700_000_000_000
        it = pb.Iteration(
            iteration_id="it-7",
            phase=phase,
            stage=pb.STAGE_TRAINING,
            problems_generated=5,
            problems_rejected=1,
            tests_kept=123,
            candidates=64,
            executions=7_872,
            selected=3,
            created_unix_ms=t0,
            finished_unix_ms=t0 + 90_000,
            stages=[
                pb.StageStats(
                    stage=pb.STAGE_PROBLEMS, done=4, total=5, started_unix_ms=t0, finished_unix_ms=t0 + 2_500
                )
            ],
        )
        if phase == pb.ITERATION_PHASE_COMPLETED:
            it.model_version_out.CopyFrom(common_pb2.ModelVersion(version=1, adapter_object="adapters/it-7"))
        if phase == pb.ITERATION_PHASE_FAILED:
            it.error = "trainer: no examples selected"
        return it

    def StartIteration(
        self, request: pb.StartIterationRequest, context: grpc.ServicerContext
    ) -> pb.Iteration:
        if request.spec.num_problems < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "num_problems: must be >= 0, got -1")
        self.started.append(request.spec)
        it = self._iteration(pb.ITERATION_PHASE_RUNNING)
        it.spec.CopyFrom(request.spec)
        return it

    def GetIteration(self, request: pb.GetIterationRequest, context: grpc.ServicerContext) -> pb.Iteration:
        if request.iteration_id != "it-7":
            context.abort(grpc.StatusCode.NOT_FOUND, f"iteration {request.iteration_id}: not found")
        return self._iteration(self.final_phase)

    def ListIterations(self, request: pb.ListIterationsRequest, context: grpc.ServicerContext) -> object:
        return pb.ListIterationsResponse(iterations=[self._iteration(self.final_phase)])

    def WatchIteration(
        self, request: pb.WatchIterationRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ProgressEvent]:
        running = pb.ITERATION_PHASE_RUNNING
        for stage in (pb.STAGE_PROBLEMS, pb.STAGE_TESTS, pb.STAGE_SAMPLING):
            yield pb.ProgressEvent(iteration_id="it-7", stage=stage, done=2, total=4, phase=running)
            yield pb.ProgressEvent(iteration_id="it-7", stage=stage, done=4, total=4, phase=running)
        yield pb.ProgressEvent(
            iteration_id="it-7", stage=pb.STAGE_SAMPLING, done=4, total=4, phase=self.final_phase
        )

    def CancelIteration(
        self, request: pb.CancelIterationRequest, context: grpc.ServicerContext
    ) -> pb.Iteration:
        return self._iteration(pb.ITERATION_PHASE_CANCELLED)


@pytest.fixture
def orchestrator() -> Iterator[tuple[StandInOrchestrator, str]]:
    servicer = StandInOrchestrator()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


def test_iterate_watches_and_prints_the_result(
    home: Path, orchestrator: tuple[StandInOrchestrator, str]
) -> None:
    servicer, address = orchestrator
    result = ucoder(
        home,
        "iterate",
        "--orchestrator",
        address,
        "--problems",
        "5",
        "--samples",
        "16",
        "--rho",
        "0.7",
        "--signature-mode",
        "pass",
        "--epochs",
        "2",
    )
    assert result.returncode == 0, result.stderr
    spec = servicer.started[0]
    assert (spec.num_problems, spec.samples_per_problem, spec.train_epochs) == (5, 16, 2)
    assert spec.rho == pytest.approx(0.7) and spec.signature_mode == common_pb2.SIGNATURE_MODE_PASS
    out = result.stdout
    assert "iteration it-7 started" in out
    assert "sampling: 4/4" in out  # progress (plain lines when not a terminal)
    assert "4 / 5" in out and "7872" in out and "v1 (adapters/it-7)" in out and "2.5s" in out


def test_iterate_failed_iteration_exits_1(home: Path, orchestrator: tuple[StandInOrchestrator, str]) -> None:
    servicer, address = orchestrator
    servicer.final_phase = pb.ITERATION_PHASE_FAILED
    result = ucoder(home, "iterate", "--orchestrator", address)
    assert result.returncode == 1
    assert "trainer: no examples selected" in one_line_error(result)


def test_invalid_argument_from_the_server(home: Path, orchestrator: tuple[StandInOrchestrator, str]) -> None:
    _, address = orchestrator
    result = ucoder(home, "iterate", "--orchestrator", address, "--problems", "-1")
    assert result.returncode == 2
    assert one_line_error(result) == "ucoder: num_problems: must be >= 0, got -1"


def test_get_list_cancel(home: Path, orchestrator: tuple[StandInOrchestrator, str]) -> None:
    _, address = orchestrator
    env_result = subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", "get", "it-7", "--json"],
        cwd=REPO_ROOT,
        env={**os.environ, "UCODER_HOME": str(home), "UCODER_ORCHESTRATOR": address},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_result.returncode == 0, env_result.stderr
    assert json.loads(env_result.stdout)["iteration_id"] == "it-7"

    missing = ucoder(home, "get", "nope", "--orchestrator", address)
    assert missing.returncode == 2
    assert one_line_error(missing) == "ucoder: iteration nope: not found"

    listed = ucoder(home, "list", "--orchestrator", address)
    assert listed.returncode == 0 and "it-7" in listed.stdout

    cancelled = ucoder(home, "cancel", "it-7", "--orchestrator", address)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
