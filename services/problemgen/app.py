"""Problem generation service: problem space probing, stages 1-3, with the serving model.

One request (an iteration's problems): the model proposes a pool of categories; then, per
round, the round's categories are planned (steered toward under-represented ones when
diversity drops), problems are generated in the template (one prompt per category),
parsed, deduplicated (exact and near-duplicates), rated by the quality oracle (low-rated
ones dropped) and given the model's own skeleton (or the rendered one when the model's
is unusable), until the requested count is reached or the rounds run out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from services.problemgen import core
from ucoder_common import diversity, sampler_client
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, rpc
from ucoder_common.pb import common_pb2, problemgen_pb2, problemgen_pb2_grpc, sampler_pb2
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import MAX_COMPLETION_TOKENS, check_id

log = logging.getLogger(__name__)

PROBLEMS = Counter("ucoder_problemgen_problems", "Generated problems, by verdict.", ["verdict"])
SKELETONS = Counter(
    "ucoder_problemgen_skeletons", "Skeletons of returned problems, by who wrote them.", ["source"]
)
RATINGS = Counter("ucoder_problemgen_ratings", "Quality oracle answers, by outcome.", ["outcome"])
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _verdict in ("kept", "rejected_parse", "rejected_compile", "rejected_quality", "rejected_duplicate"):
    PROBLEMS.labels(verdict=_verdict)
for _source in ("model", "fallback"):
    SKELETONS.labels(source=_source)
for _outcome in ("rated", "unrated"):
    RATINGS.labels(outcome=_outcome)

MAX_COUNT = 10_000
# Upper bounds of a request's settings (0 = the service's own).
MAX_ROUNDS = 1_000
MAX_TOKENS = MAX_COMPLETION_TOKENS


@dataclass
class ProblemGenConfig(ServiceConfig):
    """Invents programming problems with the serving model (problem space probing, stages 1-3)."""

    samples_per_round: int = setting(
        8, "Problem completions asked of the sampler per round, split over the round's category prompts."
    )
    categories_per_round: int = setting(
        4, "Category prompts per round (each names one category of the pool)."
    )
    max_rounds: int = setting(
        8, "Rounds before giving up on reaching the requested count, when the request sets none."
    )
    # 0.7 rather than 1.0: on the default model 13 of 16 template completions parsed at 0.7
    # against 10 of 16 at 1.0; the variety comes from the categories.
    temperature: float = setting(
        0.7, "Sampling temperature for categories and problems, when the request sets none."
    )
    max_tokens: int = setting(256, "Token budget of one problem, when the request sets none.")
    category_samples: int = setting(4, "Completions of the category prompt (the pool is their union).")
    category_max_tokens: int = setting(96, "Token budget of one completion of the category prompt.")
    max_categories: int = setting(24, "Largest category pool kept from the model's proposals.")
    min_categories: int = setting(
        6, "A pool with fewer categories than this is topped up with built-in ones (at most 16)."
    )
    rate: bool = setting(True, "Run the quality oracle (stage 2); off: no problem is rated or dropped.")
    rating_samples: int = setting(3, "Reviews sampled per problem; the score is their mean.")
    rating_temperature: float = setting(0.7, "Sampling temperature of the reviews.")
    rating_max_tokens: int = setting(96, "Token budget of one review.")
    min_quality: float = setting(
        4.0,
        "Problems the oracle scores below this (1-10 scale) are dropped; an unreadable review counts "
        f"as {core.NEUTRAL_SCORE}; 0 keeps all.",
    )
    skeletons: bool = setting(
        True, "Ask the model for each problem's skeleton (stage 3); off: skeletons are rendered."
    )
    skeleton_temperature: float = setting(0.0, "Sampling temperature of the skeleton (0 = greedy).")
    skeleton_max_tokens: int = setting(256, "Token budget of one skeleton.")
    near_duplicate_jaccard: float = setting(
        diversity.NEAR_DUPLICATE_JACCARD,
        "Descriptions whose character 5-gram Jaccard similarity reaches this are near-duplicates; "
        "1 removes only identical ones.",
    )
    max_category_share: float = setting(
        0.2, "Steer when one category holds more than this share of the problems kept (the paper: 20%)."
    )
    min_category_coverage: float = setting(
        0.5, "Steer when fewer than this share of the categories the kept problems could cover are covered."
    )
    max_parallel_requests: int = setting(16, "Sampler requests (reviews, skeletons) in flight at once.")
    sampler_timeout_s: float = setting(600.0, "How long to wait for one sampler answer.")

    def validate(self) -> None:
        super().validate()
        for name in (
            "samples_per_round",
            "categories_per_round",
            "max_rounds",
            "max_tokens",
            "category_samples",
            "category_max_tokens",
            "max_categories",
            "min_categories",
            "rating_samples",
            "rating_max_tokens",
            "skeleton_max_tokens",
            "max_parallel_requests",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.categories_per_round > self.samples_per_round:
            raise ConfigError(
                f"categories_per_round: must be <= samples_per_round ({self.samples_per_round}), "
                f"got {self.categories_per_round}"
            )
        if self.min_categories > min(self.max_categories, len(core.SEED_CATEGORIES)):
            raise ConfigError(
                f"min_categories: must be <= max_categories and <= {len(core.SEED_CATEGORIES)}, "
                f"got {self.min_categories}"
            )
        for name in ("temperature", "rating_temperature", "skeleton_temperature"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.min_quality <= core.MAX_SCORE:
            raise ConfigError(f"min_quality: must be in 0..{core.MAX_SCORE:g}, got {self.min_quality}")
        if not 0.0 < self.near_duplicate_jaccard <= 1.0:
            raise ConfigError(f"near_duplicate_jaccard: must be in (0, 1], got {self.near_duplicate_jaccard}")
        if not 0.0 < self.max_category_share <= 1.0:
            raise ConfigError(f"max_category_share: must be in (0, 1], got {self.max_category_share}")
        if not 0.0 <= self.min_category_coverage <= 1.0:
            raise ConfigError(f"min_category_coverage: must be in [0, 1], got {self.min_category_coverage}")
        if self.sampler_timeout_s <= 0:
            raise ConfigError(f"sampler_timeout_s: must be > 0, got {self.sampler_timeout_s}")


def seed_for(*parts: object) -> int:
    """A deterministic seed from the parts: a redelivered job asks the same prompts."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def round_seed(iteration_id: str, round_index: int) -> int:
    """The seed of one round of an iteration."""
    return seed_for(iteration_id, round_index)


