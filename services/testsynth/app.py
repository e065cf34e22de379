"""Test synthesis service: asks the sampler for test calls of a problem, keeps literal ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from services.testsynth import core
from ucoder_common import sampler_client
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, rpc
from ucoder_common.pb import common_pb2, sampler_pb2, testsynth_pb2, testsynth_pb2_grpc
from ucoder_common.service import GrpcBinding, ServiceParts

log = logging.getLogger(__name__)

TESTS = Counter("ucoder_testsynth_tests", "Test inputs written by the model, by verdict.", ["verdict"])
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _verdict in ("kept", "rejected"):
    TESTS.labels(verdict=_verdict)

MAX_COUNT = 1000


@dataclass
class TestSynthConfig(ServiceConfig):
    """Writes test inputs for problems with the serving model."""

    samples_per_round: int = setting(4, "Completions asked of the sampler per round.")
    max_rounds: int = setting(
        4, "Rounds before giving up on reaching the requested count, when the request sets none."
    )
    temperature: float = setting(0.8, "Sampling temperature for tests, when the request sets none.")
    max_tokens: int = setting(
        384, "Token budget of one completion (several test lines), when the request sets none."
    )
    sampler_timeout_s: float = setting(600.0, "How long to wait for one sampler answer.")
    concurrency: int = setting(4, "Problems handled at once.")

    def validate(self) -> None:
        super().validate()
        for name in ("samples_per_round", "max_rounds", "max_tokens", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")


class TestSynthesizer:
    def __init__(self, cfg: TestSynthConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus

    async def synthesize(
        self, request: testsynth_pb2.SynthesizeTestsRequest
    ) -> testsynth_pb2.SynthesizeTestsResponse:
        problem = request.problem
        if not problem.entry_point.isidentifier():
            raise InvalidArgument(
                f"problem.entry_point: must be a Python identifier, got {problem.entry_point!r}"
            )
        if problem.arity < 1:
            raise InvalidArgument(f"problem.arity: must be >= 1, got {problem.arity}")
        if not problem.prompt:
            raise InvalidArgument("problem.prompt: must not be empty")
        if request.count < 1 or request.count > MAX_COUNT:
            raise InvalidArgument(f"count: must be in 1..{MAX_COUNT}, got {request.count}")
        response = testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=request.iteration_id, problem_id=problem.problem_id
        )
        prefix = core.calls_prefix(problem.entry_point)
        prompt = core.build_tests_prompt(problem.prompt, problem.entry_point, problem.arity)
        kept = core.docstring_tests(problem.prompt, problem.entry_point, problem.arity)
        for _ in range(request.max_rounds or self.cfg.max_rounds):
            if len(kept) >= request.count:
                break
            generation = await sampler_client.generate(
                self.bus.nc,
                sampler_pb2.GenerateRequest(
                    prompt=prompt,
                    n=self.cfg.samples_per_round,
                    temperature=request.temperature or self.cfg.temperature,
                    max_tokens=request.max_tokens or self.cfg.max_tokens,
                    stop=core.TESTS_STOP,
                    model_version=request.model_version,
                ),
                self.cfg.sampler_timeout_s,
            )
            for completion in generation.completions:
                tests, rejected = core.parse_test_inputs(
                    completion.text, problem.entry_point, problem.arity, prefix
                )
                response.generated += len(tests) + rejected
                response.rejected += rejected
                kept, removed = core.dedupe_tests([*kept, *tests])
                response.duplicates += removed
        kept = kept[: request.count]
        TESTS.labels(verdict="kept").inc(len(kept))
        TESTS.labels(verdict="rejected").inc(response.rejected)
        response.tests.extend(
            common_pb2.TestCase(
                test_id=core.make_test_id(problem.problem_id, t.args_literal),
                args_literal=t.args_literal,
                expected_literal=t.expected_literal,
            )
            for t in kept
        )
        return response


class TestSynthServicer(testsynth_pb2_grpc.TestSynthServiceServicer):
    def __init__(self, synthesizer: TestSynthesizer) -> None:
        self.synthesizer = synthesizer

    @rpc
    async def SynthesizeTests(
        self, request: testsynth_pb2.SynthesizeTestsRequest, context: grpc.aio.ServicerContext
    ) -> testsynth_pb2.SynthesizeTestsResponse:
        return await self.synthesizer.synthesize(request)


async def build(cfg: TestSynthConfig, bus: Bus) -> ServiceParts:
    synthesizer = TestSynthesizer(cfg, bus)
    worker = stage_worker(
        bus,
        "testsynth",
        testsynth_pb2.SynthesizeTestsRequest,
        testsynth_pb2.SynthesizeTestsResponse,
        synthesizer.synthesize,
        concurrency=cfg.concurrency,
        max_deliver=6,
        base_delay_s=5.0,
    )
    binding = GrpcBinding(
        testsynth_pb2_grpc.add_TestSynthServiceServicer_to_server,
        TestSynthServicer(synthesizer),
        "ucoder.v1.TestSynthService",
    )
    return ServiceParts(bindings=[binding], workers=[worker])
