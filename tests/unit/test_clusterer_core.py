"""Unit tests for services.clusterer.core (the hierarchical consensus selection)."""

from __future__ import annotations

import math

import pytest

from services.clusterer.core import (
    Outcome,
    ScoredCandidate,
    SelectionResult,
    SignatureMode,
    execution_success,
    perplexity,
    select,
    signature,
)


def ret(digest: str, passed: bool = False) -> Outcome:
    return Outcome(kind="returned", value_digest=digest, passed=passed)


def raised(exc: str = "ValueError") -> Outcome:
    return Outcome(kind="raised", exception_type=exc)


def cand(
    cid: str, outcomes: list[Outcome] | tuple[Outcome, ...], logprob: float = -1.0, tokens: int = 10
) -> ScoredCandidate:
    return ScoredCandidate(
        candidate_id=cid,
        code=f"# code of {cid}",
        outcomes=tuple(outcomes),
        cumulative_logprob=logprob,
        num_tokens=tokens,
    )


def outputs(*digests: str) -> list[Outcome]:
    return [ret(d) for d in digests]


# --- metrics -------------------------------------------------------------------------------


def test_execution_success() -> None:
    assert execution_success([]) == 0.0
    assert execution_success(outputs("a", "b")) == 1.0
    assert execution_success([ret("a"), raised(), Outcome("timeout"), ret("b")]) == 0.5
    assert execution_success([Outcome("compile_error")] * 3) == 0.0


def test_signature_output_mode() -> None:
    outcomes = [
        ret("d1"),
        raised("KeyError"),
        Outcome("timeout"),
        Outcome("memory"),
        Outcome("output_limit"),
        Outcome("crashed"),
    ]
    assert signature(outcomes, SignatureMode.OUTPUT) == (
        "d1",
        "!KeyError",
        "!timeout",
        "!memory",
        "!output_limit",
        "!crashed",
    )


def test_signature_pass_mode() -> None:
    outcomes = [ret("d1", passed=True), ret("d2", passed=False), raised()]
    assert signature(outcomes, SignatureMode.PASS) == ("1", "0", "0")
    assert signature(outcomes, SignatureMode("pass")) == ("1", "0", "0")


def test_perplexity() -> None:
    assert perplexity(cand("a", [], logprob=0.0, tokens=5)) == 1.0
    assert perplexity(cand("a", [], logprob=-2.0, tokens=4)) == pytest.approx(math.exp(0.5))
    # zero tokens: divide by 1
    assert perplexity(cand("a", [], logprob=-1.0, tokens=0)) == pytest.approx(math.e)
    assert perplexity(cand("a", [], logprob=-1e6, tokens=1)) == math.inf
    assert perplexity(cand("a", [], logprob=math.nan, tokens=1)) == math.inf


# --- select: basics -----------------------------------------------------------------------


def test_no_candidates() -> None:
    r = select([])
    assert not r.selected and r.reason == "no candidates"
    assert (r.cluster_size, r.num_clusters, r.eligible) == (0, 0, 0)


def test_no_tests() -> None:
    r = select([cand("a", []), cand("b", [])])
    assert not r.selected and r.reason == "no tests"


def test_largest_cluster_wins() -> None:
    cands = [
        cand("a1", outputs("1", "2", "3")),
        cand("a2", outputs("1", "2", "3")),
        cand("a3", outputs("1", "2", "3")),
        cand("b1", outputs("1", "2", "4")),
        cand("b2", outputs("1", "2", "4")),
        cand("c1", outputs("9", "2", "3")),
    ]
    r = select(cands)
    assert r.selected
    assert r.candidate_id.startswith("a")
    assert r.code == f"# code of {r.candidate_id}"
    assert r.cluster_size == 3
    assert r.num_clusters == 3
    assert r.eligible == 6
    assert r.cluster_sizes == (3, 2, 1)
    assert r.execution_success == 1.0
    assert r.reason == ""


def test_inside_cluster_lowest_perplexity_then_id() -> None:
    cands = [
        cand("x", outputs("1", "2"), logprob=-5.0),
        cand("y", outputs("1", "2"), logprob=-1.0),
        cand("z", outputs("1", "2"), logprob=-3.0),
    ]
    assert select(cands).candidate_id == "y"
    tied = [cand("q", outputs("1", "2")), cand("p", outputs("1", "2"))]
    assert select(tied).candidate_id == "p"


