"""bench.consensus on known-answer pools of a few problems: real execution, no model.

The pools are made up here from each problem's known programs (canonical solution, its wrong
mutations, the distinct wrong "tail" programs), so the right answer of every rule is known; the
programs run in the executor's process backend and are checked against HumanEval's hidden tests,
as the benchmark does. The model arm needs vLLM and minutes of generation, so it is not run here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest

from bench.consensus import (
    MAX_TESTS,
    Matrix,
    ProblemData,
    Program,
    Results,
    Setting,
    Test,
    build_data,
    execute,
    main,
    score,
    usable_problems,
    valid_fuzzed,
)

PROBLEMS = 4


@pytest.fixture(scope="module")
def executed() -> tuple[list[ProblemData], Results]:
    problems = usable_problems(PROBLEMS)
    data = build_data(problems, seed=0)
    results = Results()
    ran = asyncio.run(execute({p.task_id: p for p in problems}, data, results, sandboxed=False))
    assert ran > 0
    return data, results


def test_fuzzed_inputs_are_valid_and_extend_the_hidden_ones(
    executed: tuple[list[ProblemData], Results],
) -> None:
    data, results = executed
    for d in data:
        canonical = d.canonical
        assert canonical is not None
        rows = results.outcomes[canonical.key]
        hidden = [t.args for t in d.hidden_tests]
        fuzzed = [t.args for t in d.fuzzed_tests]
        assert fuzzed[: len(hidden)] == hidden
        assert len(hidden) < len(fuzzed) <= MAX_TESTS and len(set(fuzzed)) == len(fuzzed)
        assert all(rows[a][0] == "returned" for a in fuzzed)
        # Every known program ran on every fuzzed input.
        assert all(a in results.outcomes[p.key] for p in d.known for a in fuzzed)


def test_valid_fuzzed_drops_inputs_the_canonical_solution_rejects() -> None:
    canonical = Program("def f(x):\n    return 1 / x\n", "canonical")
    pool = [Test(f"({k},)") for k in range(MAX_TESTS + 5)]
    d = ProblemData("T/0", fuzz_pool=pool, known=[canonical])
    rows = {t.args: ("returned", "d", "") for t in pool}
    rows["(0,)"] = ("raised", "", "ZeroDivisionError")
    rows["(3,)"] = ("timeout", "", "")
    del rows["(4,)"]  # never ran: not known to be valid
    kept = valid_fuzzed(d, Results(outcomes={canonical.key: rows}))
    assert [t.args for t in kept[:3]] == ["(1,)", "(2,)", "(5,)"]
    assert len(kept) == MAX_TESTS
    assert valid_fuzzed(ProblemData("T/0", fuzz_pool=pool), Results()) == []


def _output_signature(results: Results, d: ProblemData, index: int) -> tuple[str, ...]:
    rows = results.outcomes[d.known[index].key]
    return tuple(rows[t.args][1] if rows[t.args][0] == "returned" else "!" for t in d.hidden_tests)


def _pick(data: list[ProblemData], results: Results) -> list[tuple[ProblemData, int, int, list[int]]]:
    """(problem, canonical index, a wrong variant that returns non-constant values, tail indices)."""
    out = []
    for d in data:
        canonical = next(i for i, p in enumerate(d.known) if p.kind == "canonical")
        assert results.correct[d.known[canonical].key]
        truth = _output_signature(results, d, canonical)
        wrong = [
            i
            for i, p in enumerate(d.known)
            if p.kind == "variant"
            and not results.correct[p.key]
            and "!" not in (sig := _output_signature(results, d, i))
            and len(set(sig)) > 1
            and sig != truth
        ]
        tail = [i for i, p in enumerate(d.known) if p.kind == "tail"]
        if wrong:
            out.append((d, canonical, wrong[0], tail))
    assert len(out) >= 2, "too few problems with a usable wrong variant"
    return out


def test_canonical_heavy_pool_is_selected_correctly(executed: tuple[list[ProblemData], Results]) -> None:
    data, results = executed
    picked = _pick(data, results)
    for d, canonical, wrong, tail in picked:
        d.draws = [canonical] * 12 + [wrong] * 2 + tail[:10]
    matrix = Matrix([d for d, *_ in picked], results)
    # (Not paper-pass: in pass mode all tail programs fail every test and form one big cluster.)
    for rule in ("paper-output", "cluster"):
        s = score(matrix.decide("known", "hidden inputs", Setting(rule=rule)))
        assert s.selected == len(picked) and s.precision == 1.0, rule
    # Every candidate is correct or wrong as built, and the pool holds a correct one.
    assert all(d.solvable for d in matrix.decide("known", "hidden inputs", Setting()))
    # low_ppl picks by the (random) perplexities: a wrong pick somewhere is expected, not required.
    assert score(matrix.decide("known", "hidden inputs", Setting(rule="low_ppl"))).selected == len(picked)


def test_dominant_wrong_variant_is_picked_and_then_withheld(
    executed: tuple[list[ProblemData], Results],
) -> None:
    data, results = executed
    picked = _pick(data, results)
    for d, canonical, wrong, tail in picked:
        d.draws = [wrong] * 6 + [canonical] * 5 + tail[:4]
    matrix = Matrix([d for d, *_ in picked], results)
    decisions = matrix.decide("known", "hidden inputs", Setting(rule="cluster"))
    plain = score(decisions)
    assert plain.selected == len(picked) and plain.correct == 0
    # A 6-to-5 lead is a coin flip: the Theorem 2.4 confidence is at most 1/2, so 0.8 withholds it.
    assert all(d.confidence <= 0.5 for d in decisions)
    assert score(decisions, min_confidence=0.8).selected == 0
    # With the canonical solution ahead, the same pool is selected correctly.
    for d, canonical, wrong, tail in picked:
        d.draws = [canonical] * 6 + [wrong] * 5 + tail[:4]
    matrix = Matrix([d for d, *_ in picked], results)
    assert score(matrix.decide("known", "hidden inputs", Setting(rule="paper-output"))).precision == 1.0


def test_bench_no_model_end_to_end_and_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "consensus.json"
    argv = ["--no-model", "--problems", "3", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for label in (
        "rules at rho 0.8",
        "sweeps",
        "abstention",
        "calibration",
        "known / hidden inputs",
        "known / fuzzed inputs",
    ):
        assert label in printed
    report = json.loads(out.read_text())
    assert report["problems"] == 3 and report["model_problems"] == 0 and report["executions"] > 0
    hidden, fuzzed = report["tests"]["hidden inputs"], report["tests"]["fuzzed inputs"]
    assert len(fuzzed) == 3 and all(h < f <= MAX_TESTS for h, f in zip(hidden, fuzzed, strict=True))
    tests_sweep = [
        r["value"]
        for r in report["tables"]["sweeps"]
        if r["pool"] == "known / fuzzed inputs" and r["rule"] == "paper-output" and r["vary"] == "tests"
    ]
    assert tests_sweep == [10, 25, 50, 100]
    main_rows = {r["rule"]: r for r in report["tables"]["main"] if r["pool"] == "known / hidden inputs"}
    assert set(main_rows) == {"paper-output", "paper-pass", "random", "cluster", "low_ppl", "success_rate"}
    for r in report["tables"]["main"]:
        assert r["problems"] == 3 and 0 <= r["correct"] <= r["selected"] <= 3
    # A higher threshold never selects more.
    for pool in ("known / hidden inputs", "known / fuzzed inputs"):
        rows = [
            r
            for r in report["tables"]["abstention"]
            if r["pool"] == pool and r["rule"] == "paper-output" and r["abstain"] == "none"
        ]
        assert [r["min_confidence"] for r in rows] == [0.0, 0.5, 0.8, 0.9, 0.95]
        assert all(a["selected"] >= b["selected"] for a, b in itertools.pairwise(rows))
    # The rerun from the cache executes nothing and gives the same tables.
    assert main([*argv[:-2], "--from-cache", "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["executions"] == 0 and again["tables"] == report["tables"]


def test_from_cache_without_a_cache_is_one_readable_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--no-model"]):
        assert main(["--from-cache", "--cache", str(tmp_path / "nothing"), *extra]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ucoder: --from-cache: no cache at"), lines
        assert captured.out == ""
