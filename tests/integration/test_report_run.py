"""The iteration report of a three-iteration run, through the real orchestrator, executor (gVisor)
and clusterer over NATS, read back through real gRPC `GetReport`, the `ucoder report` CLI and the
Object Store.

The model-bound stages (problemgen, testsynth, sampler, trainer) are played by this test: it takes
their jobs from their durable consumers and answers on their result subjects, as those services
do. That stand-in exists because the report's warnings need runs that a model cannot be made to
produce on demand: problems that get less diverse every iteration (lexical-entropy collapse) and
candidates that disagree on almost every problem (low consensus). Everything downstream of those
answers is real: the sandbox runs the candidates, the clusterer clusters them, the orchestrator
continues the run (skip_evaluation: each iteration that trains counts as an improvement) and
stores each iteration's report when it ends. The full path with a model is tests/e2e.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.stage_player import answer, played_stack, take_job
from ucoder_common import diversity
from ucoder_common.bus import Bus
from ucoder_common.localstack import REPO_ROOT, StackInfo
from ucoder_common.pb import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    problemgen_pb2,
    sampler_pb2,
    testsynth_pb2,
    trainer_pb2,
)

PROBLEMS_PER_ITERATION = 5
# Descriptions handed out per iteration: varied, then narrower, then one phrase repeated.
DESCRIPTIONS = [
    [
        "Return the sum of the even numbers in a list of integers.",
        "Count how many vowels appear in the given lowercase string.",
        "Find the longest run of equal adjacent characters in a text.",
        "Merge two sorted lists into one sorted list without duplicates.",
        "Compute the greatest common divisor of two positive integers.",
    ],
    [
        "Return the sum of the numbers in a list.",
        "Return the sum of the even numbers in a list.",
        "Return the sum of the odd numbers in a list.",
        "Return the sum of the first numbers in a list.",
        "Return the sum of the last numbers in a list.",
    ],
    [
        "sum sum sum of the sum sum",
        "sum of sum sum sum sum",
        "sum sum the sum sum sum",
        "sum sum sum sum",
        "sum sum",
    ],
]
CATEGORIES = [["lists", "strings", "strings", "lists", "math"], ["lists"] * 5, ["lists"] * 5]
# Four behaviours for x: on every "disagree" problem each candidate is its own cluster (1 of 4).
DISAGREE = ["    return x + 1\n", "    return x * 2\n", "    return x - 3\n", "    return x * x + 7\n"]
# Three candidates agree on the last problem: a cluster of 3 of 4 is selected, so the iteration trains.
AGREE = ["    return x + 1\n", "    return 1 + x\n", "    return (x + 1)\n", "    return x * 2\n"]
TESTS = ["(1,)", "(2,)", "(5,)"]


def make_problem(iteration: int, index: int) -> common_pb2.Problem:
    name = f"f{iteration}_{index}"
    description = DESCRIPTIONS[iteration][index]
    return common_pb2.Problem(
        problem_id=f"p-{name}",
        entry_point=name,
        signature=f"def {name}(x: int) -> int:",
        docstring=description,
        description=description,
        category=CATEGORIES[iteration][index],
        prompt=f'def {name}(x: int) -> int:\n    """{description}"""\n',
        arity=1,
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with played_stack(tmp_path_factory.mktemp("report-home")) as info:
        yield info


@pytest.fixture
async def bus(stack: StackInfo) -> AsyncIterator[Bus]:
    connected = await Bus.connect(stack.nats_url, name="report-test")
    await connected.ensure_topology()  # binds the Object Store (idempotent)
    yield connected
    await connected.close()


async def play_iteration(
    bus: Bus, stub: orchestrator_pb2_grpc.OrchestratorServiceStub, index: int
) -> tuple[str, orchestrator_pb2.IterationReport]:
    """Answer one iteration's model-bound jobs; returns its id and the report read while it ran."""
    job = await take_job(bus, "problemgen", problemgen_pb2.GenerateProblemsRequest, timeout_s=60)
    assert isinstance(job, problemgen_pb2.GenerateProblemsRequest)
    iteration_id = job.iteration_id
    problems = [make_problem(index, i) for i in range(PROBLEMS_PER_ITERATION)]
    # Measured as problemgen measures it (its pool: the categories it was asked for).
    measured = diversity.diversity_report(
        [p.description for p in problems],
        [p.category for p in problems],
        ["lists", "strings", "math", "graphs"],
    )
    response = problemgen_pb2.GenerateProblemsResponse(
        iteration_id=iteration_id,
        problems=problems,
        generated=PROBLEMS_PER_ITERATION + 1,
        rejected_parse=1,
        diversity=problemgen_pb2.ProblemDiversity(
            problems=measured.problems,
            mean_lexical_entropy=measured.mean_lexical_entropy,
            distinct_1=measured.distinct_1,
            distinct_2=measured.distinct_2,
            category_coverage=measured.category_coverage,
            category_entropy=measured.category_entropy,
            max_category_share=measured.max_category_share,
            pool_size=measured.pool_size,
            category_counts=measured.category_counts,
        ),
    )
    await answer(bus, "problemgen", response, f"{iteration_id}-all")

    # While it runs, GetReport builds a report on the spot and says so.
    running = await stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id=iteration_id))

    by_id = {p.problem_id: p for p in problems}
    for _ in problems:
        tjob = await take_job(bus, "testsynth", testsynth_pb2.SynthesizeTestsRequest, timeout_s=60)
        assert isinstance(tjob, testsynth_pb2.SynthesizeTestsRequest)
        pid = tjob.problem.problem_id
        tests = [common_pb2.TestCase(test_id=f"t{i}", args_literal=a) for i, a in enumerate(TESTS)]
        reply = testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=iteration_id,
            problem_id=pid,
            tests=tests,
            generated=5,
            rejected_by_reason={"arity": 2},
        )
        await answer(bus, "testsynth", reply, f"{iteration_id}-{pid}")
    for _ in problems:
        sjob = await take_job(bus, "sampler", sampler_pb2.SampleCandidatesRequest, timeout_s=60)
        assert isinstance(sjob, sampler_pb2.SampleCandidatesRequest)
        pid = sjob.problem.problem_id
        bodies = AGREE if pid.endswith(f"_{PROBLEMS_PER_ITERATION - 1}") else DISAGREE
        candidates = [
            common_pb2.Candidate(
                candidate_id=f"{pid}-c{i}",
                code=by_id[pid].prompt + body,
                cumulative_logprob=-1.0 - i,
                num_tokens=5,
            )
            for i, body in enumerate(bodies)
        ]
        await answer(
            bus,
            "sampler",
            sampler_pb2.SampleCandidatesResponse(
                iteration_id=iteration_id, problem_id=pid, candidates=candidates
            ),
            f"{iteration_id}-{pid}",
        )

    # The real executor runs them in gVisor and the real clusterer selects the agreeing problem.
    train = await take_job(bus, "trainer", trainer_pb2.TrainRequest, timeout_s=120)
    assert isinstance(train, trainer_pb2.TrainRequest) and train.iteration_id == iteration_id
    assert len(train.examples) == 1
    version = common_pb2.ModelVersion(version=index + 1, train_examples=1, iteration_id=iteration_id)
    await answer(
        bus,
        "trainer",
        trainer_pb2.TrainResponse(iteration_id=iteration_id, model_version=version),
        f"{iteration_id}-train",
    )
    return iteration_id, running


