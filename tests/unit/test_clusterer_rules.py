"""Selection rules, the Theorem 2.4 confidence and abstention (services.clusterer.core), and their
wiring: ClusterRequest -> Selection (services.clusterer.app.cluster), IterationSpec validation
and the `ucoder iterate` flags."""

from __future__ import annotations

import itertools
import math

import pytest

from services.clusterer import app as clusterer_app
from services.clusterer.core import (
    AGREEMENT_FLOOR,
    AGREEMENT_PRIOR,
    DEFAULT_MIN_CONFIDENCE,
    Abstention,
    Outcome,
    ScoredCandidate,
    SelectionRule,
    SignatureMode,
    agreement_rate,
    cluster_candidates,
    consensus_confidence,
    is_trivial,
    lead_risk,
    program_key,
    select,
)
from services.orchestrator import core as orchestrator_core
from ucoder_cli import main as cli
from ucoder_cli import render
from ucoder_common.config import ConfigError
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import clusterer_pb2, common_pb2, orchestrator_pb2

RULES = list(SelectionRule)


def ret(digest: str, passed: bool = False) -> Outcome:
    return Outcome(kind="returned", value_digest=digest, passed=passed)


def raised() -> Outcome:
    return Outcome(kind="raised", exception_type="ValueError")


def cand(
    cid: str, outcomes: list[Outcome], logprob: float = -1.0, tokens: int = 10, code: str = ""
) -> ScoredCandidate:
    return ScoredCandidate(
        cid, code or f"def f(x):\n    return g{cid}(x)\n", tuple(outcomes), logprob, tokens
    )


def values(*digests: str) -> list[Outcome]:
    return [ret(d) for d in digests]


def distinct(num_tests: int, tag: str = "v") -> list[str]:
    """A non-constant output per test."""
    return [f"{tag}{t}" for t in range(num_tests)]


def pool(sizes: dict[str, int], num_tests: int) -> list[ScoredCandidate]:
    """Clusters named by tag, each with its own (non-constant) outputs on every test."""
    return [
        cand(f"{tag}{i}", values(*distinct(num_tests, tag)))
        for tag, size in sizes.items()
        for i in range(size)
    ]


# --- the rules' names are one list everywhere -------------------------------------------------


def test_rule_names_agree_across_clusterer_orchestrator_and_cli() -> None:
    names = tuple(r.value for r in SelectionRule)
    assert names == ("paper", "random", "cluster", "low_ppl", "success_rate")
    assert names == orchestrator_core.SELECTION_RULES
    assert names == cli.SELECTION_RULES
    assert names == clusterer_app.RULES


# --- the paper rule (the default) -------------------------------------------------------------


def test_paper_is_the_default_and_reports_its_name() -> None:
    cands = pool({"a": 3, "b": 1}, 4)
    default = select(cands)
    assert default == select(cands, rule="paper") == select(cands, rule=SelectionRule.PAPER)
    assert default.rule == "paper" and default.candidate_id == "a0"


# --- baselines --------------------------------------------------------------------------------


def mixed_pool() -> list[ScoredCandidate]:
    """Five flaky candidates (e = 0.6) agreeing, two reliable ones agreeing, one reliable loner
    that is the most fluent, and three that never return."""
    flaky = [ret("1"), raised(), raised(), ret("4"), ret("5")]
    return [
        *(cand(f"f{i}", flaky, logprob=-3.0) for i in range(5)),
        cand("g1", values("1", "2", "3", "4", "5"), logprob=-4.0),
        cand("g2", values("1", "2", "3", "4", "5"), logprob=-2.0),
        cand("lone", values("1", "2", "3", "4", "6"), logprob=-0.5),
        *(cand(f"x{i}", [raised()] * 5, logprob=-0.1) for i in range(3)),
    ]