def to_proto(problem: core.ParsedProblem) -> common_pb2.Problem:
    return common_pb2.Problem(
        problem_id=problem.problem_id,
        entry_point=problem.entry_point,
        signature=problem.signature,
        docstring=problem.docstring,
        prompt=problem.prompt,
        arity=problem.arity,
        title=problem.title,
        description=problem.description,
        example_input=problem.example_input,
        example_output=problem.example_output,
        hint=problem.hint,
        category=problem.category,
        quality_score=problem.quality_score,
        difficulty=problem.difficulty,
        rating_summary=problem.rating_summary,
        skeleton_from_model=problem.skeleton_from_model,
    )


def diversity_proto(
    problems: Sequence[core.ParsedProblem], pool: Sequence[str]
) -> problemgen_pb2.ProblemDiversity:
    report = diversity.diversity_report([p.text for p in problems], [p.category for p in problems], pool)
    return problemgen_pb2.ProblemDiversity(
        problems=report.problems,
        mean_lexical_entropy=report.mean_lexical_entropy,
        distinct_1=report.distinct_1,
        distinct_2=report.distinct_2,
        category_coverage=report.category_coverage,
        category_entropy=report.category_entropy,
        max_category_share=report.max_category_share,
        pool_size=report.pool_size,
        category_counts=report.category_counts,
    )


def check_generate_request(request: problemgen_pb2.GenerateProblemsRequest) -> None:
    """Raise InvalidArgument naming the first field of ``request`` out of range (0 = the service's)."""
    if request.count < 1 or request.count > MAX_COUNT:
        raise InvalidArgument(f"count: must be in 1..{MAX_COUNT}, got {request.count}")
    check_id("iteration_id", request.iteration_id, optional=True)
    # Bounded so that one job cannot hold the stage's worker for good (found from outside:
    # max_rounds 2^31-1 made 98k sampler requests while the next job waited).
    for name, limit in (("max_rounds", MAX_ROUNDS), ("max_tokens", MAX_TOKENS)):
        value = getattr(request, name)
        if not 0 <= value <= limit:
            raise InvalidArgument(f"{name}: must be in 0..{limit} (0 = the service's), got {value}")
    if not math.isfinite(request.temperature) or not 0 <= request.temperature <= 2:
        raise InvalidArgument(
            f"temperature: must be in [0, 2] (0 = the service's), got {request.temperature}"
        )


