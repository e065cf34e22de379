"""The clusterer's adaptive sampling answer (services.clusterer.app.cluster, pure)."""

from __future__ import annotations

import pytest

from services.clusterer.app import ClustererConfig, cluster
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import clusterer_pb2, common_pb2


def request(count: int, budget: int, **sampling: object) -> clusterer_pb2.ClusterRequest:
    """`count` candidates that all return the same values on 12 inputs (one behaviour, enough
    tests for the default min_confidence)."""
    req = clusterer_pb2.ClusterRequest(
        iteration_id="it",
        problem_id="p",
        budget=budget,
        round=2,
        sampling=common_pb2.SamplingPolicy(**sampling),
    )
    for i in range(count):
        req.candidates.add(
            candidate_id=f"c{i}", code="def f(x):\n    return x + 1\n", cumulative_logprob=-1.0
        )
        result = req.results.add(candidate_id=f"c{i}")
        for value in "abcdefghijkl":
            result.outcomes.add(kind=common_pb2.OUTCOME_KIND_RETURNED, value_digest=value)
    return req


CFG = ClustererConfig()


def test_warm_up_asks_for_another_round() -> None:
    response = cluster(request(4, budget=32, round_size=4), CFG)
    assert response.round == 2  # echoed: the orchestrator drops answers of earlier rounds
    # The decision so far is reported either way: 4 unanimous samples are the pick, withheld
    # for now by the default confidence threshold (0.934 < 0.95 with 4 members).
    assert response.selection.cluster_size == 4 and not response.selection.selected
    assert response.selection.abstained == "min_confidence"
    assert response.sample_more and response.next_round == 4
    assert response.sampling_reason == "warmup"


def test_a_unanimous_cluster_settles_the_decision() -> None:
    response = cluster(request(16, budget=128), CFG)
    assert not response.sample_more and response.next_round == 0
    assert response.sampling_reason in ("confident", "certain") and response.p_change <= 0.1


def test_fixed_mode_samples_the_whole_budget() -> None:
    response = cluster(request(16, budget=128, mode="fixed"), CFG)
    assert response.sample_more and response.sampling_reason == "fixed"
    assert cluster(request(16, budget=16, mode="fixed"), CFG).sample_more is False


def test_without_a_budget_there_is_no_sampling_decision() -> None:
    response = cluster(request(4, budget=0), CFG)
    assert not response.sample_more and response.sampling_reason == ""


@pytest.mark.parametrize(
    ("sampling", "message"),
    [({"mode": "greedy"}, "sampling.mode"), ({"risk": 1.5}, "sampling.risk")],
)
def test_bad_policies_name_the_field(sampling: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match="^" + message):
        cluster(request(2, budget=8, **sampling), CFG)
    with pytest.raises(InvalidArgument, match=r"^budget"):
        cluster(request(2, budget=-1), CFG)