def test_each_rule_on_one_pool() -> None:
    cands = mixed_pool()
    paper = select(cands, rule="paper")
    assert paper.candidate_id == "g2" and paper.eligible == 3  # reliable cluster, lower perplexity
    # cluster: no reliability filter, so the larger flaky cluster wins; never-returning ones are out
    clustered = select(cands, rule="cluster")
    assert clustered.candidate_id == "f0" and clustered.cluster_size == 5 and clustered.eligible == 8
    # low_ppl: the most fluent successful candidate, though it is alone (the x's never return)
    assert select(cands, rule="low_ppl").candidate_id == "lone"
    # success_rate: e >= 0.5 lets the flaky ones in; the highest e(r) wins, then perplexity
    rate = select(cands, rule="success_rate")
    assert rate.candidate_id == "lone" and rate.eligible == 8 and rate.execution_success == 1.0
    # random: one of the successful (e >= rho) candidates
    assert select(cands, rule="random", problem_id="p1").candidate_id in {"g1", "g2", "lone"}
    assert {r.rule for r in (paper, clustered, rate)} == {"paper", "cluster", "success_rate"}


def test_success_rate_uses_its_own_threshold_not_rho() -> None:
    flaky = [ret("1"), ret("2"), ret("3"), raised(), raised()]  # e = 0.6
    cands = [cand("a", flaky, logprob=-2.0), cand("b", flaky, logprob=-1.0)]
    assert not select(cands, rho=0.8).selected
    assert select(cands, rho=0.8, rule="success_rate").candidate_id == "b"
    low = [cand("c", [ret("1"), raised(), raised()])]  # e = 1/3
    r = select(low, rule="success_rate", tau=1)
    assert not r.selected and r.reason == "no candidate reached execution success 0.5"


def test_random_is_seeded_by_the_problem_id_and_only_picks_successful() -> None:
    cands = [cand(f"ok{i}", values(f"a{i}", f"b{i}")) for i in range(4)]
    cands += [cand(f"bad{i}", [raised(), ret("z")], logprob=-0.01) for i in range(4)]
    picks = {pid: select(cands, rule="random", problem_id=pid).candidate_id for pid in map(str, range(200))}
    assert set(picks.values()) == {"ok0", "ok1", "ok2", "ok3"}  # uniform-ish, never an unreliable one
    # deterministic: same id, same pick, whatever the order of the candidates
    for pid in ("p-7", "p-8", "p-9"):
        first = select(cands, rule="random", problem_id=pid)
        assert select(list(reversed(cands)), rule="random", problem_id=pid) == first


def test_random_and_low_ppl_leave_constant_candidates_out() -> None:
    cands = [cand("k", values("0", "0", "0"), logprob=-0.01), cand("r", values("1", "4", "9"), logprob=-5.0)]
    assert select(cands, rule="low_ppl").candidate_id == "r"
    assert select(cands, rule="low_ppl", reject_constant=False).candidate_id == "k"
    assert {select(cands, rule="random", problem_id=str(i)).candidate_id for i in range(30)} == {"r"}


def test_cluster_rule_applies_tau() -> None:
    cands = pool({"a": 1, "b": 1}, 3)
    r = select(cands, rule="cluster", tau=2)
    assert not r.selected and r.reason == "largest cluster has size 1 < tau=2"
    assert select(cands, rule="cluster", tau=1).selected


# --- edge cases, every rule -------------------------------------------------------------------


@pytest.mark.parametrize("rule", RULES)
def test_all_candidates_fail(rule: SelectionRule) -> None:
    cands = [cand(f"c{i}", [raised(), Outcome("timeout"), Outcome("compile_error")]) for i in range(4)]
    r = select(cands, rule=rule, problem_id="p")
    assert not r.selected and r.candidate_id == "" and r.code == ""
    assert r.reason.startswith("no candidate") and r.confidence == 0.0 and r.rule == rule.value


@pytest.mark.parametrize("rule", RULES)
def test_all_identical(rule: SelectionRule) -> None:
    cands = [cand(f"c{i}", values(*distinct(20)), logprob=-float(i + 1)) for i in range(6)]
    r = select(cands, rule=rule, problem_id="p")
    assert r.selected and r.cluster_size == 6 and r.num_clusters == 1 and r.margin == 6
    # no rival: 1 - 2^-6 - 6^2 * 0.5^20 (the prior p, nothing observed)
    assert r.confidence == pytest.approx(1 - 2**-6 - 36 * AGREEMENT_PRIOR**20)
    if rule is not SelectionRule.RANDOM:
        assert r.candidate_id == "c0"  # lowest perplexity


@pytest.mark.parametrize("rule", RULES)
def test_no_candidates_and_no_tests(rule: SelectionRule) -> None:
    assert select([], rule=rule).reason == "no candidates"
    assert select([cand("a", [])], rule=rule).reason == "no tests"