def test_inside_cluster_max_execution_success_before_perplexity() -> None:
    # PASS signatures equal, but one member raised once (e = 0.8) and is more fluent
    base = [ret("v", passed=True)] * 4
    cands = [
        cand("fluent", [*base, raised()], logprob=-0.1),
        cand("solid", [*base, ret("w", passed=False)], logprob=-9.0),
    ]
    r = select(cands, rho=0.8, mode=SignatureMode.PASS)
    assert r.candidate_id == "solid"
    assert r.execution_success == 1.0


# --- select: rho and tau --------------------------------------------------------------------


def test_rho_filters_unreliable_candidates() -> None:
    flaky = [ret("1"), raised(), raised(), ret("4"), ret("5")]  # e = 0.6
    cands = [cand(f"f{i}", flaky) for i in range(5)] + [
        cand("g1", outputs("1", "2", "3", "4", "5")),
        cand("g2", outputs("1", "2", "3", "4", "5")),
    ]
    r = select(cands, rho=0.8)
    assert r.selected and r.candidate_id.startswith("g")
    assert r.eligible == 2
    # with rho lowered, the flaky (but larger) cluster wins
    r_low = select(cands, rho=0.6)
    assert r_low.candidate_id.startswith("f")
    assert r_low.eligible == 7
    assert r_low.execution_success == pytest.approx(0.6)


def test_rho_boundary_is_inclusive() -> None:
    four_of_five = [ret("1"), ret("2"), ret("3"), ret("4"), raised()]
    r = select([cand("a", four_of_five), cand("b", four_of_five)], rho=0.8)
    assert r.selected and r.eligible == 2


def test_nothing_reaches_rho() -> None:
    cands = [cand("a", [raised(), raised()]), cand("b", [Outcome("timeout"), ret("1")])]
    r = select(cands, rho=0.8)
    assert not r.selected
    assert r.reason == "no candidate reached execution success rho=0.8"
    assert (r.eligible, r.cluster_size, r.num_clusters, r.cluster_sizes) == (0, 0, 0, ())


def test_tau() -> None:
    cands = [cand("a", outputs("1", "2")), cand("b", outputs("1", "3")), cand("c", outputs("1", "3"))]
    assert select(cands, tau=2).candidate_id in {"b", "c"}
    r = select(cands, tau=3)
    assert not r.selected
    assert r.reason == "largest cluster has size 2 < tau=3"
    assert r.cluster_size == 2
    assert r.cluster_sizes == (2, 1)
    assert r.num_clusters == 2
    assert r.candidate_id == "" and r.code == ""
    assert select(cands[:1], tau=1).candidate_id == "a"


def test_missing_outcomes_count_as_failures() -> None:
    # a candidate with fewer outcomes than the others must not look more reliable
    cands = [
        cand("short1", outputs("1")),
        cand("short2", outputs("1")),
        cand("full1", outputs("1", "2", "3", "4", "5")),
        cand("full2", outputs("1", "2", "3", "4", "5")),
    ]
    r = select(cands, rho=0.8)
    assert r.eligible == 2 and r.candidate_id.startswith("full")


@pytest.mark.parametrize("rho", [-0.1, 1.5, math.nan])
def test_invalid_rho(rho: float) -> None:
    with pytest.raises(ValueError, match="rho"):
        select([cand("a", outputs("1"))], rho=rho)


@pytest.mark.parametrize("tau", [0, -3])
def test_invalid_tau(tau: int) -> None:
    with pytest.raises(ValueError, match="tau"):
        select([cand("a", outputs("1"))], tau=tau)


def test_invalid_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        select([cand("a", outputs("1"))], mode="hash")  # type: ignore[arg-type]


def test_invalid_arguments_are_checked_even_with_no_candidates() -> None:
    with pytest.raises(ValueError, match="tau"):
        select([], tau=0)


# --- select: ties ---------------------------------------------------------------------------


def test_tie_between_clusters_goes_to_higher_mean_execution_success() -> None:
    cands = [
        cand("lo1", [ret("1"), ret("2"), ret("3"), ret("4"), raised()]),
        cand("lo2", [ret("1"), ret("2"), ret("3"), ret("4"), raised()]),
        cand("hi1", outputs("1", "2", "3", "4", "9"), logprob=-50.0),
        cand("hi2", outputs("1", "2", "3", "4", "9"), logprob=-50.0),
    ]
    r = select(cands, rho=0.8)
    assert r.candidate_id.startswith("hi")
    assert r.cluster_sizes == (2, 2)


def test_tie_between_clusters_then_lower_mean_perplexity() -> None:
    cands = [
        cand("a1", outputs("1", "2"), logprob=-8.0),
        cand("a2", outputs("1", "2"), logprob=-8.0),
        cand("b1", outputs("1", "3"), logprob=-2.0),
        cand("b2", outputs("1", "3"), logprob=-2.0),
    ]
    assert select(cands).candidate_id.startswith("b")
    # order of the input does not matter
    assert select(list(reversed(cands))).candidate_id.startswith("b")


