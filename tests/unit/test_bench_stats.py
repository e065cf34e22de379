"""bench/stats.py and the pure parts of bench/efficacy.py against values known in closed form."""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path

import pytest

from bench.efficacy import (
    QUOTED_PRECISION,
    Budget,
    IterationRecord,
    State,
    draw_examples,
    expected_precision,
    load_state,
    save_state,
    successful_picks,
)
from bench.stats import bootstrap_ci, paired_bootstrap_ci, pass_rates
from ucoder_common.pb import common_pb2, orchestrator_pb2

# --- pass@k from n samples -------------------------------------------------------------------


def test_pass_rates_is_c_over_n_for_k_1() -> None:
    rates = pass_rates({"a": [True, False, False, True] + [False] * 6, "b": [False] * 10, "c": [True] * 3})
    assert rates == {"a": pytest.approx(0.2), "b": 0.0, "c": 1.0}


def test_pass_rates_for_k_above_1_is_the_unbiased_estimator() -> None:
    # 1 - C(8, 5) / C(10, 5) = 1 - 56 / 252
    assert pass_rates({"a": [True, True] + [False] * 8}, k=5)["a"] == pytest.approx(1 - 56 / 252)
    with pytest.raises(ValueError, match="k must be"):
        pass_rates({"a": [True]}, k=2)


# --- bootstrap intervals ---------------------------------------------------------------------


def exact_bootstrap_quantiles(values: list[float], level: float) -> tuple[float, float]:
    """The percentile interval of the *exact* bootstrap distribution (all n^n resamples)."""
    n = len(values)
    means = sorted(sum(pick) / n for pick in product(values, repeat=n))
    tail = (1 - level) / 2
    low = means[math.ceil(tail * len(means)) - 1]
    high = means[math.ceil((1 - tail) * len(means)) - 1]
    return low, high


@pytest.mark.parametrize(("values", "level"), [([0.0, 0.0, 1.0], 0.9), ([0.0, 0.5, 1.0, 1.0], 0.8)])
def test_bootstrap_ci_matches_the_exact_bootstrap_distribution(values: list[float], level: float) -> None:
    interval = bootstrap_ci(values, resamples=20_000, seed=1, level=level)
    low, high = exact_bootstrap_quantiles(values, level)
    assert interval.estimate == pytest.approx(sum(values) / len(values))
    assert interval.low == pytest.approx(low, abs=0.02)
    assert interval.high == pytest.approx(high, abs=0.02)
    assert interval.n == len(values)


def test_bootstrap_ci_of_bernoulli_values_has_the_normal_width() -> None:
    values = [1.0] * 120 + [0.0] * 280  # p = 0.3, n = 400: sd of the mean sqrt(0.21 / 400)
    interval = bootstrap_ci(values, seed=3)
    half = 1.96 * math.sqrt(0.3 * 0.7 / 400)
    assert (interval.high - interval.low) / 2 == pytest.approx(half, rel=0.1)
    assert interval.low < 0.3 < interval.high


def test_bootstrap_is_seeded() -> None:
    values = [0.1, 0.4, 0.0, 0.9, 0.3, 0.7, 0.2]
    assert bootstrap_ci(values, resamples=40, seed=7) == bootstrap_ci(values, resamples=40, seed=7)
    assert bootstrap_ci(values, resamples=40, seed=7) != bootstrap_ci(values, resamples=40, seed=8)


def test_paired_bootstrap_of_a_constant_shift_is_exact() -> None:
    baseline = {f"p{i}": i / 10 for i in range(10)}
    treated = {k: v + 0.1 for k, v in baseline.items()}
    interval = paired_bootstrap_ci(treated, baseline)
    assert interval.estimate == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.1) and interval.high == pytest.approx(0.1)
    assert interval.excludes_zero()


def test_paired_bootstrap_resamples_differences() -> None:
    # Differences [1, 0, 0]: the exact bootstrap's 90% interval is [0, 2/3].
    interval = paired_bootstrap_ci({"a": 1.0, "b": 1.0, "c": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0}, level=0.9)
    assert interval.estimate == pytest.approx(1 / 3)
    assert (interval.low, interval.high) == pytest.approx((0.0, 2 / 3))
    assert not interval.excludes_zero()


