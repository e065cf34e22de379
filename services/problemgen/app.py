"""Problem generation service: asks the sampler for problems, parses, compiles, dedupes."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from services.problemgen import core
from ucoder_common import sampler_client
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, rpc
from ucoder_common.pb import common_pb2, problemgen_pb2, problemgen_pb2_grpc, sampler_pb2
from ucoder_common.service import GrpcBinding, ServiceParts

log = logging.getLogger(__name__)

PROBLEMS = Counter("ucoder_problemgen_problems", "Generated problems, by verdict.", ["verdict"])
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _verdict in ("kept", "rejected_parse", "rejected_compile"):
    PROBLEMS.labels(verdict=_verdict)

MAX_COUNT = 10_000


@dataclass
class ProblemGenConfig(ServiceConfig):
    """Invents programming problems with the serving model."""

    samples_per_round: int = setting(8, "Completions asked of the sampler per round (one prompt per round).")
    max_rounds: int = setting(
        8, "Rounds before giving up on reaching the requested count, when the request sets none."
    )
    temperature: float = setting(1.0, "Sampling temperature for problems, when the request sets none.")
    max_tokens: int = setting(192, "Token budget of one problem, when the request sets none.")
    sampler_timeout_s: float = setting(600.0, "How long to wait for one sampler answer.")

    def validate(self) -> None:
        super().validate()
        for name in ("samples_per_round", "max_rounds", "max_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")


def round_seed(iteration_id: str, round_index: int) -> int:
    """A deterministic seed per (iteration, round): a redelivered job asks the same prompts."""
    digest = hashlib.sha256(f"{iteration_id}:{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def to_proto(problem: core.ParsedProblem) -> common_pb2.Problem:
    return common_pb2.Problem(
        problem_id=problem.problem_id,
        entry_point=problem.entry_point,
        signature=problem.signature,
        docstring=problem.docstring,
        prompt=problem.prompt,
        arity=problem.arity,
    )


class ProblemGenerator:
    def __init__(self, cfg: ProblemGenConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus

    async def generate(
        self, request: problemgen_pb2.GenerateProblemsRequest
    ) -> problemgen_pb2.GenerateProblemsResponse:
        if request.count < 1 or request.count > MAX_COUNT:
            raise InvalidArgument(f"count: must be in 1..{MAX_COUNT}, got {request.count}")
        if request.max_rounds < 0 or request.max_tokens < 0 or request.temperature < 0:
            raise InvalidArgument("max_rounds, max_tokens and temperature: must be >= 0")
        response = problemgen_pb2.GenerateProblemsResponse(iteration_id=request.iteration_id)
        kept: list[core.ParsedProblem] = []
        rounds = request.max_rounds or self.cfg.max_rounds
        for round_index in range(rounds):
            if len(kept) >= request.count:
                break
            generation = await sampler_client.generate(
                self.bus.nc,
                sampler_pb2.GenerateRequest(
                    prompt=core.build_problem_prompt(round_seed(request.iteration_id, round_index)),
                    n=self.cfg.samples_per_round,
                    temperature=request.temperature or self.cfg.temperature,
                    max_tokens=request.max_tokens or self.cfg.max_tokens,
                    stop=core.PROBLEM_STOP,
                    model_version=request.model_version,
                ),
                self.cfg.sampler_timeout_s,
            )
            parsed: list[core.ParsedProblem] = []
            for completion in generation.completions:
                response.generated += 1
                result = core.parse_problem(completion.text)
                if isinstance(result, core.ProblemRejection):
                    if result.kind == "parse":
                        response.rejected_parse += 1
                    else:
                        response.rejected_compile += 1
                    PROBLEMS.labels(verdict=f"rejected_{result.kind}").inc()
                else:
                    parsed.append(result)
            kept, removed = core.dedupe_problems([*kept, *parsed])
            response.duplicates += removed
        kept = kept[: request.count]
        PROBLEMS.labels(verdict="kept").inc(len(kept))
        response.problems.extend(to_proto(p) for p in kept)
        log.info(
            "problems generated",
            extra={
                "iteration_id": request.iteration_id,
                "kept": len(kept),
                "generated": response.generated,
                "rejected_parse": response.rejected_parse,
                "rejected_compile": response.rejected_compile,
                "duplicates": response.duplicates,
            },
        )
        return response


class ProblemGenServicer(problemgen_pb2_grpc.ProblemGenServiceServicer):
    def __init__(self, generator: ProblemGenerator) -> None:
        self.generator = generator

    @rpc
    async def GenerateProblems(
        self, request: problemgen_pb2.GenerateProblemsRequest, context: grpc.aio.ServicerContext
    ) -> problemgen_pb2.GenerateProblemsResponse:
        return await self.generator.generate(request)


async def build(cfg: ProblemGenConfig, bus: Bus) -> ServiceParts:
    generator = ProblemGenerator(cfg, bus)
    worker = stage_worker(
        bus,
        "problemgen",
        problemgen_pb2.GenerateProblemsRequest,
        problemgen_pb2.GenerateProblemsResponse,
        generator.generate,
        concurrency=1,
        max_deliver=6,
        base_delay_s=5.0,
    )
    binding = GrpcBinding(
        problemgen_pb2_grpc.add_ProblemGenServiceServicer_to_server,
        ProblemGenServicer(generator),
        "ucoder.v1.ProblemGenService",
    )
    return ServiceParts(bindings=[binding], workers=[worker])