class ProblemGenerator:
    def __init__(self, cfg: ProblemGenConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.requests = asyncio.Semaphore(cfg.max_parallel_requests)

    async def _sample(
        self,
        request: problemgen_pb2.GenerateProblemsRequest,
        prompt: str,
        n: int,
        temperature: float,
        max_tokens: int,
        stop: list[str],
    ) -> list[str]:
        async with self.requests:
            generation = await sampler_client.generate(
                self.bus.nc,
                sampler_pb2.GenerateRequest(
                    prompt=prompt,
                    n=n,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    stop=stop,
                    model_version=request.model_version,
                ),
                self.cfg.sampler_timeout_s,
            )
        return [completion.text for completion in generation.completions]

    async def _category_pool(
        self, request: problemgen_pb2.GenerateProblemsRequest, temperature: float
    ) -> tuple[list[str], int]:
        texts = await self._sample(
            request,
            core.build_category_prompt(seed_for(request.iteration_id, "categories")),
            self.cfg.category_samples,
            temperature,
            self.cfg.category_max_tokens,
            core.CATEGORY_STOP,
        )
        return core.category_pool(
            [core.parse_categories(text) for text in texts], self.cfg.max_categories, self.cfg.min_categories
        )

    async def _generate_round(
        self,
        request: problemgen_pb2.GenerateProblemsRequest,
        categories: list[str],
        seed: int,
        temperature: float,
        max_tokens: int,
        response: problemgen_pb2.GenerateProblemsResponse,
    ) -> list[core.ParsedProblem]:
        """Stage 1: one prompt per category; the parsed problems, rejections counted."""
        shares = core.split_samples(self.cfg.samples_per_round, len(categories))
        prompts = [
            (category, core.build_problem_prompt(category, seed + index), n)
            for index, (category, n) in enumerate(zip(categories, shares, strict=True))
            if n > 0
        ]
        answers = await asyncio.gather(
            *(
                self._sample(request, prompt, n, temperature, max_tokens, core.PROBLEM_STOP)
                for _, prompt, n in prompts
            )
        )
        parsed: list[core.ParsedProblem] = []
        for (category, _, _), texts in zip(prompts, answers, strict=True):
            for text in texts:
                response.generated += 1
                result = core.parse_problem(text, category=category)
                if isinstance(result, core.ProblemRejection):
                    if result.kind == "parse":
                        response.rejected_parse += 1
                    else:
                        response.rejected_compile += 1
                    PROBLEMS.labels(verdict=f"rejected_{result.kind}").inc()
                else:
                    parsed.append(result)
        return parsed

    async def _rate(
        self,
        request: problemgen_pb2.GenerateProblemsRequest,
        problems: list[core.ParsedProblem],
        pool: list[str],
        response: problemgen_pb2.GenerateProblemsResponse,
    ) -> list[core.ParsedProblem]:
        """Stage 2: each problem's reviews; the problems scoring at least min_quality, rated."""

        async def rate_one(problem: core.ParsedProblem) -> core.ParsedProblem:
            texts = await self._sample(
                request,
                core.build_rating_prompt(problem, seed_for(problem.problem_id, "rating")),
                self.cfg.rating_samples,
                self.cfg.rating_temperature,
                self.cfg.rating_max_tokens,
                core.RATING_STOP,
            )
            rating = core.aggregate_ratings(core.parse_rating(text) for text in texts)
            return core.apply_rating(problem, rating, pool)

        rated = await asyncio.gather(*(rate_one(problem) for problem in problems))
        kept: list[core.ParsedProblem] = []
        for problem in rated:
            RATINGS.labels(outcome="rated" if problem.rated else "unrated").inc()
            if not problem.rated:
                response.unrated += 1
            if problem.quality_score < self.cfg.min_quality:
                response.rejected_quality += 1
                PROBLEMS.labels(verdict="rejected_quality").inc()
            else:
                kept.append(problem)
        return kept

    async def _skeletons(
        self, request: problemgen_pb2.GenerateProblemsRequest, problems: list[core.ParsedProblem]
    ) -> list[core.ParsedProblem]:
        """Stage 3: each problem with the model's skeleton, or unchanged when that is unusable."""

        async def skeleton_one(problem: core.ParsedProblem) -> core.ParsedProblem:
            texts = await self._sample(
                request,
                core.build_skeleton_prompt(problem, seed_for(problem.problem_id, "skeleton")),
                1,
                self.cfg.skeleton_temperature,
                self.cfg.skeleton_max_tokens,
                core.SKELETON_STOP,
            )
            result = core.parse_skeleton(texts[0] if texts else "", problem)
            if isinstance(result, core.ProblemRejection):
                log.debug(
                    "model skeleton unusable",
                    extra={"problem_id": problem.problem_id, "reason": result.reason},
                )
                return problem
            return result

        return list(await asyncio.gather(*(skeleton_one(problem) for problem in problems)))

    async def generate(
        self, request: problemgen_pb2.GenerateProblemsRequest
    ) -> problemgen_pb2.GenerateProblemsResponse:
        check_generate_request(request)
        cfg = self.cfg
        temperature = request.temperature or cfg.temperature
        max_tokens = request.max_tokens or cfg.max_tokens
        response = problemgen_pb2.GenerateProblemsResponse(iteration_id=request.iteration_id)
        pool, proposed = await self._category_pool(request, temperature)
        response.categories.extend(pool)
        response.categories_proposed = proposed
        kept: list[core.ParsedProblem] = []
        rounds = request.max_rounds or cfg.max_rounds
        for round_index in range(rounds):
            if len(kept) >= request.count:
                break
            seed = round_seed(request.iteration_id, round_index)
            counts = diversity.category_counts(p.category for p in kept)
            plan = core.plan_categories(
                pool,
                counts,
                cfg.categories_per_round,
                seed,
                cfg.max_category_share,
                cfg.min_category_coverage,
            )
            if plan.steered:
                response.steered_rounds += 1
                log.info(
                    "categories steered",
                    extra={
                        "iteration_id": request.iteration_id,
                        "reason": plan.reason,
                        "categories": plan.categories,
                    },
                )
            fresh = await self._generate_round(
                request, plan.categories, seed, temperature, max_tokens, response
            )
            merged, removed = core.dedupe_problems([*kept, *fresh])
            fresh, near = core.remove_near_duplicates(kept, merged[len(kept) :], cfg.near_duplicate_jaccard)
            response.duplicates += removed
            response.near_duplicates += near
            PROBLEMS.labels(verdict="rejected_duplicate").inc(removed + near)
            # Reviews and skeletons are the costly part: review at most twice the problems still
            # needed (about a third fail review on the default model), write skeletons only for
            # those needed. The surplus of a round is not used (the request stops at count).
            need = request.count - len(kept)
            if cfg.rate and fresh:
                fresh = await self._rate(request, fresh[: 2 * need], pool, response)
            fresh = fresh[:need]
            if cfg.skeletons and fresh:
                fresh = await self._skeletons(request, fresh)
            # A model skeleton changes the problem id: two problems may now share one.
            kept, removed = core.dedupe_problems([*kept, *fresh])
            response.duplicates += removed
            PROBLEMS.labels(verdict="rejected_duplicate").inc(removed)
        kept = kept[: request.count]
        PROBLEMS.labels(verdict="kept").inc(len(kept))
        response.skeletons_from_model = sum(p.skeleton_from_model for p in kept)
        response.skeletons_fallback = len(kept) - response.skeletons_from_model if cfg.skeletons else 0
        SKELETONS.labels(source="model").inc(response.skeletons_from_model)
        SKELETONS.labels(source="fallback").inc(response.skeletons_fallback)
        response.problems.extend(to_proto(p) for p in kept)
        response.diversity.CopyFrom(diversity_proto(kept, pool))
        log.info(
            "problems generated",
            extra={
                "iteration_id": request.iteration_id,
                "kept": len(kept),
                "generated": response.generated,
                "rejected_parse": response.rejected_parse,
                "rejected_compile": response.rejected_compile,
                "duplicates": response.duplicates,
                "near_duplicates": response.near_duplicates,
                "rejected_quality": response.rejected_quality,
                "unrated": response.unrated,
                "skeletons_from_model": response.skeletons_from_model,
                "categories": len(pool),
                "categories_proposed": proposed,
                "steered_rounds": response.steered_rounds,
                "lexical_entropy": round(response.diversity.mean_lexical_entropy, 3),
                "category_coverage": round(response.diversity.category_coverage, 3),
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