def test_two_equal_clusters_tie_break_is_deterministic_and_not_confident() -> None:
    cands = pool({"b": 3, "a": 3}, 12)
    first = select(cands)
    assert first.candidate_id == "a0"  # same size, e(r) and perplexity: the smaller signature
    assert select(list(reversed(cands))) == first
    assert first.margin == 0 and first.confidence <= 0.5
    withheld = select(cands, min_confidence=0.5)
    assert not withheld.selected and withheld.abstained == "min_confidence"


def test_one_test_gives_low_confidence_even_when_unanimous() -> None:
    one = select([cand(f"c{i}", values("7")) for i in range(8)])
    assert one.selected and one.confidence == 0.0  # 1 - 2^-8 - 64 * 0.5
    many = select([cand(f"c{i}", values(*distinct(24))) for i in range(8)])
    assert many.confidence > 0.99


@pytest.mark.parametrize("rule", [SelectionRule.PAPER, SelectionRule.LOW_PPL])
def test_ties_in_perplexity(rule: SelectionRule) -> None:
    # Each passes the first test (a vector that passes nothing is skipped in PASS mode).
    e_high = [ret("1", passed=True), *values("2", "3", "4", "5")]
    e_low = [ret("1", passed=True), ret("2"), ret("3"), ret("4"), raised()]
    cands = [cand("z", e_high), cand("y", e_high), cand("a", e_low)]  # all the same perplexity
    # both rules: the higher e(r) before the id, then the smallest id
    assert select(cands, rule=rule, tau=1, mode=SignatureMode.PASS).candidate_id == "y"


def test_pass_mode_never_picks_the_cluster_that_passes_no_test() -> None:
    # Five wrong programs of different kinds all fail every guessed output: one all-fail vector.
    wrong = [cand(f"w{i}", values(*distinct(4, tag=f"w{i}"))) for i in range(5)]
    right = [cand(f"r{i}", [ret(f"v{t}", passed=t != 3) for t in range(4)]) for i in range(3)]
    picked = select(wrong + right, mode=SignatureMode.PASS)
    assert picked.selected and picked.candidate_id == "r0"
    assert picked.cluster_sizes == (5, 3)  # the skipped cluster is still reported
    # reject_constant off: the paper's plain rule takes the all-fail majority
    assert select(wrong + right, mode=SignatureMode.PASS, reject_constant=False).candidate_id == "w0"
    # nothing passes anything (no expected outputs): nothing to select
    nothing = select(wrong, mode=SignatureMode.PASS)
    assert not nothing.selected and nothing.reason
    # OUTPUT mode is unaffected: the five wrong programs disagree with each other
    assert select(wrong + right, mode=SignatureMode.OUTPUT).candidate_id == "r0"


def test_rho_and_tau_boundaries() -> None:
    perfect = values("1", "2", "3", "4")
    three_of_four = [ret("1"), ret("2"), ret("3"), raised()]
    cands = [cand("p1", perfect), cand("p2", perfect), *(cand(f"t{i}", three_of_four) for i in range(3))]
    assert select(cands, rho=1.0).candidate_id == "p1"  # e = 0.75 is out at rho = 1
    assert select(cands, rho=0.75).candidate_id == "t0"  # inclusive: 3/4 >= 0.75
    assert select(cands, rho=0.0).eligible == 5
    assert select(cands, rho=1.0, tau=2).selected  # size == tau selects
    r = select(cands, rho=1.0, tau=3)
    assert not r.selected and r.reason == "largest cluster has size 2 < tau=3"
    assert r.cluster_size == 2 and r.confidence > 0.0  # the confidence of the would-be pick


def test_pass_and_output_modes_answer_differently_with_their_own_confidence() -> None:
    # three agree on wrong outputs; four pass every test with differing digests
    wrong = [ret(f"w{t}", t != 5) for t in range(12)]
    right = [[ret(f"r{i}{t}", True) for t in range(12)] for i in range(4)]
    cands = [cand(f"w{i}", wrong) for i in range(3)] + [cand(f"r{i}", right[i]) for i in range(4)]
    out = select(cands, mode="output")  # type: ignore[arg-type]
    pas = select(cands, mode="pass")  # type: ignore[arg-type]
    assert out.candidate_id == "w0" and out.cluster_size == 3 and out.margin == 2
    assert pas.candidate_id == "r0" and pas.cluster_size == 4 and pas.margin == 1
    assert out.confidence != pas.confidence