def test_paired_bootstrap_refuses_different_problems() -> None:
    with pytest.raises(ValueError, match="baseline: has no score for 'b'"):
        paired_bootstrap_ci({"a": 1.0, "b": 0.0}, {"a": 1.0})
    with pytest.raises(ValueError, match="treated: has no score for 'c'"):
        paired_bootstrap_ci({"a": 1.0}, {"a": 1.0, "c": 0.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"resamples": 0}, "resamples"), ({"level": 1.0}, "level"), ({"level": 0.0}, "level")],
)
def test_bootstrap_refuses_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_ci([1.0], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not be empty"):
        bootstrap_ci([])


# --- the runner's pure parts -----------------------------------------------------------------


def _outcome(value: str) -> common_pb2.TestOutcome:
    if value == "raise":
        return common_pb2.TestOutcome(kind=common_pb2.OUTCOME_KIND_RAISED, exception_type="ValueError")
    return common_pb2.TestOutcome(kind=common_pb2.OUTCOME_KIND_RETURNED, value_digest=value)


def _problem(problem_id: str, candidates: dict[str, list[str]]) -> orchestrator_pb2.ProblemState:
    prompt = f"def {problem_id}(x):\n"
    ps = orchestrator_pb2.ProblemState(problem=common_pb2.Problem(problem_id=problem_id, prompt=prompt))
    for cid, outputs in candidates.items():
        ps.candidates.append(common_pb2.Candidate(candidate_id=cid, code=prompt + f"    return {cid!r}\n"))
        ps.results.append(
            common_pb2.CandidateResult(candidate_id=cid, outcomes=[_outcome(v) for v in outputs])
        )
    return ps


def test_successful_picks_draw_only_among_candidates_that_run() -> None:
    problems = [
        _problem("p1", {"ok1": ["a", "b"], "ok2": ["a", "c"], "bad": ["raise", "raise"]}),
        _problem("p2", {"bad1": ["raise", "b"], "bad2": ["raise", "raise"]}),  # e(r) 0.5 < rho 0.8
        _problem("p3", {"ok": ["x", "y"]}),
    ]
    picks = successful_picks(problems, rho=0.8, mode=common_pb2.SIGNATURE_MODE_OUTPUT)
    assert sorted(picks) == ["p1", "p3"]
    assert picks["p1"].completion in ("    return 'ok1'\n", "    return 'ok2'\n")
    assert picks["p3"].prompt == "def p3(x):\n"
    # Seeded by the problem id: the same pick every time.
    assert successful_picks(problems, 0.8, common_pb2.SIGNATURE_MODE_OUTPUT)["p1"] == picks["p1"]


def test_draw_examples_takes_count_problems_seeded() -> None:
    picks = {f"p{i}": common_pb2.TrainExample(problem_id=f"p{i}", completion="x") for i in range(10)}
    three = draw_examples(picks, 3, seed=0, salt="it1")
    assert len(three) == 3 and len({e.problem_id for e in three}) == 3
    assert [e.problem_id for e in draw_examples(picks, 3, seed=0, salt="it1")] == [
        e.problem_id for e in three
    ]
    assert len(draw_examples(picks, 50, seed=0, salt="it1")) == 10  # all of them when fewer
    assert draw_examples(picks, 0, seed=0, salt="it1") == []


def test_state_round_trips(tmp_path: Path) -> None:
    state = State(
        iterations=[
            IterationRecord(arm="consensus", index=1, version_in=0, pool_iteration_id="it", version_out=3)
        ],
        validation={"3": {"done": True, "problems": 8, "selected": 1}},
    )
    state.count("trainings")
    save_state(tmp_path / "state.json", state)
    loaded = load_state(tmp_path / "state.json")
    assert loaded.iterations == state.iterations and loaded.validation == state.validation
    assert loaded.work == {}  # what one invocation did is not carried over


def test_expected_precision_quotes_or_reads_bench_consensus(tmp_path: Path) -> None:
    quoted = expected_precision(0.95, "output", None)
    assert quoted["precision"] == QUOTED_PRECISION[0.95][0] and "bench.consensus" in quoted["source"]
    assert expected_precision(0.93, "output", None)["precision"] is None
    path = tmp_path / "consensus.json"
    row = {
        "pool": "model / model tests",
        "rule": "paper-output",
        "abstain": "nc+trivial",
        "min_confidence": 0.9,
    }
    path.write_text(json.dumps({"tables": {"abstention": [{**row, "precision": 0.6, "selected": 5}]}}))
    assert expected_precision(0.9, "output", path)["precision"] == 0.6
    assert expected_precision(0.95, "output", path)["precision"] is None


def test_budget_spec_is_a_pool_iteration() -> None:
    spec = Budget(problems=5, tests=7, samples=9, min_confidence=0.5).spec()
    assert (spec.num_problems, spec.tests_per_problem, spec.samples_per_problem) == (5, 7, 9)
    assert spec.skip_training and spec.skip_evaluation and spec.min_confidence == 0.5
    assert not Budget().spec().HasField("min_confidence")  # the clusterer's default applies
    with pytest.raises(ValueError, match="samples"):
        Budget(samples=0).validate()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arms", "consensus,bogus"], "--arms: must be a comma-separated list"),
        (["--arms", "random-successful"], "include consensus"),
        (["--problems", "0"], "problems: must be >= 1"),
        (["--eval-samples", "0"], "samples: must be in 1.."),
        (["--precision-from", "/nonexistent.json"], "--precision-from: no file"),
    ],
)
def test_the_runner_refuses_bad_arguments_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.efficacy import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
