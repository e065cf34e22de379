"""Test synthesis service: asks the sampler for typical and boundary test calls, keeps valid ones,
and tops a problem up with mutations of those when the model's rounds end short of the count."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
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
from ucoder_common.validation import shown

log = logging.getLogger(__name__)

TESTS = Counter(
    "ucoder_testsynth_tests",
    "Test inputs written by the model, by verdict; `mutation`: inputs derived from the kept ones.",
    ["verdict"],
)
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _verdict in ("kept", "rejected", "duplicate", "mutation"):
    TESTS.labels(verdict=_verdict)

MAX_COUNT = 1000
MAX_ROUNDS = 100
# Off: on the default model it did not add valid tests (python -m bench.seeded_tests; README).
SEED_LINES = 0
# Rounds in a row without a new valid test before a problem is given up (bench/test_lines.py).
STALL_ROUNDS = 2


@dataclass
class TestSynthConfig(ServiceConfig):
    """Writes test inputs for problems with the serving model."""

    samples_per_round: int = setting(
        4, "Completions asked of the sampler per round, shared among the kinds still short."
    )
    max_rounds: int = setting(
        8,
        "Rounds before giving up on reaching the requested count, when the request sets none; "
        "a round's completions are shared among the kinds (typical, boundary) still short.",
    )
    boundary_ratio: float = setting(
        0.3, "Share of a problem's tests asked for as boundary cases (0..1); the rest are typical."
    )
    temperature: float = setting(0.8, "Sampling temperature for tests, when the request sets none.")
    max_tokens: int = setting(
        384, "Token budget of one completion (several test lines), when the request sets none."
    )
    sampler_timeout_s: float = setting(600.0, "How long to wait for one sampler answer.")
    concurrency: int = setting(4, "Problems handled at once.")
    seed_lines: int = setting(
        SEED_LINES,
        "Valid tests of the problem (its docstring examples, earlier rounds' lines) shown as the first "
        "lines of the block the model continues, rotating by round (0 = none), so that it writes "
        "literal calls rather than, say, the parameters' names. Measured by bench/seeded_tests.py.",
    )
    repair_lines: bool = setting(
        True,
        "Repair call lines the model states unambiguously but not as one literal call: a call over "
        "several lines (joined), keywords that name parameters (placed), the one argument order that "
        "matches the annotations (swapped). Measured by bench/test_lines.py.",
    )
    stall_rounds: int = setting(
        STALL_ROUNDS,
        "Give up on a problem after this many rounds in a row that add no new valid test (0 = only "
        "max_rounds ends it): a problem the model cannot write calls for stops costing samples.",
    )
    mutation_fill: bool = setting(
        False,
        "When the rounds end with fewer valid tests than asked, fill the rest with type-preserving "
        "mutations of the kept inputs (kind `mutation`, no expected output). Off by default: on the "
        "default model's pools it raised the consensus confidence without making picks more right "
        "(bench/consensus.py); with it on, raise min_confidence (0.98 measured).",
    )

    def validate(self) -> None:
        super().validate()
        for name in ("samples_per_round", "max_rounds", "max_tokens", "concurrency"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("seed_lines", "stall_rounds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_rounds > MAX_ROUNDS:
            raise ConfigError(f"max_rounds: must be <= {MAX_ROUNDS}, got {self.max_rounds}")
        if math.isnan(self.boundary_ratio) or not 0.0 <= self.boundary_ratio <= 1.0:
            raise ConfigError(f"boundary_ratio: must be in [0, 1], got {self.boundary_ratio}")


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
                f"problem.entry_point: must be a Python identifier, got {shown(problem.entry_point)}"
            )
        if problem.arity < 1:
            raise InvalidArgument(f"problem.arity: must be >= 1, got {problem.arity}")
        if not problem.prompt:
            raise InvalidArgument("problem.prompt: must not be empty")
        if request.count < 1 or request.count > MAX_COUNT:
            raise InvalidArgument(f"count: must be in 1..{MAX_COUNT}, got {request.count}")
        if not 0 <= request.max_rounds <= MAX_ROUNDS:
            raise InvalidArgument(f"max_rounds: must be in 0..{MAX_ROUNDS}, got {request.max_rounds}")
        response = testsynth_pb2.SynthesizeTestsResponse(
            iteration_id=request.iteration_id, problem_id=problem.problem_id
        )
        # The annotations, from the signature line or else the skeleton; None = arity checks only.
        signature = core.problem_signature(problem.signature, problem.prompt, problem.entry_point)
        response.types_checked = signature is not None and len(signature.params) == problem.arity
        ratio = self.cfg.boundary_ratio
        quotas = core.kind_quotas(request.count, ratio)
        pool, _ = core.dedupe_tests(
            core.docstring_tests(problem.prompt, problem.entry_point, problem.arity, signature)
        )
        stalled = 0  # rounds in a row that added no new test
        for round_index in range(request.max_rounds or self.cfg.max_rounds):
            split = core.round_request(
                pool, quotas, self.cfg.samples_per_round, stalled, self.cfg.stall_rounds
            )
            if not split:
                break
            pool_before = len(pool)
            # One request per kind still short, sent at once so the sampler batches them together.
            kinds = list(split)
            generations = await asyncio.gather(
                *(
                    self._generate(
                        request,
                        k,
                        split[k],
                        signature,
                        core.seed_tests(pool, k, self.cfg.seed_lines, round_index),
                    )
                    for k in kinds
                )
            )
            for kind, generation in zip(kinds, generations, strict=True):
                for completion in generation.completions:
                    report = core.parse_tests(
                        completion.text,
                        problem.entry_point,
                        problem.arity,
                        core.calls_prefix(problem.entry_point),
                        signature,
                        kind,
                        self.cfg.repair_lines,
                    )
                    rejected = report.rejected.total()
                    response.generated += len(report.tests) + rejected
                    response.rejected += rejected
                    for reason, n in report.rejected.items():
                        response.rejected_by_reason[reason] += n
                    for reason, n in report.guesses_dropped.items():
                        response.guesses_dropped[reason] += n
                    for repair, n in report.repaired.items():
                        response.repaired[repair] += n
                    pool, removed = core.dedupe_tests([*pool, *report.tests])
                    response.duplicates += removed
            stalled = stalled + 1 if len(pool) == pool_before else 0
        # Pure; milliseconds at 100 tests, seconds at MAX_COUNT with inputs near the size limit.
        kept = await asyncio.to_thread(
            core.select_tests,
            pool,
            request.count,
            ratio,
            problem.arity,
            signature,
            problem.problem_id,
            self.cfg.mutation_fill,
        )
        response.mutated = sum(t.kind == core.MUTATION for t in kept)
        TESTS.labels(verdict="kept").inc(len(kept) - response.mutated)
        TESTS.labels(verdict="mutation").inc(response.mutated)
        TESTS.labels(verdict="rejected").inc(response.rejected)
        TESTS.labels(verdict="duplicate").inc(response.duplicates)
        response.tests.extend(
            common_pb2.TestCase(
                test_id=core.make_test_id(problem.problem_id, t.args_literal),
                args_literal=t.args_literal,
                expected_literal=t.expected_literal,
                kind=t.kind,
            )
            for t in kept
        )
        log.info(
            "tests for %s: %d kept (%d boundary) of %d written, %d mutations added; rejected %s; "
            "repaired %s; duplicates %d",
            problem.problem_id,
            len(kept) - response.mutated,
            sum(t.kind == core.BOUNDARY for t in kept),
            response.generated,
            response.mutated,
            dict(response.rejected_by_reason),
            dict(response.repaired),
            response.duplicates,
        )
        return response

    async def _generate(
        self,
        request: testsynth_pb2.SynthesizeTestsRequest,
        kind: str,
        n: int,
        signature: core.Signature | None,
        seeds: Sequence[core.ParsedTest],
    ) -> sampler_pb2.GenerateResponse:
        problem = request.problem
        prompt = core.build_tests_prompt(
            problem.prompt, problem.entry_point, problem.arity, kind, signature, seeds
        )
        return await sampler_client.generate(
            self.bus.nc,
            sampler_pb2.GenerateRequest(
                prompt=prompt,
                n=n,
                temperature=request.temperature or self.cfg.temperature,
                max_tokens=request.max_tokens or self.cfg.max_tokens,
                stop=core.TESTS_STOP,
                model_version=request.model_version,
            ),
            self.cfg.sampler_timeout_s,
        )


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