def test_full_tie_is_deterministic_by_signature() -> None:
    cands = [
        cand("b1", outputs("y", "z")),
        cand("b2", outputs("y", "z")),
        cand("a1", outputs("x", "z")),
        cand("a2", outputs("x", "z")),
    ]
    first = select(cands)
    assert first.candidate_id == "a1"  # signature ("x", "z") < ("y", "z")
    assert select(list(reversed(cands))) == first


# --- select: modes --------------------------------------------------------------------------


def test_pass_and_output_modes_choose_differently() -> None:
    # Tests have expected outputs; OUTPUT groups by value, PASS by pass/fail.
    # Three candidates agree on outputs but fail test 2; four different candidates
    # pass every test but differ on the value digests (e.g. float formatting noise
    # the expected-output check tolerates).
    wrong = [ret("1", True), ret("2", False), ret("3", True)]
    cands = [cand(f"w{i}", wrong) for i in range(3)] + [
        cand(f"r{i}", [ret("1", True), ret(f"x{i}", True), ret("3", True)]) for i in range(4)
    ]
    out = select(cands, mode=SignatureMode.OUTPUT)
    assert out.selected and out.candidate_id.startswith("w") and out.cluster_size == 3
    pas = select(cands, mode=SignatureMode.PASS)
    assert pas.selected and pas.candidate_id.startswith("r") and pas.cluster_size == 4
    assert select(cands, mode="pass").candidate_id == pas.candidate_id  # type: ignore[arg-type]


def test_output_mode_distinguishes_exception_types() -> None:
    cands = [
        cand("k1", [ret("1"), ret("2"), ret("3"), ret("4"), raised("KeyError")]),
        cand("v1", [ret("1"), ret("2"), ret("3"), ret("4"), raised("ValueError")]),
    ]
    r = select(cands, rho=0.8, tau=1)
    assert r.num_clusters == 2


# --- select: constant clusters --------------------------------------------------------------


def test_constant_cluster_is_rejected_by_default() -> None:
    constant = [cand(f"k{i}", outputs("0", "0", "0")) for i in range(5)]
    real = [cand(f"r{i}", outputs("1", "4", "9")) for i in range(2)]
    r = select(constant + real)
    assert r.selected and r.candidate_id.startswith("r")
    assert r.cluster_size == 2
    assert r.num_clusters == 2 and r.cluster_sizes == (5, 2)
    kept = select(constant + real, reject_constant=False)
    assert kept.candidate_id.startswith("k") and kept.cluster_size == 5


def test_only_constant_clusters() -> None:
    cands = [cand("k1", outputs("0", "0")), cand("k2", outputs("0", "0")), cand("n1", outputs("N", "N"))]
    r = select(cands)
    assert not r.selected
    assert "constant" in r.reason
    assert r.cluster_sizes == (2, 1) and r.eligible == 3


def test_constant_rejection_reported_with_tau() -> None:
    cands = [cand("k1", outputs("0", "0")), cand("k2", outputs("0", "0")), cand("r1", outputs("1", "2"))]
    r = select(cands)
    assert not r.selected
    assert r.reason.startswith("largest cluster has size 1 < tau=2")
    assert "constant" in r.reason


def test_constant_rejection_needs_two_tests_and_output_mode() -> None:
    one_test = [cand("a", outputs("0")), cand("b", outputs("0"))]
    assert select(one_test).selected
    # in PASS mode an all-"1" vector is the best case, not a degenerate one
    passing = [cand(f"p{i}", [ret("0", True), ret("0", True)]) for i in range(2)]
    assert select(passing, mode=SignatureMode.PASS).selected
    assert not select(passing, mode=SignatureMode.OUTPUT).selected


def test_almost_constant_cluster_is_not_rejected() -> None:
    cands = [cand(f"a{i}", outputs("0", "0", "0", "1")) for i in range(2)]
    assert select(cands).selected


def test_result_type() -> None:
    r = select([cand("a", outputs("1", "2")), cand("b", outputs("1", "2"))])
    assert isinstance(r, SelectionResult)
    assert r == SelectionResult(
        selected=True,
        candidate_id="a",
        code="# code of a",
        cluster_size=2,
        num_clusters=1,
        eligible=2,
        execution_success=1.0,
        reason="",
        cluster_sizes=(2,),
        rule="paper",
        # a unanimous pair on two tests: 1 - 2^-2 (sign test) - 2^2 * 0.5^2 (no rival: prior p)
        confidence=0.0,
        margin=2,
        abstained="",
    )
