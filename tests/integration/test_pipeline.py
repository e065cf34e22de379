"""An iteration through the real orchestrator, executor (gVisor) and clusterer over NATS.

The model-bound stages (problemgen, testsynth, sampler, trainer) are played by this test:
it takes their jobs from their durable consumers and answers on their result subjects,
exactly as those services do. That stand-in exists because the cases checked here — one
problem failing its test synthesis while the other succeeds, candidates with known
behaviour — cannot be caused on demand with a real model; the full real path, model
included, is tests/e2e/test_iteration.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.stage_player import answer, played_stack, take_job
from ucoder_common import subjects
from ucoder_common.bus import Bus, kv_get
from ucoder_common.localstack import StackInfo
from ucoder_common.pb import (
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    problemgen_pb2,
    sampler_pb2,
    testsynth_pb2,
    trainer_pb2,
)

GOOD = common_pb2.Problem(
    problem_id="p-good",
    entry_point="add",
    signature="def add(a: int, b: int) -> int:",
    docstring="Return a + b.",
    prompt='def add(a: int, b: int) -> int:\n    """Return a + b."""\n',
    arity=2,
)
BAD = common_pb2.Problem(
    problem_id="p-bad",
    entry_point="mystery",
    signature="def mystery(x: int) -> int:",
    docstring="Nobody knows.",
    prompt='def mystery(x: int) -> int:\n    """Nobody knows."""\n',
    arity=1,
)
BODIES = ["    return a + b\n", "    return b + a\n", "    return a - b\n", "    while True:\n        pass\n"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with played_stack(tmp_path_factory.mktemp("pipeline-home")) as info:
        yield info


@pytest.fixture
async def bus(stack: StackInfo) -> AsyncIterator[Bus]:
    connected = await Bus.connect(stack.nats_url, name="pipeline-test")
    yield connected
    await connected.close()


async def test_one_problem_fails_the_rest_completes(stack: StackInfo, bus: Bus) -> None:
    channel = stack.aio_channel("orchestrator")
    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    spec = orchestrator_pb2.IterationSpec(
        num_problems=2,
        tests_per_problem=3,
        samples_per_problem=len(BODIES),
        skip_evaluation=True,  # no sampler here to generate HumanEval completions
    )
    started = await stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec))
    iteration_id = started.iteration_id

    job = await take_job(bus, "problemgen", problemgen_pb2.GenerateProblemsRequest)
    assert isinstance(job, problemgen_pb2.GenerateProblemsRequest)
    assert job.iteration_id == iteration_id and job.count == 2
    await answer(
        bus,
        "problemgen",
        problemgen_pb2.GenerateProblemsResponse(iteration_id=iteration_id, problems=[GOOD, BAD], generated=5),
        "all",
    )

    for _ in range(2):
        tjob = await take_job(bus, "testsynth", testsynth_pb2.SynthesizeTestsRequest)
        assert isinstance(tjob, testsynth_pb2.SynthesizeTestsRequest) and tjob.count == 3
        response = testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=iteration_id, problem_id=tjob.problem.problem_id
        )
        if tjob.problem.problem_id == BAD.problem_id:
            response.error = "no valid test input among 9 written"
        else:
            response.tests.extend(
                common_pb2.TestCase(test_id=f"t{i}", args_literal=args, expected_literal=expected)
                for i, (args, expected) in enumerate([("(1, 2)", "3"), ("(5, -5)", "0"), ("(10, 3)", "13")])
            )
        await answer(bus, "testsynth", response, tjob.problem.problem_id)

    sjob = await take_job(bus, "sampler", sampler_pb2.SampleCandidatesRequest)
    assert isinstance(sjob, sampler_pb2.SampleCandidatesRequest)
    assert sjob.problem.problem_id == GOOD.problem_id and sjob.n == len(BODIES)
    candidates = [
        common_pb2.Candidate(
            candidate_id=f"c{i}", code=GOOD.prompt + body, cumulative_logprob=-1.0 - i, num_tokens=5
        )
        for i, body in enumerate(BODIES)
    ]
    await answer(
        bus,
        "sampler",
        sampler_pb2.SampleCandidatesResponse(
            iteration_id=iteration_id, problem_id=GOOD.problem_id, candidates=candidates
        ),
        GOOD.problem_id,
    )

    # The real executor runs the candidates in gVisor, the real clusterer selects; then training.
    train = await take_job(bus, "trainer", trainer_pb2.TrainRequest, timeout_s=120)
    assert isinstance(train, trainer_pb2.TrainRequest)
    assert [(e.problem_id, e.completion) for e in train.examples] == [(GOOD.problem_id, BODIES[0])]
    version = common_pb2.ModelVersion(version=1, adapter_object="adapters/v1.tar", train_examples=1)
    await answer(
        bus, "trainer", trainer_pb2.TrainResponse(iteration_id=iteration_id, model_version=version), "all"
    )

    events = [
        e
        async for e in stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id=iteration_id))
    ]
    assert events[-1].phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED
    it = await stub.GetIteration(
        orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id, include_problems=True)
    )
    await channel.close()

    assert it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED
    assert it.model_version_out.version == 1
    problems = {p.problem.problem_id: p for p in it.problems}
    assert problems[BAD.problem_id].error == "tests: no valid test input among 9 written"
    assert not problems[BAD.problem_id].candidates
    good = problems[GOOD.problem_id]
    assert good.error == "" and good.stage_done == orchestrator_pb2.STAGE_CLUSTERING
    # Outcomes from the sandbox: a + b and b + a agree, a - b differs, the loop times out.
    kinds = [[o.kind for o in r.outcomes] for r in good.results]
    assert kinds[3] == [common_pb2.OUTCOME_KIND_TIMEOUT] * 3
    assert [o.passed for o in good.results[0].outcomes] == [True, True, True]
    assert good.results[0].outcomes[0].value_digest == good.results[1].outcomes[0].value_digest
    assert good.results[0].outcomes[0].value_digest != good.results[2].outcomes[0].value_digest
    selection = good.selection
    assert selection.selected and selection.candidate_id == "c0"  # max e(r), then lowest perplexity
    assert selection.cluster_size == 2 and selection.eligible == 3
    assert it.tests_kept == 3 and it.candidates == 4 and it.executions == 12 and it.selected == 1
    tests_stage = next(s for s in it.stages if s.stage == orchestrator_pb2.STAGE_TESTS)
    assert (tests_stage.done, tests_stage.failed, tests_stage.total) == (1, 1, 2)

    # The state in the KV bucket is the same as what GetIteration returned.
    raw = await kv_get(bus.kv(subjects.ITERATIONS_BUCKET), f"it.{iteration_id}")
    assert raw is not None
    assert orchestrator_pb2.Iteration.FromString(raw).phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED


async def test_adaptive_sampling_draws_rounds_until_the_consensus_is_settled(
    stack: StackInfo, bus: Bus
) -> None:
    """Rounds of 4 out of a budget of 32: after every round the real executor runs only the new
    candidates and the real clusterer decides whether to sample more; identical behaviour in
    every round settles the decision once the warm-up (16 samples) is over."""
    channel = stack.aio_channel("orchestrator")
    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    spec = orchestrator_pb2.IterationSpec(
        num_problems=1,
        tests_per_problem=3,
        samples_per_problem=32,
        skip_evaluation=True,
        sampling=common_pb2.SamplingPolicy(mode="adaptive", round_size=4),
    )
    started = await stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec))
    iteration_id = started.iteration_id
    await take_job(bus, "problemgen", problemgen_pb2.GenerateProblemsRequest)
    await answer(
        bus,
        "problemgen",
        problemgen_pb2.GenerateProblemsResponse(iteration_id=iteration_id, problems=[GOOD], generated=1),
        f"{iteration_id}-all",
    )
    await take_job(bus, "testsynth", testsynth_pb2.SynthesizeTestsRequest)
    tests = [
        common_pb2.TestCase(test_id=f"t{i}", args_literal=args)
        for i, args in enumerate(["(1, 2)", "(5, -5)", "(10, 3)"])
    ]
    await answer(
        bus,
        "testsynth",
        testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=iteration_id, problem_id=GOOD.problem_id, tests=tests
        ),
        f"{iteration_id}-tests",
    )

    first_indexes = []
    first_round: sampler_pb2.SampleCandidatesResponse | None = None
    for round_index in range(8):
        try:
            sjob = await take_job(bus, "sampler", sampler_pb2.SampleCandidatesRequest, timeout_s=15)
        except TimeoutError:
            break
        assert isinstance(sjob, sampler_pb2.SampleCandidatesRequest) and sjob.n == 4
        first_indexes.append(sjob.first_index)
        # Every candidate adds, written two ways: one behaviour.
        bodies = ["    return a + b\n", "    return b + a\n"]
        response = sampler_pb2.SampleCandidatesResponse(
            iteration_id=iteration_id,
            problem_id=GOOD.problem_id,
            candidates=[
                common_pb2.Candidate(
                    candidate_id=f"p-good-c{sjob.first_index + i:04d}",
                    code=GOOD.prompt + bodies[i % 2],
                    cumulative_logprob=-1.0 - i,
                    num_tokens=5,
                )
                for i in range(sjob.n)
            ],
        )
        await answer(bus, "sampler", response, f"{iteration_id}-r{round_index}")
        if first_round is None:
            first_round = response
        elif round_index == 2:
            # The first round's answer again (as after a redelivery): recognised and ignored.
            await answer(bus, "sampler", first_round, f"{iteration_id}-r0-again")

    train = await take_job(bus, "trainer", trainer_pb2.TrainRequest, timeout_s=120)
    assert isinstance(train, trainer_pb2.TrainRequest) and len(train.examples) == 1
    await answer(
        bus,
        "trainer",
        trainer_pb2.TrainResponse(
            iteration_id=iteration_id, model_version=common_pb2.ModelVersion(version=7, train_examples=1)
        ),
        f"{iteration_id}-train",
    )
    events = [
        e
        async for e in stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id=iteration_id))
    ]
    assert events[-1].phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED
    it = await stub.GetIteration(
        orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id, include_problems=True)
    )
    await channel.close()

    (good,) = it.problems
    # Four rounds (the warm-up of 16 samples), then the unanimous cluster settles it: half the budget.
    assert first_indexes == [0, 4, 8, 12]
    assert len(good.candidates) == len(good.results) == 16 == it.candidates
    assert len({c.candidate_id for c in good.candidates}) == 16
    assert [r.candidate_id for r in good.results] == [c.candidate_id for c in good.candidates]
    assert good.rounds == 3 and good.sampling_reason in ("confident", "certain"), good.sampling_reason
    assert good.selection.selected and good.selection.cluster_size == 16
    assert it.executions == 16 * 3
    sampling = next(s for s in it.stages if s.stage == orchestrator_pb2.STAGE_SAMPLING)
    clustering = next(s for s in it.stages if s.stage == orchestrator_pb2.STAGE_CLUSTERING)
    assert (sampling.done, sampling.total) == (1, 1) and (clustering.done, clustering.total) == (1, 1)
