"""Clusterer service: gRPC Cluster + the JetStream worker, around core.select."""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc
from prometheus_client import Counter, Histogram

from services.clusterer import adaptive, core
from ucoder_common.bus import Bus, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import InvalidArgument, rpc
from ucoder_common.pb import clusterer_pb2, clusterer_pb2_grpc, common_pb2
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import MAX_SAMPLES_PER_PROBLEM, shown

SELECTIONS = Counter(
    "ucoder_clusterer_selections", "Problems decided by the clusterer, by decision.", ["decision"]
)
SAMPLING_DECISIONS = Counter(
    "ucoder_clusterer_sampling_decisions",
    "Adaptive sampling decisions after a round, by reason (uncertain = sample another round).",
    ["reason"],
)
ABSTENTIONS = Counter(
    "ucoder_clusterer_abstentions",
    "Picks withheld by an abstention rule (trivial_body, near_constant, min_confidence, min_share), by rule.",
    ["rule"],
)
for _rule in core.Abstention:
    ABSTENTIONS.labels(rule=_rule.value)
CLUSTER_SIZE = Histogram(
    "ucoder_clusterer_selected_cluster_size",
    "Size of the largest eligible cluster per problem.",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128),
)

KIND_NAMES = {
    common_pb2.OUTCOME_KIND_RETURNED: "returned",
    common_pb2.OUTCOME_KIND_RAISED: "raised",
    common_pb2.OUTCOME_KIND_TIMEOUT: "timeout",
    common_pb2.OUTCOME_KIND_MEMORY: "memory",
    common_pb2.OUTCOME_KIND_OUTPUT_LIMIT: "output_limit",
    common_pb2.OUTCOME_KIND_COMPILE_ERROR: "compile_error",
    common_pb2.OUTCOME_KIND_CRASHED: "crashed",
}
RULES = tuple(rule.value for rule in core.SelectionRule)
MODE_NAMES = {
    common_pb2.SIGNATURE_MODE_UNSPECIFIED: core.SignatureMode.OUTPUT,
    common_pb2.SIGNATURE_MODE_OUTPUT: core.SignatureMode.OUTPUT,
    common_pb2.SIGNATURE_MODE_PASS: core.SignatureMode.PASS,
}


@dataclass
class ClustererConfig(ServiceConfig):
    """Consensus clustering and selection of candidate solutions."""

    default_rho: float = setting(0.8, "Reliability filter e(r) >= rho when a request leaves rho at 0.")
    default_tau: int = setting(2, "Minimum cluster size when a request leaves tau at 0.")
    reject_constant: bool = setting(
        True,
        "Skip clusters that return one constant value on every input (output mode) or pass no test "
        "(pass mode).",
    )
    default_selection_rule: str = setting(
        core.SelectionRule.PAPER.value,
        "Selection rule when a request leaves it empty: paper, random, cluster, low_ppl, success_rate.",
    )
    # Calibrated by bench/consensus.py: the least threshold with >= 90% precision both on the
    # default model's own pools and on 161 known-answer pools (README, "Consensus benchmark").
    default_min_confidence: float = setting(
        core.DEFAULT_MIN_CONFIDENCE,
        "Abstain below this Theorem 2.4 confidence when a request leaves min_confidence unset "
        "(0 = never; see docs/design.md).",
    )
    near_constant: float = setting(
        core.DEFAULT_NEAR_CONSTANT,
        "Abstain when the pick returns one value on at least this share of the tests (0 = never).",
    )
    min_share: float = setting(
        0.0,
        "Abstain when the picked cluster holds less than this share of all candidates of the problem "
        "(0 = never). Off by default; at 128 samples of the default model, the picks that cleared "
        "min_confidence 0.95 and were wrong held 5-12% of the samples (README, consensus benchmark).",
    )
    reject_trivial: bool = setting(
        True,
        "Abstain when every member of the picked cluster is a stub (pass, raise, return a constant "
        "or a parameter).",
    )
    concurrency: int = setting(4, "Jobs handled at once.")

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.default_rho <= 1.0:
            raise ConfigError(f"default_rho: must be in [0, 1], got {self.default_rho}")
        if self.default_tau < 1:
            raise ConfigError(f"default_tau: must be >= 1, got {self.default_tau}")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency: must be >= 1, got {self.concurrency}")
        if self.default_selection_rule not in RULES:
            raise ConfigError(
                f"default_selection_rule: must be one of {list(RULES)}, got {self.default_selection_rule!r}"
            )
        for name in ("default_min_confidence", "near_constant", "min_share"):
            value = getattr(self, name)
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1], got {value}")


def to_scored(request: clusterer_pb2.ClusterRequest) -> list[core.ScoredCandidate]:
    """Join candidates with their results by candidate_id (a candidate without results scores 0)."""
    results = {r.candidate_id: r for r in request.results}
    scored = []
    for cand in request.candidates:
        result = results.get(cand.candidate_id)
        outcomes = tuple(
            core.Outcome(
                kind=KIND_NAMES.get(o.kind, "crashed"),
                value_digest=o.value_digest,
                exception_type=o.exception_type,
                passed=o.passed,
            )
            for o in (result.outcomes if result is not None else [])
        )
        scored.append(
            core.ScoredCandidate(
                candidate_id=cand.candidate_id,
                code=cand.code,
                outcomes=outcomes,
                cumulative_logprob=cand.cumulative_logprob,
                num_tokens=cand.num_tokens,
            )
        )
    return scored


