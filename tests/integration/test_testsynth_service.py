"""The test synthesis service over a real NATS: the model's rounds, then the mutation fill.

The sampler is played by this test (it answers on the sampler's request subject, as the sampler
service does): its completions are fixed, so the number of valid model-written tests is known
(three) and the fill's share of the count can be asserted exactly. The path with the real
sampler and model is tests/e2e/test_iteration.py.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from services.testsynth import core
from services.testsynth.app import TestSynthConfig
from services.testsynth.app import TestSynthesizer as Synthesizer
from ucoder_common import subjects
from ucoder_common.bus import Bus
from ucoder_common.pb import common_pb2, sampler_pb2, testsynth_pb2

PROMPT = (
    'def total(xs: list[int], k: int) -> int:\n    """Sum of xs times k.\n\n'
    '    >>> total([1, 2], 3)\n    9\n    """\n'
)
# Every completion: two valid lines (the same two every time) and one of the wrong type.
COMPLETION = "[4, 5], 2) == 18\nassert total([7], 0) == 0\nassert total('x', 1) == 0\n"
MODEL_INPUTS = ["([1, 2], 3)", "([4, 5], 2)", "([7], 0)"]  # the docstring's example first


def metric(verdict: str) -> float:
    return REGISTRY.get_sample_value("ucoder_testsynth_tests_total", {"verdict": verdict}) or 0.0


@pytest.fixture
async def played_sampler(bus: Bus) -> AsyncIterator[list[int]]:
    """Answers generation requests with COMPLETION; yields the n of every request seen."""
    seen: list[int] = []

    async def reply(msg: Msg) -> None:
        request = sampler_pb2.GenerateRequest.FromString(msg.data)
        seen.append(request.n)
        response = sampler_pb2.GenerateResponse(
            completions=[sampler_pb2.Completion(text=COMPLETION)] * request.n
        )
        await msg.respond(response.SerializeToString())

    sub = await bus.nc.subscribe(subjects.SAMPLER_GENERATE, queue="sampler", cb=reply)
    yield seen
    await sub.unsubscribe()


def request(count: int) -> testsynth_pb2.SynthesizeTestsRequest:
    problem = common_pb2.Problem(problem_id="it1-p0", entry_point="total", arity=2, prompt=PROMPT)
    return testsynth_pb2.SynthesizeTestsRequest(
        iteration_id="it1", problem=problem, count=count, max_rounds=2
    )


async def test_short_rounds_are_filled_with_typed_mutations(bus: Bus, played_sampler: list[int]) -> None:
    before = {v: metric(v) for v in ("kept", "mutation", "rejected")}
    response = await Synthesizer(TestSynthConfig(mutation_fill=True), bus).synthesize(request(40))
    assert played_sampler, "the sampler was never asked"
    tests = list(response.tests)
    assert len(tests) == 40 and response.mutated == 37
    # The model's tests first, untouched; then the mutations, with no expected output.
    assert [t.args_literal for t in tests[:3]] == MODEL_INPUTS
    assert all(t.kind != core.MUTATION for t in tests[:3])
    assert all(t.kind == core.MUTATION and not t.expected_literal for t in tests[3:])
    for t in tests[3:]:
        xs, k = ast.literal_eval(t.args_literal)  # the annotated types survive every mutation
        assert isinstance(xs, list) and all(type(x) is int for x in xs) and type(k) is int
    assert len({t.args_literal for t in tests}) == len({t.test_id for t in tests}) == 40
    assert response.rejected_by_reason, "the wrong-typed line is rejected, not mutated into the pool"
    assert metric("kept") - before["kept"] == 3
    assert metric("mutation") - before["mutation"] == 37
    assert metric("rejected") - before["rejected"] == response.rejected
    # The same problem gets the same tests again (the fill is seeded with the problem id).
    again = await Synthesizer(TestSynthConfig(mutation_fill=True), bus).synthesize(request(40))
    assert [t.args_literal for t in again.tests] == [t.args_literal for t in tests]


async def test_fill_off_keeps_only_the_models_tests(bus: Bus, played_sampler: list[int]) -> None:
    assert TestSynthConfig().mutation_fill is False  # the default (bench/consensus.py says why)
    response = await Synthesizer(TestSynthConfig(), bus).synthesize(request(40))
    assert [t.args_literal for t in response.tests] == MODEL_INPUTS and response.mutated == 0


async def test_enough_model_tests_need_no_fill(bus: Bus, played_sampler: list[int]) -> None:
    response = await Synthesizer(TestSynthConfig(mutation_fill=True), bus).synthesize(request(2))
    assert len(response.tests) == 2 and response.mutated == 0


async def test_a_problem_that_stops_gaining_tests_stops_costing_rounds(
    bus: Bus, played_sampler: list[int]
) -> None:
    """COMPLETION adds its two tests in round 1 and nothing after: with stall_rounds 2 the service
    asks two more rounds and gives up; with 0 it asks all ten."""
    long_request = request(40)
    long_request.max_rounds = 10
    endless = await Synthesizer(TestSynthConfig(stall_rounds=0), bus).synthesize(long_request)
    per_round, leftover = divmod(len(played_sampler), 10)
    assert per_round >= 1 and leftover == 0
    played_sampler.clear()
    stalled = await Synthesizer(TestSynthConfig(stall_rounds=2), bus).synthesize(long_request)
    assert len(played_sampler) == 3 * per_round
    assert [t.args_literal for t in stalled.tests] == [t.args_literal for t in endless.tests] == MODEL_INPUTS
    assert TestSynthConfig().stall_rounds == 2


async def test_keyword_and_swapped_calls_are_repaired(bus: Bus) -> None:
    text = "[4, 5], k=2) == 18\nassert total(3, [1]) == 3\nassert total([6,\n  7], 1) == 13\n"

    async def reply(msg: Msg) -> None:
        n = sampler_pb2.GenerateRequest.FromString(msg.data).n
        answer = sampler_pb2.GenerateResponse(completions=[sampler_pb2.Completion(text=text)] * n)
        await msg.respond(answer.SerializeToString())

    sub = await bus.nc.subscribe(subjects.SAMPLER_GENERATE, queue="sampler", cb=reply)
    try:
        repaired = await Synthesizer(TestSynthConfig(), bus).synthesize(request(40))
        plain = await Synthesizer(TestSynthConfig(repair_lines=False), bus).synthesize(request(40))
    finally:
        await sub.unsubscribe()
    assert [t.args_literal for t in repaired.tests] == [
        "([1, 2], 3)",
        "([4, 5], 2)",
        "([1], 3)",
        "([6, 7], 1)",
    ]
    calls = repaired.generated // 3  # every completion repeats the same three calls
    assert dict(repaired.repaired) == {"keywords": calls, "swapped": calls, "joined": calls}
    assert repaired.rejected == 0
    # Without repairs: the keyword call and the swapped one are rejected, the split call ends the block.
    assert [t.args_literal for t in plain.tests] == ["([1, 2], 3)"]
    assert dict(plain.rejected_by_reason) == {"keywords": calls, "type": calls, "syntax": calls}
    assert not plain.repaired
