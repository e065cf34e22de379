"""Unit tests for services.clusterer.adaptive (when to stop sampling a problem)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from services.clusterer import adaptive
from services.clusterer.adaptive import (
    AdaptivePolicy,
    ClusterStat,
    Decision,
    Reason,
    RoundState,
    change_probability,
    decide,
    observe,
)
from services.clusterer.core import Outcome, ScoredCandidate, SignatureMode, select, signature

POLICY = AdaptivePolicy()


def state(drawn: int, *sizes: int, tau: int = 2, success: float = 1.0, stable: bool = True) -> RoundState:
    return RoundState(drawn, tuple(ClusterStat(s, success) for s in sizes), tau, stable)


# --- validation ----------------------------------------------------------------------------


def test_default_policy_is_valid() -> None:
    POLICY.validate()
    replace(POLICY, mode="fixed").validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "greedy"),
        ("round_size", 0),
        ("round_size", 1.5),
        ("round_size", True),
        ("budget", 0),
        ("risk", 0.0),
        ("risk", 1.0),
        ("risk", math.nan),
        ("risk", "0.1"),
        ("min_samples", -1),
        ("hopeless_after", -1),
        ("hopeless_rate", -0.1),
        ("hopeless_rate", 1.0),
        ("novelty_floor", 0.0),
        ("novelty_floor", math.inf),
    ],
)
def test_policy_validation_names_the_field(field: str, value: object) -> None:
    policy = replace(POLICY, **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"^{field}:"):
        policy.validate()
    with pytest.raises(ValueError, match=f"^{field}:"):
        decide(policy, state(16, 10))


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (RoundState(-1, (), 2), "drawn"),
        (RoundState(16, (), 0), "tau"),
        (RoundState(16, (ClusterStat(0),), 2), r"clusters\[0\].size"),
        (RoundState(16, (ClusterStat(2), ClusterStat(3)), 2), "clusters"),
        (RoundState(16, (ClusterStat(3, 1.5),), 2), r"clusters\[0\].success"),
        (RoundState(4, (ClusterStat(3), ClusterStat(2)), 2), "clusters"),
    ],
)
def test_state_validation_names_the_field(bad: RoundState, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        decide(POLICY, bad)


# --- the rule ------------------------------------------------------------------------------


def test_first_round() -> None:
    d = decide(POLICY, state(0))
    assert not d.stop and d.reason is Reason.WARMUP and d.next_round == 16 and math.isnan(d.p_change)
    assert decide(replace(POLICY, round_size=200), state(0)).next_round == 128


def test_clear_leader_stops_early() -> None:
    d = decide(POLICY, state(16, 10, 1, 1, 1, 1, 1, 1))
    assert d.stop and d.reason is Reason.CONFIDENT and d.next_round == 0
    assert 0.0 < d.p_change <= POLICY.risk


def test_split_vote_continues() -> None:
    d = decide(POLICY, state(16, 6, 5, 1, 1, 1, 1, 1))
    assert not d.stop and d.reason is Reason.UNCERTAIN and d.next_round == 16
    assert d.p_change > POLICY.risk
    # The same split with many more draws behind it is settled.
    assert decide(POLICY, state(112, 60, 25, 5, 5, 5, 4, 4, 4)).stop


def test_stricter_risk_draws_more() -> None:
    s = state(32, 13, 6, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    p = change_probability(s, 96)
    assert decide(replace(POLICY, risk=min(0.99, p * 1.01)), s).stop
    assert not decide(replace(POLICY, risk=p * 0.99), s).stop


def test_many_singletons_do_not_stop() -> None:
    d = decide(POLICY, state(16, *([1] * 16)))
    assert not d.stop and d.p_change == 1.0


def test_budget_exhausted_stops() -> None:
    assert decide(POLICY, state(128, 3, 3, 2)) == Decision(True, Reason.BUDGET, 0, 0.0)
    assert decide(POLICY, state(130, 1)).reason is Reason.BUDGET
    assert decide(replace(POLICY, mode="fixed"), state(128)).stop


def test_last_round_is_partial() -> None:
    d = decide(replace(POLICY, budget=40), state(32, 5, 5))
    assert not d.stop and d.next_round == 8


def test_fixed_mode_never_stops_before_budget() -> None:
    fixed = replace(POLICY, mode="fixed")
    for s in (state(16, 16), state(64), state(112, 100, 1), state(0)):
        d = decide(fixed, s)
        assert not d.stop and d.reason is Reason.FIXED and d.next_round == 16


def test_hopeless_stops() -> None:
    # Nothing eligible: the upper bound on the eligible rate (confidence 1 - risk) falls below
    # hopeless_rate at 48 draws (1 - 0.1**(1/48) = 0.047), not at 32 (0.069).
    assert not decide(POLICY, state(32)).stop
    d = decide(POLICY, state(48))
    assert d.stop and d.reason is Reason.HOPELESS and d.p_change > POLICY.risk
    # Eligible draws that agree with nothing keep it from being hopeless.
    assert not decide(POLICY, state(48, 1, 1, 1)).stop
    # Disabled: it samples on (nothing can rule out a pair in 80 more draws).
    off = decide(replace(POLICY, hopeless_rate=0.0), state(48))
    assert not off.stop and off.reason is Reason.UNCERTAIN
    assert not decide(replace(POLICY, hopeless_after=64), state(48)).stop


def test_hopeless_never_overrides_a_selection() -> None:
    d = decide(POLICY, state(64, 2, 1))
    assert d.reason is not Reason.HOPELESS


def test_warmup_blocks_statistical_stops_only() -> None:
    warm = replace(POLICY, min_samples=64)
    assert decide(warm, state(16, 10, 1, 1)).reason is Reason.WARMUP
    assert decide(warm, state(48)).reason is Reason.WARMUP
    # A certain decision is taken whenever it is reached.
    assert decide(replace(warm, budget=20), state(16, 10, 1)).reason is Reason.CERTAIN


# --- ties and tau ---------------------------------------------------------------------------


def test_certain_fast_path_and_tie_break() -> None:
    policy = replace(POLICY, budget=20, min_samples=20)  # only a certain decision can stop
    # margin 4 == remaining 4: the runner-up can at most tie.
    stable = RoundState(16, (ClusterStat(10, 1.0), ClusterStat(6, 0.8)), 2, success_stable=True)
    assert decide(policy, stable) == Decision(True, Reason.CERTAIN, 0, 0.0)
    # Equal e(r): perplexity breaks the tie and it moves with every draw.
    equal = RoundState(16, (ClusterStat(10, 1.0), ClusterStat(6, 1.0)), 2, success_stable=True)
    assert not decide(policy, equal).stop
    # PASS mode: e(r) differs inside a cluster, so no tie-break is stable.
    unstable = replace(stable, success_stable=False)
    assert not decide(policy, unstable).stop
    # One more draw of margin is certain whatever the tie-break.
    assert decide(policy, state(16, 11, 5)).reason is Reason.CERTAIN
    # A new behaviour could take all remaining draws: not certain while leader <= remaining.
    assert not decide(replace(policy, budget=26), state(16, 10)).stop


def test_ties_count_against_the_leader_unless_it_wins_them_for_good() -> None:
    stable = RoundState(48, (ClusterStat(20, 1.0), ClusterStat(12, 0.8)), 2, True)
    loose = RoundState(48, (ClusterStat(20, 1.0), ClusterStat(12, 1.0)), 2, True)
    assert change_probability(stable, 80) < change_probability(loose, 80)
    assert change_probability(replace(stable, success_stable=False), 80) == change_probability(loose, 80)


def test_exact_tie_now_is_uncertain() -> None:
    d = decide(POLICY, state(16, 8, 8))
    assert not d.stop and d.p_change > 0.3


def test_tau_edges() -> None:
    # tau = 1: a single candidate is a selection, and a clear one stops.
    assert decide(POLICY, state(16, 12, 1, tau=1)).reason is Reason.CONFIDENT
    # tau above the budget: nothing can ever be selected; no sample is needed.
    assert decide(POLICY, state(0, tau=200)) == Decision(True, Reason.UNREACHABLE, 0, 0.0)
    # The leader cannot reach tau in the draws left, nor can a new behaviour.
    assert decide(replace(POLICY, budget=20), state(16, 4, 3, tau=10)).reason is Reason.UNREACHABLE
    # Leader one short of tau with draws left: keep going.
    d = decide(POLICY, state(16, 2, 2, 1, tau=3))
    assert not d.stop and d.p_change == 1.0
    # Exactly tau is a selection.
    assert state(16, 3, tau=3).selected and not state(16, 2, tau=3).selected


def test_unreachable_by_probability() -> None:
    # tau 40 with a leader of 3 after 64 draws: reaching it in 64 more is very unlikely.
    d = decide(POLICY, state(64, 3, 2, 2, tau=40))
    assert d.stop and d.reason is Reason.UNREACHABLE and 0.0 < d.p_change <= POLICY.risk


# --- the maths ------------------------------------------------------------------------------


def test_beta_binomial_pmf() -> None:
    pmf = adaptive._betabin(30, 2.0, 5.5)
    assert math.isclose(sum(pmf), 1.0, rel_tol=1e-9)
    mean = sum(x * p for x, p in enumerate(pmf))
    assert math.isclose(mean, 30 * 2.0 / 7.5, rel_tol=1e-9)
    assert adaptive._tails(30, 2.0, 5.5)[0] == pytest.approx(1.0)


def test_overtake_probability_matches_a_polya_urn() -> None:
    c_j, c_l, others, m = 3, 6, 7.0, 20
    exact = adaptive._p_overtake(c_j, c_l, others, m, True)
    rng = random.Random(7)
    hits, trials = 0, 40000
    for _ in range(trials):
        a, b, o = float(c_j), float(c_l), others
        for _ in range(m):
            r = rng.random() * (a + b + o)
            if r < a:
                a += 1
            elif r < a + b:
                b += 1
            else:
                o += 1
        hits += a >= b
    assert exact == pytest.approx(hits / trials, abs=0.01)
    assert adaptive._p_overtake(c_j, c_l, others, m, False) < exact


def test_ewens_theta() -> None:
    assert adaptive._ewens_theta(20, 1, 0.5) == 0.5
    assert adaptive._ewens_theta(20, 20, 0.5) == adaptive.THETA_CAP
    theta = adaptive._ewens_theta(40, 8, 0.5)
    assert sum(theta / (theta + i) for i in range(40)) == pytest.approx(8, rel=1e-6)


def test_rate_upper_bound() -> None:
    assert adaptive._rate_upper(0, 48, 0.1) == pytest.approx(1 - 0.1 ** (1 / 48))
    upper = adaptive._rate_upper(3, 40, 0.05)
    assert adaptive._binom_cdf(3, 40, upper) == pytest.approx(0.05, abs=1e-6)
    assert adaptive._rate_upper(5, 5, 0.05) == 1.0


def test_change_probability_shrinks_with_fewer_draws_left() -> None:
    s = state(48, 20, 10, 3, 1, 1)
    values = [change_probability(s, m) for m in (80, 40, 10, 1)]
    assert values == sorted(values, reverse=True)
    assert change_probability(s, 0) == 0.0


# --- observe() agrees with select() ----------------------------------------------------------


def _cand(cid: str, outcomes: list[Outcome], logprob: float) -> ScoredCandidate:
    return ScoredCandidate(cid, f"# {cid}", tuple(outcomes), logprob, 10)


def test_observe_filters_like_select() -> None:
    ok = [Outcome("returned", "a"), Outcome("returned", "b")]
    const = [Outcome("returned", "z"), Outcome("returned", "z")]
    bad = [Outcome("raised", exception_type="E"), Outcome("returned", "b")]
    cands = [_cand("1", ok, -1), _cand("2", ok, -1), _cand("3", const, -1), _cand("4", const, -1)]
    cands.append(_cand("5", bad, -1))
    s = observe(cands)
    assert s.drawn == 5 and s.ineligible == 3 and s.selected
    assert [c.size for c in s.clusters] == [2]
    assert s.clusters[0].signature == signature(ok, SignatureMode.OUTPUT)
    assert [c.size for c in observe(cands, reject_constant=False).clusters] == [2, 2]
    assert observe(cands, rho=0.5).ineligible == 2
    assert observe([]).drawn == 0 and not observe([]).selected


def test_observe_matches_select_on_random_pools() -> None:
    rng = random.Random(11)
    for trial in range(300):
        tests = rng.choice([1, 2, 3])
        mode = rng.choice(list(SignatureMode))
        behaviours = [
            [
                Outcome("returned", rng.choice("abc"), passed=rng.random() < 0.5)
                if rng.random() < 0.85
                else Outcome("raised", exception_type="E")
                for _ in range(tests)
            ]
            for _ in range(rng.randint(1, 6))
        ]
        cands = [
            _cand(f"{trial}-{i}", rng.choice(behaviours), -rng.choice([1.0, 2.0, 3.0]))
            for i in range(rng.randint(0, 12))
        ]
        tau = rng.choice([1, 2, 3])
        s = observe(cands, 0.6, tau, mode)
        result = select(cands, 0.6, tau, mode)
        assert s.selected == result.selected, trial
        if result.selected:
            chosen = next(c for c in cands if c.candidate_id == result.candidate_id)
            assert s.clusters[0].signature == signature(chosen.outcomes, mode), trial
            assert s.clusters[0].size == result.cluster_size
        assert s.success_stable == (mode is SignatureMode.OUTPUT)