def cluster(request: clusterer_pb2.ClusterRequest, cfg: ClustererConfig) -> clusterer_pb2.ClusterResponse:
    rho = request.rho or cfg.default_rho
    tau = request.tau or cfg.default_tau
    if not (0.0 <= rho <= 1.0) or math.isnan(rho):
        raise InvalidArgument(f"rho: must be in [0, 1], got {request.rho}")
    if not 1 <= tau <= MAX_SAMPLES_PER_PROBLEM:
        raise InvalidArgument(f"tau: must be in 1..{MAX_SAMPLES_PER_PROBLEM}, got {request.tau}")
    if request.round < 0:
        raise InvalidArgument(f"round: must be >= 0, got {request.round}")
    if request.signature_mode not in MODE_NAMES:
        raise InvalidArgument(f"signature_mode: unknown value {request.signature_mode}")
    rule = request.selection_rule or cfg.default_selection_rule
    if rule not in RULES:
        raise InvalidArgument(
            f"selection_rule: must be one of {list(RULES)}, got {shown(request.selection_rule)}"
        )
    min_confidence = (
        request.min_confidence if request.HasField("min_confidence") else cfg.default_min_confidence
    )
    if math.isnan(min_confidence) or not 0.0 <= min_confidence <= 1.0:
        raise InvalidArgument(f"min_confidence: must be in [0, 1], got {request.min_confidence}")
    known = {c.candidate_id for c in request.candidates}
    for result in request.results:
        if result.candidate_id not in known:
            raise InvalidArgument(
                f"results: candidate_id {shown(result.candidate_id)} is not among candidates"
            )
    if not 0 <= request.budget <= MAX_SAMPLES_PER_PROBLEM:
        raise InvalidArgument(f"budget: must be in 0..{MAX_SAMPLES_PER_PROBLEM}, got {request.budget}")
    policy = sampling_policy(request.sampling, request.budget) if request.budget else None
    scored = to_scored(request)
    mode = MODE_NAMES[request.signature_mode]
    decision = core.select(
        scored,
        rho=rho,
        tau=tau,
        mode=mode,
        reject_constant=cfg.reject_constant,
        rule=rule,
        min_confidence=min_confidence,
        near_constant=cfg.near_constant,
        reject_trivial=cfg.reject_trivial,
        min_share=cfg.min_share,
        problem_id=request.problem_id,
    )
    response = clusterer_pb2.ClusterResponse(round=request.round)
    if policy is not None:
        state = adaptive.observe(scored, rho=rho, tau=tau, mode=mode, reject_constant=cfg.reject_constant)
        more = adaptive.decide(policy, state)
        response.sample_more = not more.stop
        response.next_round = more.next_round if not more.stop else 0
        response.sampling_reason = str(more.reason)
        response.p_change = more.p_change
        SAMPLING_DECISIONS.labels(reason=str(more.reason)).inc()
    SELECTIONS.labels(decision="selected" if decision.selected else "none").inc()
    if decision.abstained:
        ABSTENTIONS.labels(rule=decision.abstained).inc()
    if decision.cluster_size:
        CLUSTER_SIZE.observe(decision.cluster_size)
    response.iteration_id = request.iteration_id
    response.problem_id = request.problem_id
    response.selection.CopyFrom(
        common_pb2.Selection(
            problem_id=request.problem_id,
            selected=decision.selected,
            candidate_id=decision.candidate_id,
            code=decision.code,
            cluster_size=decision.cluster_size,
            num_clusters=decision.num_clusters,
            eligible=decision.eligible,
            execution_success=decision.execution_success,
            reason=decision.reason,
            cluster_sizes=list(decision.cluster_sizes),
            confidence=decision.confidence,
            rule=decision.rule,
            margin=decision.margin,
            abstained=decision.abstained,
        )
    )
    return response


def sampling_policy(policy: common_pb2.SamplingPolicy, budget: int) -> adaptive.AdaptivePolicy:
    """The request's sampling policy with defaults filled in; InvalidArgument names the field."""
    filled = adaptive.AdaptivePolicy(
        mode=policy.mode or "adaptive",
        round_size=policy.round_size or adaptive.AdaptivePolicy.round_size,
        budget=budget,
        risk=policy.risk or adaptive.AdaptivePolicy.risk,
    )
    try:
        filled.validate()
    except ValueError as exc:
        raise InvalidArgument(f"sampling.{exc}") from None
    return filled


class ClustererServicer(clusterer_pb2_grpc.ClustererServiceServicer):
    def __init__(self, cfg: ClustererConfig) -> None:
        self.cfg = cfg

    @rpc
    async def Cluster(
        self, request: clusterer_pb2.ClusterRequest, context: grpc.aio.ServicerContext
    ) -> clusterer_pb2.ClusterResponse:
        return cluster(request, self.cfg)


async def build(cfg: ClustererConfig, bus: Bus) -> ServiceParts:
    async def process(request: clusterer_pb2.ClusterRequest) -> clusterer_pb2.ClusterResponse:
        return cluster(request, cfg)

    worker = stage_worker(
        bus,
        "clusterer",
        clusterer_pb2.ClusterRequest,
        clusterer_pb2.ClusterResponse,
        process,
        concurrency=cfg.concurrency,
    )
    binding = GrpcBinding(
        clusterer_pb2_grpc.add_ClustererServiceServicer_to_server,
        ClustererServicer(cfg),
        "ucoder.v1.ClustererService",
    )
    return ServiceParts(bindings=[binding], workers=[worker])