# --- the confidence -----------------------------------------------------------------------------


def test_lead_risk_is_a_sign_test() -> None:
    assert lead_risk(1, 0) == 0.5 and lead_risk(2, 0) == 0.25
    assert lead_risk(1, 1) == 0.75 and lead_risk(3, 1) == 5 / 16
    assert lead_risk(6, 2) == 37 / 256
    assert all(lead_risk(k, k) >= 0.5 for k in range(1, 40))  # a tie is never confident
    with pytest.raises(ValueError):
        lead_risk(-1, 0)


def test_agreement_rate_counts_pairs_across_clusters() -> None:
    clustering = cluster_candidates(
        [*(cand(f"a{i}", values("1", "2", "3")) for i in range(3)), cand("b", values("1", "2", "4"))],
        mode=SignatureMode.OUTPUT,
    )
    # 3 cross pairs; they agree on tests 1 and 2, not 3
    assert agreement_rate(clustering.considered, 3) == pytest.approx(2 / 3)
    one = cluster_candidates([cand("a", values("1", "2")), cand("b", values("1", "2"))])
    assert agreement_rate(one.considered, 2) is None


def test_confidence_formula_on_a_pool() -> None:
    # 6 vs 2 on 20 tests; the clusters agree on the first 10 tests only: p_hat = 0.5
    chosen = [cand(f"a{i}", values(*distinct(20, "a"))) for i in range(6)]
    rival_outputs = distinct(20, "a")[:10] + distinct(20, "b")[10:]
    rival = [cand(f"b{i}", values(*rival_outputs)) for i in range(2)]
    r = select(chosen + rival)
    assert r.margin == 4
    assert r.confidence == pytest.approx(1 - 37 / 256 - 64 * 0.5**20)


def test_agreement_floor_applies_when_clusters_never_agree() -> None:
    r = select(pool({"a": 3, "b": 1}, 2))
    assert r.confidence == pytest.approx(1 - 5 / 16 - 16 * AGREEMENT_FLOOR**2)


def test_confidence_is_monotone() -> None:
    sizes = range(0, 9)
    for c1, c2, n, t in itertools.product(range(1, 9), sizes, (8, 16, 64), (1, 4, 10, 30)):
        p = 0.6
        base = consensus_confidence(c1, c2, n, t, p)
        assert 0.0 <= base <= 1.0
        assert consensus_confidence(c1, c2, n, t + 1, p) >= base  # more tests
        assert consensus_confidence(c1 + 1, c2, n, t, p) >= base  # bigger margin
        if c2:
            assert consensus_confidence(c1, c2 - 1, n, t, p) >= base
        assert consensus_confidence(c1, c2, n, t, min(1.0, p + 0.1)) <= base  # tests agree more
    # strictly, somewhere in the useful range
    assert consensus_confidence(6, 2, 16, 30, 0.6) > consensus_confidence(6, 2, 16, 10, 0.6)
    assert consensus_confidence(8, 2, 16, 30, 0.6) > consensus_confidence(6, 2, 16, 30, 0.6)
    with pytest.raises(ValueError):
        consensus_confidence(1, 0, 1, 1, 1.5)


def test_more_tests_and_bigger_margin_raise_the_confidence_of_select() -> None:
    few = select(pool({"a": 6, "b": 2}, 4)).confidence
    more = select(pool({"a": 6, "b": 2}, 12)).confidence
    wider = select(pool({"a": 8, "b": 2}, 12)).confidence
    assert few < more < wider


# --- abstention -----------------------------------------------------------------------------


def test_min_confidence_withholds_the_pick() -> None:
    cands = pool({"a": 3, "b": 1}, 20)
    kept = select(cands)
    assert kept.selected and kept.confidence == pytest.approx(1 - 5 / 16 - 16 * AGREEMENT_FLOOR**20)
    withheld = select(cands, min_confidence=0.9)
    assert not withheld.selected and withheld.candidate_id == "" and withheld.code == ""
    assert withheld.abstained == Abstention.MIN_CONFIDENCE.value == "min_confidence"
    assert withheld.reason.startswith("abstained (min_confidence): confidence 0.688 < 0.9")
    assert withheld.confidence == kept.confidence and withheld.cluster_size == 3  # reported anyway
    assert select(cands, min_confidence=kept.confidence).selected  # the boundary selects
    assert select(cands, min_confidence=0.0).selected


