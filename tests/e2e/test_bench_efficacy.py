"""bench/efficacy.py on a tiny budget against the session's real stack (tests/e2e/conftest.py).

The runner generates a pool through the real orchestrator (skip_training), trains the arms
through the real trainer and measures HumanEval through the real sampler and executor; a second
run with the same settings finds everything in its cache and generates nothing. The held-out
consensus share (``--validation-problems``) is left out: it is one more pool iteration per version
(run_pool, the path the pool takes here), about 5 minutes for v0 and 9 for v1 with one problem on
2 cores, more than this test can spend. The numbers are far too small to mean anything; what is
checked is that they are what the runner says they are.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.efficacy import ARMS, CONSENSUS, NONE, RANDOM_SUCCESSFUL
from ucoder_common import registry
from ucoder_common.bus import Bus
from ucoder_common.localstack import StackInfo, StackPaths
from ucoder_common.pb import orchestrator_pb2, orchestrator_pb2_grpc

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EVAL_PROBLEMS = 3
ARGS = [
    "--problems", "2", "--tests", "3", "--samples", "4", "--temperature", "0.1", "--max-tokens", "96",
    "--eval-problems", str(EVAL_PROBLEMS), "--eval-samples", "2", "--eval-max-tokens", "64",
    "--validation-problems", "0", "--resamples", "200",
]  # fmt: skip


def current_version(nats_url: str) -> int:
    async def read() -> int:
        bus = await Bus.connect(nats_url, name="e2e-efficacy")
        try:
            entry = await registry.current_version(bus)
            return entry.version if entry else 0
        finally:
            await bus.close()

    return asyncio.run(read())


def run_bench(cache: Path, home: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench.efficacy", *ARGS, "--cache", str(cache), "--home", str(home)]
    done = subprocess.run(
        [*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.timeout(1800)
def test_efficacy_runner_runs_every_arm_and_resumes_from_its_cache(
    stack: tuple[StackPaths, StackInfo], tmp_path: Path
) -> None:
    paths, info = stack
    before = current_version(info.nats_url)
    first = run_bench(tmp_path / "cache", paths.home, tmp_path / "first.json")
    assert "efficacy: HumanEval pass@1" in first.stdout and "yield:" in first.stdout
    results = json.loads((tmp_path / "first.json").read_text())
    assert results["complete"]
    rows = {row["arm"]: row for row in results["arms"]}
    assert list(rows) == list(ARMS)

    # Both trained arms selected from one pool (same base model), generated without training.
    (pool,) = rows[CONSENSUS]["pool_iterations"]
    (random_pool,) = rows[RANDOM_SUCCESSFUL]["pool_iterations"]
    assert random_pool["pool_iteration_id"] == pool["pool_iteration_id"]
    with info.channel("orchestrator") as channel:
        it = orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetIteration(
            orchestrator_pb2.GetIterationRequest(iteration_id=pool["pool_iteration_id"]), timeout=30
        )
    assert it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED and it.spec.skip_training
    assert not it.HasField("model_version_out")
    assert pool["consensus_selected"] == it.selected and pool["problems"] == len(it.problem_ids)

    # consensus trains on what the service selected; random-successful on as many random picks.
    assert rows[CONSENSUS]["examples_trained"] == it.selected
    assert rows[RANDOM_SUCCESSFUL]["examples_trained"] == min(it.selected, random_pool["successful_problems"])
    for arm in (CONSENSUS, RANDOM_SUCCESSFUL):
        trained = rows[arm]["examples_trained"] > 0
        assert (rows[arm]["version"] > 0) == trained, rows[arm]
    assert rows[NONE]["version"] == 0 and rows[NONE]["examples_trained"] == 0

    # Every version measured on the same problems; the base's delta against itself is exactly 0.
    versions = {row["version"] for row in rows.values()}
    for row in rows.values():
        for decoding in ("sampled", "greedy"):
            interval = row[decoding]["pass_at_1"]
            assert 0.0 <= interval["low"] <= interval["estimate"] <= interval["high"] <= 1.0
            assert interval["n"] == EVAL_PROBLEMS
    assert rows[NONE]["sampled"]["delta_vs_base"] == {
        "estimate": 0.0, "low": 0.0, "high": 0.0, "level": 0.95, "n": EVAL_PROBLEMS,
    }  # fmt: skip
    assert all(row["held_out_consensus_share"] is None for row in rows.values())

    work = results["work_this_run"]
    assert work["iterations_started"] == 1  # the pool, shared by both trained arms
    assert work["eval_problems_generated"] == EVAL_PROBLEMS * 2 * len(versions)
    assert work.get("trainings", 0) == sum(
        rows[a]["examples_trained"] > 0 for a in (CONSENSUS, RANDOM_SUCCESSFUL)
    )
    assert results["yield"]["selected"] == it.selected
    assert current_version(info.nats_url) == before  # the arms' versions are nobody's current model

    # A second run continues from the cache: same numbers, no iteration, training or generation.
    run_bench(tmp_path / "cache", paths.home, tmp_path / "second.json")
    again = json.loads((tmp_path / "second.json").read_text())
    assert again["work_this_run"] == {}
    assert again["arms"] == results["arms"]