def ucoder(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("UCODER_ORCHESTRATOR", "UCODER_DEBUG", "UCODER_HOME")
    }
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", "--home", str(home), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def metric(stack: StackInfo, name: str) -> float:
    port = stack.services["orchestrator"].metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, flags=re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


async def test_a_three_iteration_run_reports_diversity_consensus_and_warnings(
    stack: StackInfo, bus: Bus, tmp_path: Path
) -> None:
    channel = stack.aio_channel("orchestrator")
    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    warnings_before = {
        code: metric(stack, f'ucoder_orchestrator_report_warnings_total{{code="{code}"}}')
        for code in ("low_consensus", "entropy_collapse", "pass_oscillation")
    }
    spec = orchestrator_pb2.IterationSpec(
        num_problems=PROBLEMS_PER_ITERATION,
        tests_per_problem=len(TESTS),
        samples_per_problem=len(DISAGREE),
        skip_evaluation=True,  # no sampler here to generate HumanEval completions
        iterations=3,
        sampling=common_pb2.SamplingPolicy(mode="fixed"),
    )
    await stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec))
    ids = []
    for index in range(3):
        iteration_id, running = await play_iteration(bus, stub, index)
        ids.append(iteration_id)
        assert not running.stored and running.objects == []
        assert json.loads(running.json)["note"].startswith(f"iteration {iteration_id} is still running")
    events = [
        e async for e in stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id=ids[-1]))
    ]
    assert events[-1].phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED
    last = await stub.GetIteration(orchestrator_pb2.GetIterationRequest(iteration_id=ids[-1]))
    assert last.run_index == 3 and last.run_id == ids[0] and last.run_decision.endswith("keeping v3")

    # --- gRPC: the report stored when the last iteration ended covers the whole run.
    reply = await stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id=ids[-1]))
    assert reply.stored and reply.iteration_id == ids[-1]
    assert list(reply.objects) == [f"reports/{ids[-1]}.{fmt}" for fmt in ("json", "md", "html")]
    built = json.loads(reply.json)
    assert built["schema"] == 1 and built["complete"] and built["run_id"] == ids[0]
    summaries = built["iterations"]
    assert [s["iteration_id"] for s in summaries] == ids and [s["run_index"] for s in summaries] == [1, 2, 3]
    entropies = [s["diversity"]["mean_lexical_entropy"] for s in summaries]
    assert entropies[0] > entropies[1] > entropies[2] and entropies[2] < 2.25, entropies
    for s in summaries:
        assert s["phase"] == "completed" and s["diversity"]["source"] == "problemgen"
        assert s["problems"] == {
            "generated": 6,
            "kept": 5,
            "rejected": 1,
            "failed": 0,
            "with_candidates": 5,
            "clustered": 5,
        }
        assert s["tests"]["kept"] == 15 and s["tests"]["rejected_by_reason"] == {"arity": 10}
        assert s["candidates"] == 20 and s["executions"] == 60 and s["selected"] == 1
        assert s["selection_rate"] == pytest.approx(0.2)
        clusters = s["clusters"]
        # Four problems of four singletons (no cluster reaches tau=2), one with a cluster of 3.
        assert clusters["chosen_size_histogram"] == {"1": 4, "3": 1}
        assert clusters["all_size_histogram"] == {"1": 17, "3": 1}
        assert clusters["low_consensus_problems"] == 4 and clusters["low_consensus_share"] == 0.8
        assert clusters["largest_share_mean"] == pytest.approx((4 * 0.25 + 0.75) / 5)
        assert s["model_version_out"] == s["run_index"]
    by_code: dict[str, list[str]] = {}
    for w in built["warnings"]:
        by_code.setdefault(w["code"], []).append(w["iteration_id"])
    assert by_code["low_consensus"] == ids
    assert ids[2] in by_code["entropy_collapse"]
    assert "pass_oscillation" not in by_code  # nothing evaluated
    assert [(w.code, w.iteration_id) for w in reply.warnings] == [
        (w["code"], w["iteration_id"]) for w in built["warnings"]
    ]
    assert all(w.message and w.threshold > 0 for w in reply.warnings)
    markdown, page = reply.markdown, reply.html
    for iid in ids:
        assert iid in markdown and iid in page
    assert "- **low_consensus**" in markdown and "- **entropy_collapse**" in markdown
    assert page.count("<svg") == 6

    # The first iteration's report is the run as it was then: one iteration.
    first = await stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id=ids[0]))
    assert first.stored and [s["iteration_id"] for s in json.loads(first.json)["iterations"]] == ids[:1]

    # --- the Object Store holds every iteration's three objects.
    for iid in ids:
        for fmt in ("json", "md", "html"):
            stored = await bus.objects.get(f"reports/{iid}.{fmt}")
            assert stored.data, (iid, fmt)
    stored_json = json.loads(bytes((await bus.objects.get(f"reports/{ids[-1]}.json")).data or b""))
    assert stored_json == built

    # --- each warning counted once, in the iteration it was seen in.
    assert metric(stack, 'ucoder_orchestrator_report_warnings_total{code="low_consensus"}') == (
        warnings_before["low_consensus"] + 3
    )
    assert metric(stack, 'ucoder_orchestrator_report_warnings_total{code="entropy_collapse"}') == (
        warnings_before["entropy_collapse"] + len(by_code["entropy_collapse"])
    )

    # --- bad requests.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id="20990101-000000-ffffff"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "iteration_id" in (err.value.details() or "")
    for bad in ("", "no/such id", "x" * 200):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("iteration_id: ")
    await channel.close()

    # --- the CLI, as a user runs it against that stack.
    home = Path(stack.home)
    html_path, md_path = tmp_path / "report.html", tmp_path / "report.md"
    shown = ucoder(home, "report", ids[-1], "--html", str(html_path), "--markdown", str(md_path))
    assert shown.returncode == 0, shown.stdout + shown.stderr
    out = shown.stdout
    assert "problem diversity per iteration" in out and "consensus per iteration" in out
    for iid in ids:
        assert iid in out
    for value in entropies:
        assert f"{value:.2f}" in out
    assert "low_consensus" in out and "entropy_collapse" in out and "warnings (" in out
    assert html_path.read_text() == page and md_path.read_text() == markdown
    as_json = ucoder(home, "report", ids[-1], "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == built
    # `ucoder watch` follows the run from its first iteration to its end, then shows the run's
    # warnings and writes the last iteration's report (as `ucoder iterate --report` does).
    followed_path = tmp_path / "followed.html"
    followed = ucoder(home, "watch", ids[0], "--report", str(followed_path))
    assert followed.returncode == 0, followed.stdout + followed.stderr
    assert all(iid in followed.stdout for iid in ids)
    assert "low_consensus" in followed.stdout and "entropy_collapse" in followed.stdout
    assert f"ucoder report {ids[-1]}" in followed.stdout
    assert followed_path.read_text() == page

    for args, message in (
        (("report", "20990101-000000-ffffff"), "ucoder: iteration_id: no iteration '20990101-000000-ffffff'"),
        (("report", "no/such"), "ucoder: iteration_id: must be at most 128 ASCII letters, digits"),
    ):
        failed = ucoder(home, *args)
        assert failed.returncode == 2, failed.stdout + failed.stderr
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), failed.stderr
    unwritable = ucoder(home, "report", ids[-1], "--html", str(tmp_path / "missing" / "r.html"))
    assert unwritable.returncode == 2
    assert unwritable.stderr.strip().startswith(
        f"ucoder: --html {tmp_path / 'missing' / 'r.html'}: cannot write"
    )
