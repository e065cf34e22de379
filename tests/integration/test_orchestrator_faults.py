"""The orchestrator killed (SIGKILL) between a problem's KV write and its iteration's, then restarted.

Found from outside (issue 15): killed the instant a ``pr.<iteration>.<problem>`` write landed, the
orchestrator came back and completed the iteration with short totals (executions 176 of 192,
``selected`` 5 of 6), because the redelivered answer counted as applied and its share of the
summary was never added. Here the real orchestrator kills itself at exactly that moment (its fault
point, ``FAULT_KILL_ENV``: a real SIGKILL, placed deterministically), a new process is started on
the same NATS store, and the iteration must complete with every total equal to the sum over its
problems. The model-bound stages are played (tests/stage_player.py): the kill is timed by their
answers; the executor (gVisor) and the clusterer are real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.orchestrator.app import FAULT_KILL_ENV
from tests.stage_player import PLAYED_ENV, answer, take_job
from ucoder_common import localstack
from ucoder_common.bus import Bus
from ucoder_common.localstack import StackInfo, StackPaths, start_stack, stop_stack
from ucoder_common.pb import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    problemgen_pb2,
    sampler_pb2,
    testsynth_pb2,
)

PROBLEMS = [
    common_pb2.Problem(
        problem_id=f"p{i}",
        entry_point="add",
        signature="def add(a: int, b: int) -> int:",
        docstring="Return a + b.",
        prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
        arity=2,
    )
    for i in range(2)
]
BODIES = ["    return a + b\n", "    return b + a\n", "    return a + b + 0\n", "    return a - b\n"]
TESTS = [("(1, 2)", "3"), ("(5, -5)", "0"), ("(10, 3)", "13")]
# Writes 1 and 2 apply the two problems' tests; write 3 is the first sampler answer.
KILL_AT_WRITE = 3


@pytest.fixture
def faulty_stack(tmp_path: Path) -> Iterator[tuple[StackPaths, StackInfo]]:
    paths = StackPaths(tmp_path / "home")
    info = start_stack(
        paths,
        services=("orchestrator", "executor", "clusterer"),
        extra_env={**PLAYED_ENV, FAULT_KILL_ENV: str(KILL_AT_WRITE)},
        timeout_s=120,
    )
    try:
        yield paths, info
    finally:
        stop_stack(paths)


def restart_orchestrator(paths: StackPaths, info: StackInfo) -> subprocess.Popen[bytes]:
    """A new orchestrator process on the same NATS store and ports, without the fault point."""
    recorded = info.services["orchestrator"]
    cmd = localstack.service_command(
        "orchestrator",
        info.nats_url,
        recorded.grpc_port,
        recorded.metrics_port,
        paths.ready_file("orchestrator"),
    )
    env = {k: v for k, v in os.environ.items() if k != FAULT_KILL_ENV} | PLAYED_ENV
    env["UCODER_NATS_TOKEN"] = info.nats_token
    env["UCODER_GRPC_TOKEN"] = info.grpc_token
    with open(paths.log_file("orchestrator"), "ab") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=localstack.REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while localstack.health(info.orchestrator_address, timeout_s=1.0) != "SERVING":
        assert proc.poll() is None, paths.log_file("orchestrator").read_text()[-3000:]
        assert time.monotonic() < deadline, "the restarted orchestrator is not serving after 60 s"
        time.sleep(0.2)
    return proc


def wait_killed(pid: int, timeout_s: float = 30.0) -> int | None:
    """The exit status of our child ``pid`` once it has died (None: subprocess reaped it first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return None
        else:
            if done:
                return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    raise AssertionError(f"the orchestrator (pid {pid}) did not die at its fault point")


def sampler_answer(iteration_id: str, problem: common_pb2.Problem) -> sampler_pb2.SampleCandidatesResponse:
    candidates = [
        common_pb2.Candidate(
            candidate_id=f"{problem.problem_id}-c{i}",
            code=problem.prompt + body,
            cumulative_logprob=-1.0 - i,
            num_tokens=5,
        )
        for i, body in enumerate(BODIES)
    ]
    return sampler_pb2.SampleCandidatesResponse(
        iteration_id=iteration_id, problem_id=problem.problem_id, candidates=candidates
    )


async def test_killed_between_the_problem_write_and_the_summary_the_totals_still_add_up(
    faulty_stack: tuple[StackPaths, StackInfo],
) -> None:
    paths, info = faulty_stack
    bus = await Bus.connect(info.nats_url, name="fault-test")
    restarted: subprocess.Popen[bytes] | None = None
    try:
        with info.channel("orchestrator") as channel:
            spec = orchestrator_pb2.IterationSpec(
                num_problems=len(PROBLEMS),
                tests_per_problem=len(TESTS),
                samples_per_problem=len(BODIES),
                skip_evaluation=True,
                skip_training=True,
            )
            spec.sampling.mode = "fixed"  # one sampling round: the kill point is then known
            started = orchestrator_pb2_grpc.OrchestratorServiceStub(channel).StartIteration(
                orchestrator_pb2.StartIterationRequest(spec=spec)
            )
        iteration_id = started.iteration_id
        await take_job(bus, "problemgen", problemgen_pb2.GenerateProblemsRequest)
        await answer(
            bus,
            "problemgen",
            problemgen_pb2.GenerateProblemsResponse(
                iteration_id=iteration_id, problems=PROBLEMS, generated=2
            ),
            "all",
        )
        for _ in PROBLEMS:
            job = await take_job(bus, "testsynth", testsynth_pb2.SynthesizeTestsRequest)
            assert isinstance(job, testsynth_pb2.SynthesizeTestsRequest)
            response = testsynth_pb2.SynthesizeTestsResponse(
                iteration_id=iteration_id, problem_id=job.problem.problem_id, generated=5
            )
            response.tests.extend(
                common_pb2.TestCase(test_id=f"t{i}", args_literal=a, expected_literal=e)
                for i, (a, e) in enumerate(TESTS)
            )
            response.rejected_by_reason["not_literal"] = 2
            await answer(bus, "testsynth", response, job.problem.problem_id)
        for _ in PROBLEMS:
            await take_job(bus, "sampler", sampler_pb2.SampleCandidatesRequest)
        # Write 3: the orchestrator dies with p0's candidates stored and the summary not.
        await answer(bus, "sampler", sampler_answer(iteration_id, PROBLEMS[0]), PROBLEMS[0].problem_id)
        assert wait_killed(info.services["orchestrator"].pid) in (-signal.SIGKILL, None)

        restarted = restart_orchestrator(paths, info)
        await answer(bus, "sampler", sampler_answer(iteration_id, PROBLEMS[1]), PROBLEMS[1].problem_id)
        with info.channel("orchestrator") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            deadline = time.monotonic() + 180
            while True:
                it = stub.GetIteration(
                    orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id, include_problems=True)
                )
                if it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                    break
                assert time.monotonic() < deadline, f"still {it.stage} after 180 s"
                await asyncio.sleep(0.5)
    finally:
        if restarted is not None:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(30)
        await bus.close()

    assert it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED, it.error
    assert len(it.problems) == len(PROBLEMS) and all(not p.error for p in it.problems)
    # Every total is the sum over the problems: none of p0's sampler answer was lost.
    assert it.candidates == sum(len(p.candidates) for p in it.problems) == len(PROBLEMS) * len(BODIES)
    assert it.executions == sum(len(r.outcomes) for p in it.problems for r in p.results)
    assert it.executions == len(PROBLEMS) * len(BODIES) * len(TESTS)
    assert it.tests_kept == len(PROBLEMS) * len(TESTS)
    assert dict(it.tests_rejected) == {"not_literal": 2 * len(PROBLEMS)}
    assert it.selected == sum(p.selection.selected for p in it.problems) == len(PROBLEMS)
    for stage in (orchestrator_pb2.STAGE_SAMPLING, orchestrator_pb2.STAGE_EXECUTION):
        entry = next(s for s in it.stages if s.stage == stage)
        assert (entry.done, entry.failed, entry.total) == (len(PROBLEMS), 0, len(PROBLEMS))
    # Nothing done twice: each problem holds its candidates and results once.
    for p in it.problems:
        ids = [c.candidate_id for c in p.candidates]
        assert len(ids) == len(set(ids)) == len(BODIES)
        assert sorted(r.candidate_id for r in p.results) == sorted(ids)