def test_near_constant_output_is_withheld() -> None:
    mostly_false = values(*(["F"] * 9 + ["T"]))
    cands = [cand(f"c{i}", mostly_false) for i in range(6)]
    assert select(cands).selected  # not constant, so reject_constant keeps it
    r = select(cands, near_constant=0.9)
    assert not r.selected and r.abstained == "near_constant"
    assert r.reason == "abstained (near_constant): one value on 9/10 tests (near_constant=0.9)"
    assert select(cands, near_constant=0.95).selected
    assert select(cands, near_constant=0.0).selected
    # two tests with different values: share 1/2
    assert select([cand("a", values("1", "2")), cand("b", values("1", "2"))], near_constant=0.9).selected


@pytest.mark.parametrize(
    "code",
    [
        "def f(x):\n    pass\n",
        'def f(x):\n    """Doc."""\n',
        "def f(x):\n    ...\n",
        "def f(x):\n    return 0\n",
        "def f(x, y):\n    return y\n",
        "def f(x):\n    return\n",
        "def f(x):\n    raise NotImplementedError\n",
        "import math\n\ndef f(*, k):\n    '''Doc.'''\n    return k\n",
    ],
)
def test_trivial_bodies(code: str) -> None:
    assert is_trivial(code)


@pytest.mark.parametrize(
    "code",
    [
        "def f(a, b):\n    return a + b\n",
        "def f(x):\n    y = x\n    return y\n",
        "def f(x):\n    return z\n",  # a global, not a parameter
        "def g(x):\n    return x * 2\n\ndef f(x):\n    return x\n",  # a real helper
        "def f(x):\n  return (\n",  # does not parse
        "x = 1\n",  # no function
    ],
)
def test_non_trivial_bodies(code: str) -> None:
    assert not is_trivial(code)


def test_trivial_cluster_is_withheld_only_when_every_member_is_trivial() -> None:
    outs = values(*distinct(12))
    echo = [cand(f"e{i}", outs, code="def f(x):\n    return x\n") for i in range(4)]
    r = select(echo, reject_trivial=True)
    assert (
        not r.selected and r.abstained == "trivial_body" and r.reason.startswith("abstained (trivial_body)")
    )
    assert select(echo).selected  # off by default in core
    mixed = [*echo, cand("real", outs, code="def f(x):\n    return list(x)\n")]
    assert select(mixed, reject_trivial=True).selected


def test_abstention_rules_are_checked_in_a_fixed_order() -> None:
    cands = [cand(f"e{i}", values(*(["F"] * 10)), code="def f(x):\n    return x\n") for i in range(2)]
    r = select(cands, reject_constant=False, reject_trivial=True, near_constant=0.9, min_confidence=1.0)
    assert r.abstained == "trivial_body"
    r = select(cands, reject_constant=False, near_constant=0.9, min_confidence=1.0)
    assert r.abstained == "near_constant"


def test_program_key_ignores_formatting_comments_and_docstrings() -> None:
    a = 'def f(x):\n    """Doc."""\n    return x + 1\n'
    b = "def f(x):\n    # add one\n    return (x+1)\n"
    assert program_key(a) == program_key(b)
    assert program_key(a) != program_key("def f(x):\n    return x + 2\n")
    assert program_key("def f(:\n") == "def f(:"  # unparsable: the text


def test_min_distinct_counts_programs_not_copies() -> None:
    body = "def f(x):\n    return sorted(x)[::-1]\n"
    # Four copies of one program (differing only in a comment) against two different programs.
    copies = [cand(f"c{i}", values(*distinct(12, "w")), code=body + f"# copy {i}\n") for i in range(4)]
    others = [
        cand(f"o{i}", values(*distinct(12, "r")), code=f"def f(x):\n    return g{i}(x)\n") for i in range(2)
    ]
    r = select(copies + others)
    assert r.selected and r.candidate_id == "c0" and r.cluster_size == 4 and r.distinct == 1
    # Counted in programs the lead is 1 to 2: the distinct confidence is lower than the plain one.
    assert r.distinct_confidence < r.confidence
    withheld = select(copies + others, min_distinct=2)
    assert not withheld.selected and withheld.abstained == Abstention.MIN_DISTINCT == "min_distinct"
    assert "1 distinct programs < min_distinct=2" in withheld.reason and withheld.distinct == 1
    # The paper rule itself is unchanged: min_distinct 0 (the default) withholds nothing.
    assert select(copies + others, min_distinct=0) == r
    assert select(others + copies[:1], tau=2, min_distinct=2).candidate_id == "o0"


def test_min_share_withholds_a_thin_plurality() -> None:
    # 3 agree, 7 others are all different: a clear lead over the runner-up, but 30% of the pool.
    cands = pool({"a": 3, **{f"s{i}": 1 for i in range(7)}}, 12)
    plain = select(cands)
    assert plain.selected and plain.share == pytest.approx(0.3)
    assert select(cands, min_share=0.3).selected  # at the share exactly: kept
    withheld = select(cands, min_share=0.31)
    assert not withheld.selected and withheld.abstained == Abstention.MIN_SHARE == "min_share"
    assert "3 of 10 candidates" in withheld.reason and withheld.share == pytest.approx(0.3)
    # The share counts every candidate given, also those the reliability filter dropped.
    broken = [cand(f"x{i}", [raised()] * 12) for i in range(10)]
    assert select(cands + broken).share == pytest.approx(0.15)
    assert not select(cands + broken, min_share=0.3).selected


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rule": "hash"}, "rule"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"min_confidence": math.nan}, "min_confidence"),
        ({"near_constant": -0.1}, "near_constant"),
        ({"min_distinct": -1}, "min_distinct"),
        ({"min_distinct": 1.5}, "min_distinct"),
        ({"min_share": 2.0}, "min_share"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        select([cand("a", values("1"))], **kwargs)  # type: ignore[arg-type]


# --- the service: ClusterRequest -> Selection -----------------------------------------------


def request(**fields: object) -> clusterer_pb2.ClusterRequest:
    """Two candidates agree and one differs everywhere, on 12 tests: confidence 1 - 1/2 - 9 * 0.1^12."""
    req = clusterer_pb2.ClusterRequest(problem_id="p", **fields)  # type: ignore[arg-type]
    for i, outs in enumerate([distinct(12, "a")] * 2 + [distinct(12, "x")]):
        req.candidates.add(
            candidate_id=f"c{i}", code=f"def f(x):\n    return h{i}(x)\n", cumulative_logprob=-i
        )
        result = req.results.add(candidate_id=f"c{i}")
        for value in outs:
            result.outcomes.add(kind=common_pb2.OUTCOME_KIND_RETURNED, value_digest=value)
    return req


def test_service_abstains_below_the_configured_confidence_and_reports_it() -> None:
    cfg = clusterer_app.ClustererConfig(default_min_confidence=DEFAULT_MIN_CONFIDENCE)
    selection = clusterer_app.cluster(request(), cfg).selection
    assert not selection.selected and selection.abstained == "min_confidence"
    assert selection.rule == "paper" and selection.margin == 1 and selection.cluster_size == 2
    assert selection.confidence == pytest.approx(0.5) and cfg.default_min_confidence > 0.5
    # min_confidence set to 0 (not unset) turns abstention off for this request
    picked = clusterer_app.cluster(request(min_confidence=0.0), cfg).selection
    assert picked.selected and picked.candidate_id == "c0" and picked.abstained == ""
    assert picked.confidence == pytest.approx(selection.confidence)
    # the service's default is the calibrated threshold; a request can lower or raise it
    default = clusterer_app.ClustererConfig()
    assert default.default_min_confidence == DEFAULT_MIN_CONFIDENCE == 0.95
    assert clusterer_app.cluster(request(), default).selection.abstained == "min_confidence"
    assert clusterer_app.cluster(request(min_confidence=0.4), default).selection.selected
    asked = clusterer_app.cluster(
        request(min_confidence=0.8), clusterer_app.ClustererConfig(default_min_confidence=0.0)
    )
    assert asked.selection.abstained == "min_confidence"


def test_service_min_share_setting_withholds_a_small_cluster() -> None:
    # The picked cluster holds 2 of the 3 candidates.
    cfg = clusterer_app.ClustererConfig(default_min_confidence=0.0, min_share=0.7)
    withheld = clusterer_app.cluster(request(), cfg).selection
    assert not withheld.selected and withheld.abstained == "min_share"
    assert "2 of 3" in withheld.reason
    assert clusterer_app.cluster(
        request(), clusterer_app.ClustererConfig(default_min_confidence=0.0, min_share=0.6)
    ).selection.selected
    assert clusterer_app.ClustererConfig().min_share == 0.0  # off by default
    with pytest.raises(ConfigError, match=r"^min_share: must be in"):
        clusterer_app.ClustererConfig(min_share=1.5).validate()


def test_service_rule_from_request_or_config() -> None:
    cfg = clusterer_app.ClustererConfig(default_min_confidence=0.0)
    low = clusterer_app.cluster(request(selection_rule="low_ppl"), cfg).selection
    assert low.rule == "low_ppl" and low.candidate_id == "c0"
    by_config = clusterer_app.ClustererConfig(default_min_confidence=0.0, default_selection_rule="random")
    first = clusterer_app.cluster(request(), by_config).selection
    assert first.rule == "random" and first == clusterer_app.cluster(request(), by_config).selection


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"selection_rule": "majority"}, "^selection_rule: must be one of"),
        ({"min_confidence": 1.5}, "^min_confidence: must be in"),
        ({"min_confidence": math.nan}, "^min_confidence"),
    ],
)
def test_service_rejects_bad_knobs(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        clusterer_app.cluster(request(**fields), clusterer_app.ClustererConfig())


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"default_selection_rule": "majority"}, "default_selection_rule"),
        ({"default_min_confidence": 2.0}, "default_min_confidence"),
        ({"near_constant": -1.0}, "near_constant"),
    ],
)
def test_config_validation(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        clusterer_app.ClustererConfig(**fields).validate()  # type: ignore[arg-type]


# --- the orchestrator's spec and the CLI ---------------------------------------------------------


def spec(**fields: object) -> orchestrator_pb2.IterationSpec:
    return orchestrator_pb2.IterationSpec(
        num_problems=2,
        tests_per_problem=3,
        samples_per_problem=4,
        **fields,  # type: ignore[arg-type]
    )


def test_spec_knobs_are_validated_and_left_to_the_clusterer_when_unset() -> None:
    filled = orchestrator_core.validate_spec(spec(), served_model="")
    assert filled.selection_rule == "" and not filled.HasField("min_confidence")
    explicit = orchestrator_core.validate_spec(spec(selection_rule="cluster", min_confidence=0.0), "")
    assert explicit.selection_rule == "cluster"
    assert explicit.HasField("min_confidence") and explicit.min_confidence == 0.0
    bad: list[tuple[dict[str, object], str]] = [
        ({"selection_rule": "best"}, "spec.selection_rule"),
        ({"min_confidence": -0.5}, "spec.min_confidence"),
        ({"min_confidence": math.nan}, "spec.min_confidence"),
    ]
    for fields, name in bad:
        with pytest.raises(InvalidArgument, match="^" + name):
            orchestrator_core.validate_spec(spec(**fields), served_model="")


def test_cli_flags_build_the_spec() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["iterate", "--selection-rule", "low_ppl", "--min-confidence", "0"])
    built = cli._spec(args)
    assert built.selection_rule == "low_ppl"
    assert built.HasField("min_confidence") and built.min_confidence == 0.0
    assert "rule=low_ppl" in render.spec_line(built) and "min_confidence=0" in render.spec_line(built)
    plain = cli._spec(parser.parse_args(["iterate"]))
    assert plain.selection_rule == "" and not plain.HasField("min_confidence")
    assert "rule=" not in render.spec_line(plain)
    with pytest.raises(SystemExit):
        parser.parse_args(["iterate", "--selection-rule", "majority"])
    no_train = cli._spec(parser.parse_args(["iterate", "--no-train"]))
    assert no_train.skip_training and not plain.skip_training
    assert "training=off" in render.spec_line(no_train) and "training=off" not in render.spec_line(plain)
