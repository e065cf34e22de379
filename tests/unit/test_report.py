"""The iteration report (ucoder_common/report.py): aggregates, warnings at their boundaries, rendering."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest

from ucoder_cli import render
from ucoder_common import report, svgplot
from ucoder_common.pb import common_pb2, orchestrator_pb2, problemgen_pb2

CLUSTERED = orchestrator_pb2.STAGE_CLUSTERING
COMPLETED = orchestrator_pb2.ITERATION_PHASE_COMPLETED

VARIED = [
    "Return the sum of the even numbers in a list of integers.",
    "Count how many vowels appear in the given lowercase string.",
    "Find the longest run of equal adjacent characters in a text.",
    "Merge two sorted lists into one sorted list without duplicates.",
    "Compute the greatest common divisor of two positive integers.",
]


def problem(
    pid: str,
    *,
    candidates: int = 8,
    clusters: Sequence[int] = (),
    selected: bool = False,
    confidence: float = 0.0,
    abstained: str = "",
    error: str = "",
    description: str = "",
    category: str = "",
) -> orchestrator_pb2.ProblemState:
    """A problem after clustering: `clusters` are the eligible cluster sizes, largest first."""
    ps = orchestrator_pb2.ProblemState(
        problem=common_pb2.Problem(
            problem_id=pid, description=description or f"problem {pid}", category=category
        ),
        stage_done=orchestrator_pb2.STAGE_TESTS if error else CLUSTERED,
        error=error,
    )
    ps.candidates.extend(common_pb2.Candidate(candidate_id=f"{pid}-c{i}") for i in range(candidates))
    ps.selection.CopyFrom(
        common_pb2.Selection(
            problem_id=pid,
            selected=selected,
            cluster_size=clusters[0] if clusters else 0,
            cluster_sizes=list(clusters),
            num_clusters=len(clusters),
            confidence=confidence,
            abstained=abstained,
        )
    )
    return ps


def iteration(
    iid: str,
    problems: Sequence[orchestrator_pb2.ProblemState] = (),
    *,
    run_index: int = 1,
    run_id: str = "run-1",
    entropy: float | None = 3.6,
    eval_in: tuple[int, float, int] | None = None,
    eval_out: tuple[int, float, int] | None = None,
    phase: int = COMPLETED,
) -> orchestrator_pb2.Iteration:
    it = orchestrator_pb2.Iteration(
        iteration_id=iid,
        phase=phase,  # type: ignore[arg-type]
        run_id=run_id,
        run_index=run_index,
        created_unix_ms=1_000 * run_index,
        finished_unix_ms=1_000 * run_index + 500 if phase != orchestrator_pb2.ITERATION_PHASE_RUNNING else 0,
        problems_generated=len(problems) + 2,
        problems_rejected=2,
        spec=orchestrator_pb2.IterationSpec(iterations=3),
    )
    it.problems.extend(problems)
    it.problem_ids.extend(ps.problem.problem_id for ps in problems)
    it.candidates = sum(len(ps.candidates) for ps in problems)
    it.selected = sum(1 for ps in problems if ps.selection.selected and not ps.error)
    if entropy is not None:
        it.problem_diversity.CopyFrom(
            problemgen_pb2.ProblemDiversity(
                problems=max(len(problems), 1), mean_lexical_entropy=entropy, category_coverage=0.5
            )
        )
    for field, value in (("eval_in", eval_in), ("eval_out", eval_out)):
        if value is not None:
            version, pass_at_1, n = value
            getattr(it, field).CopyFrom(
                orchestrator_pb2.EvalResult(model_version=version, pass_at_1=pass_at_1, num_problems=n)
            )
    return it


def healthy(iid: str = "it-1", run_index: int = 1, entropy: float = 3.6) -> orchestrator_pb2.Iteration:
    """Five problems, four with a clear majority cluster: no warning of any kind."""
    problems = [problem(f"p{i}", clusters=(7, 1), selected=True, confidence=0.95) for i in range(4)]
    problems.append(problem("p4", clusters=(2, 2, 2, 2), confidence=0.2))
    return iteration(iid, problems, run_index=run_index, entropy=entropy)


def codes(built: dict[str, object]) -> list[str]:
    return [w["code"] for w in built["warnings"]]  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- aggregates


def test_every_aggregate_of_one_iteration() -> None:
    problems = [
        problem("a", clusters=(6, 1, 1), selected=True, confidence=0.9),
        problem("b", clusters=(3, 3, 2), confidence=0.3, abstained="min_confidence"),
        problem("c", clusters=(), candidates=4),  # nothing passed the reliability filter
        problem("d", candidates=0, error="tests: no valid test input"),
        problem("e", clusters=(4, 4), confidence=0.5, abstained="min_confidence"),
    ]
    it = iteration("it-1", problems, entropy=3.5)
    it.model_version_in = 2
    it.model_version_out.CopyFrom(common_pb2.ModelVersion(version=3, train_examples=1))
    it.tests_kept = 40
    it.tests_mutated = 12
    it.tests_rejected.update({"syntax": 2, "arity": 3})
    it.tests_repaired.update({"keywords": 4, "joined": 1})
    it.tests_likely_invalid = 1
    it.executions = 123
    it.problem_diversity.distinct_1 = 0.7
    it.problem_diversity.distinct_2 = 0.9
    it.problem_diversity.category_entropy = 1.5
    it.problem_diversity.max_category_share = 0.4
    it.problem_diversity.pool_size = 10
    it.problem_diversity.category_counts.update({"strings": 2, "math": 3})
    it.run_decision = "trained v3 (not evaluated); continuing"
    it.eval_in.CopyFrom(orchestrator_pb2.EvalResult(model_version=2, pass_at_1=0.25, num_problems=20))

    s = report.iteration_summary(it)

    assert s["iteration_id"] == "it-1" and s["run_index"] == 1 and s["phase"] == "completed"
    assert s["model_version_in"] == 2 and s["model_version_out"] == 3 and s["train_examples"] == 1
    assert s["seconds"] == 0.5
    assert s["problems"] == {
        "generated": 7,
        "kept": 5,
        "rejected": 2,
        "failed": 1,
        "with_candidates": 4,
        "clustered": 4,
    }
    div = s["diversity"]
    assert div["source"] == "problemgen" and div["mean_lexical_entropy"] == 3.5
    assert (div["distinct_1"], div["distinct_2"]) == pytest.approx((0.7, 0.9))
    assert div["category_coverage"] == 0.5 and div["max_category_share"] == pytest.approx(0.4)
    assert div["pool_size"] == 10 and div["category_counts"] == {"math": 3, "strings": 2}
    assert s["tests"] == {
        "kept": 40,
        "mutated": 12,
        "rejected": 5,
        "rejected_by_reason": {"arity": 3, "syntax": 2},
        "repaired_by_kind": {"joined": 1, "keywords": 4},
        "likely_invalid": 1,
    }
    assert (s["candidates"], s["executions"], s["selected"]) == (28, 123, 1)
    assert s["selection_rate"] == pytest.approx(1 / 4)  # selected / problems with candidates
    assert s["abstentions"] == {"total": 2, "by_rule": {"min_confidence": 2}}
    clusters = s["clusters"]
    assert clusters["chosen_size_histogram"] == {"0": 1, "3": 1, "4": 1, "6": 1}
    assert clusters["all_size_histogram"] == {"1": 2, "2": 1, "3": 2, "4": 2, "6": 1}
    # Largest cluster over all candidates: 6/8, 3/8, 0/4, 4/8.
    assert clusters["largest_share_mean"] == pytest.approx((0.75 + 0.375 + 0.0 + 0.5) / 4)
    assert (clusters["largest_share_min"], clusters["largest_share_max"]) == (0.0, 0.75)
    assert clusters["low_consensus_problems"] == 2  # 3/8 and 0/4; exactly half is not low
    assert clusters["low_consensus_share"] == 0.5
    assert s["mean_confidence"] == pytest.approx((0.9 + 0.3 + 0.0 + 0.5) / 4)
    assert s["pass_at_1"]["in"] == {
        "model_version": 2,
        "pass_at_1": 0.25,
        "num_problems": 20,
        "num_samples": 0,
    }
    assert s["pass_at_1"]["out"] is None
    assert s["run_decision"].startswith("trained v3")
    markdown = report.render_markdown(report.build_report([it], generated_unix_ms=1_700_000_000_000))
    assert "40 kept (12 of them mutations), 5 rejected" in markdown
    assert "5 kept after a repair (joined 1, keywords 4)" in markdown


def test_diversity_is_computed_from_the_problems_when_problemgen_did_not_measure_it() -> None:
    problems = [
        problem(f"p{i}", clusters=(5,), selected=True, description=text, category=cat)
        for i, (text, cat) in enumerate(
            zip(VARIED[:4], ["lists", "strings", "strings", "lists"], strict=True)
        )
    ]
    s = report.iteration_summary(iteration("it-1", problems, entropy=None))
    div = s["diversity"]
    assert div["source"] == "problems" and div["problems"] == 4
    assert 3.0 < div["mean_lexical_entropy"] < 4.0
    assert div["category_counts"] == {"lists": 2, "strings": 2} and div["max_category_share"] == 0.5
    assert div["category_coverage"] is None  # the pool is unknown


def test_empty_and_failed_iterations_do_not_crash() -> None:
    failed = iteration("it-1", phase=orchestrator_pb2.ITERATION_PHASE_FAILED, entropy=None)
    failed.error = "problem generation: none of 8 generated problems was valid"
    built = report.build_report([failed], generated_unix_ms=1_700_000_000_000)
    (s,) = built["iterations"]
    assert s["diversity"] is None and s["selection_rate"] is None and s["mean_confidence"] is None
    assert s["clusters"]["chosen_size_histogram"] == {} and s["clusters"]["low_consensus_share"] is None
    assert built["warnings"] == [] and built["complete"]
    markdown = report.render_markdown(built)
    assert "none of 8 generated problems was valid" in markdown and "None." in markdown
    page = report.render_html(built)
    assert page.count("<svg") == 6 and "no problem clustered" in page and "not evaluated" in page
    json.dumps(built)
    with pytest.raises(ValueError):
        report.build_report([])


def test_a_running_iteration_says_so() -> None:
    running = healthy()
    running.phase = orchestrator_pb2.ITERATION_PHASE_RUNNING
    running.stage = orchestrator_pb2.STAGE_SAMPLING
    built = report.build_report([running])
    assert not built["complete"] and "still running (sampling)" in built["note"]
    assert "still running" in report.render_markdown(built) and "still running" in report.render_html(built)


def test_the_run_is_its_iterations_up_to_the_target_by_run_index() -> None:
    first, second, third = healthy("a", 1), healthy("b", 2), healthy("c", 3)
    other = healthy("x", 1)
    other.run_id = "run-2"
    lone = iteration("lone", run_id="", entropy=None)
    assert [it.iteration_id for it in report.run_iterations([third, other, first, second], second)] == [
        "a",
        "b",
    ]
    assert [it.iteration_id for it in report.run_iterations([first, lone], lone)] == ["lone"]
    built = report.build_report([third, first, second])
    assert built["iteration_id"] == "c" and built["run_id"] == "run-1" and built["iterations_planned"] == 3
    assert [s["run_index"] for s in built["iterations"]] == [1, 2, 3]
    assert built["schema"] == 1 and json.loads(json.dumps(built)) == built


# ---------------------------------------------------------------------------- warnings


def test_a_healthy_run_raises_no_warning() -> None:
    its = [
        healthy("a", 1, entropy=3.6),
        healthy("b", 2, entropy=3.3),
        healthy("c", 3, entropy=3.5),
    ]
    its[0].eval_in.CopyFrom(orchestrator_pb2.EvalResult(model_version=0, pass_at_1=0.30, num_problems=164))
    for i, value in enumerate((0.34, 0.37, 0.40)):
        its[i].eval_out.CopyFrom(
            orchestrator_pb2.EvalResult(model_version=i + 1, pass_at_1=value, num_problems=164)
        )
    assert report.build_report(its)["warnings"] == []


def low_consensus_iteration(low: int, total: int, selected_high: bool = True) -> orchestrator_pb2.Iteration:
    """`low` problems with no majority cluster (3 of 8), the rest with one (4 of 8 is not low)."""
    problems = [problem(f"low{i}", clusters=(3, 3, 2)) for i in range(low)]
    problems += [problem(f"ok{i}", clusters=(4, 2, 2), selected=selected_high) for i in range(total - low)]
    return iteration("it-1", problems)


@pytest.mark.parametrize(
    ("low", "total", "fires"),
    [(4, 5, True), (5, 5, True), (3, 4, False), (8, 10, True), (7, 10, False)],
)
def test_low_consensus_fires_from_four_problems_in_five(low: int, total: int, fires: bool) -> None:
    built = report.build_report([low_consensus_iteration(low, total)])
    assert codes(built) == (["low_consensus"] if fires else [])
    if fires:
        (w,) = built["warnings"]
        assert w["iteration_id"] == "it-1" and w["iteration_ids"] == ["it-1"]
        assert (
            w["value"] == pytest.approx(low / total) and w["threshold"] == report.LOW_CONSENSUS_PROBLEM_SHARE
        )
        assert f"{low} of {total} clustered problems" in w["message"]


def test_low_consensus_fires_on_a_selection_rate_under_ten_percent() -> None:
    # Majority clusters everywhere, but (almost) everything abstained: nothing to train on.
    def run(selected: int) -> dict[str, object]:
        problems = [
            problem(
                f"p{i}",
                clusters=(6, 2),
                selected=i < selected,
                abstained="" if i < selected else "trivial_body",
            )
            for i in range(10)
        ]
        return report.build_report([iteration("it-1", problems)])

    built = run(0)
    (w,) = built["warnings"]
    assert w["code"] == "low_consensus" and w["value"] == 0.0
    assert w["threshold"] == report.LOW_CONSENSUS_SELECTION_RATE and "selection rate 0%" in w["message"]
    assert codes(run(1)) == []  # exactly 10% is not under 10%


def test_low_consensus_needs_three_clustered_problems() -> None:
    assert codes(report.build_report([low_consensus_iteration(2, 2)])) == []
    assert codes(report.build_report([low_consensus_iteration(3, 3)])) == ["low_consensus"]


@pytest.mark.parametrize(
    ("entropies", "expected"),
    [
        ((3.6, 3.5, 2.2), [("it-3", 2.2, report.ENTROPY_FLOOR_BITS)]),  # below the floor
        ((2.25,), []),  # at the floor
        ((3.6, 2.85), [("it-2", (3.6 - 2.85) / 3.6, report.ENTROPY_DROP_SHARE)]),  # a 20.8% drop
        ((3.6, 2.9), []),  # a 19.4% drop
        ((3.0, 3.6, 2.8), [("it-3", (3.6 - 2.8) / 3.6, report.ENTROPY_DROP_SHARE)]),  # from the peak
        ((2.4, 3.0, 3.6), []),  # rising
    ],
)
def test_entropy_collapse(entropies: Sequence[float], expected: list[tuple[str, float, float]]) -> None:
    its = [healthy(f"it-{i + 1}", i + 1, entropy=e) for i, e in enumerate(entropies)]
    built = report.build_report(its)
    found = [(w["iteration_id"], w["value"], w["threshold"]) for w in built["warnings"]]
    assert [w["code"] for w in built["warnings"]] == ["entropy_collapse"] * len(expected)
    assert found == [(i, pytest.approx(v), t) for i, v, t in expected]


def test_entropy_collapse_names_the_peak_iteration() -> None:
    its = [healthy("a", 1, entropy=3.0), healthy("b", 2, entropy=3.6), healthy("c", 3, entropy=2.0)]
    (w,) = report.build_report(its)["warnings"]
    assert w["iteration_ids"] == ["b", "c"] and "below the floor 2.25" in w["message"]


def evaluated_run(values: Sequence[float], n: int) -> list[orchestrator_pb2.Iteration]:
    """Iterations measuring v0 (eval_in of the first), then v1, v2, ... (eval_out; each next
    iteration's eval_in is the copy of the previous eval_out, as the orchestrator does)."""
    its = []
    for i in range(len(values) - 1):
        its.append(healthy(f"it-{i + 1}", i + 1) if i else healthy("it-1", 1))
        its[-1].eval_in.CopyFrom(
            orchestrator_pb2.EvalResult(model_version=i, pass_at_1=values[i], num_problems=n)
        )
        its[-1].eval_out.CopyFrom(
            orchestrator_pb2.EvalResult(model_version=i + 1, pass_at_1=values[i + 1], num_problems=n)
        )
    return its


@pytest.mark.parametrize(
    ("values", "n", "fires"),
    [
        ((0.30, 0.45, 0.30), 164, True),  # up then down, 15 points each, band 10.5
        ((0.45, 0.30, 0.45), 164, True),  # down then up
        ((0.30, 0.45, 0.55), 164, False),  # monotone
        ((0.30, 0.36, 0.30), 164, False),  # within the noise band
        ((0.30, 0.60, 0.30), 10, False),  # 3 problems of 10 either way: noise (band 44 points)
        ((0.1, 0.9, 0.1), 10, True),
        ((0.30, 0.30, 0.45, 0.30), 164, True),  # a flat step, then the swing
    ],
)
def test_pass_oscillation(values: Sequence[float], n: int, fires: bool) -> None:
    built = report.build_report(evaluated_run(values, n))
    assert [p["model_version"] for p in built["pass_at_1_series"]] == list(range(len(values)))
    assert codes(built) == (["pass_oscillation"] if fires else [])
    if fires:
        (w,) = built["warnings"]
        assert w["value"] > w["threshold"] and w["iteration_id"] == f"it-{len(values) - 1}"
        assert "pass@1 went" in w["message"]


def test_pass_noise_band() -> None:
    points = [report.PassPoint(0, 0.3, 164, "a"), report.PassPoint(1, 0.4, 164, "b")]
    assert report.pass_noise_band(points) == pytest.approx(2 * (0.35 * 0.65 * 2 / 164) ** 0.5)
    # A perfect score has no binomial spread: the band is still one problem.
    assert report.pass_noise_band([report.PassPoint(0, 1.0, 20, "a")]) == pytest.approx(1 / 20)


# ---------------------------------------------------------------------------- rendering


def warned_run() -> dict[str, object]:
    """Three iterations raising all three warnings."""
    its = evaluated_run((0.30, 0.45, 0.30, 0.31), 164)
    its[0].problem_diversity.mean_lexical_entropy = 3.6
    its[1].problem_diversity.mean_lexical_entropy = 3.0
    its[2].problem_diversity.mean_lexical_entropy = 2.0
    its[2].ClearField("problems")
    its[2].problems.extend(problem(f"q{i}", clusters=(2, 2, 2, 2), confidence=0.1) for i in range(5))
    its[2].selected = 0
    return report.build_report(its, generated_unix_ms=1_700_000_000_000)


def test_the_run_with_every_warning() -> None:
    built = warned_run()
    assert sorted(set(codes(built))) == ["entropy_collapse", "low_consensus", "pass_oscillation"]


def test_markdown_has_the_tables_values_and_warnings() -> None:
    built = warned_run()
    markdown = report.render_markdown(built)
    assert markdown.startswith("# Iteration report: it-3\n")
    assert "2023-11-14 22:13:20 UTC" in markdown
    for code in report.WARNING_CODES:
        assert f"- **{code}**" in markdown
    assert "| # | iteration | phase |" in markdown
    rows = [line for line in markdown.splitlines() if re.match(r"\| [123] \| it-", line)]
    assert len(rows) == 3
    assert "| 3.60 |" in rows[0] and "| 2.00 |" in rows[2]  # lexical entropy per iteration
    assert "| 4 / 5 | 80% | 75% | 1 / 5 |" in rows[0]  # selected, rate, largest-cluster share, low
    assert "| 0 / 5 | 0% | 25% | 5 / 5 |" in rows[2]
    assert "## HumanEval pass@1" in markdown and "| v2 | 30.0% | 164 | it-2 |" in markdown
    for i in (1, 2, 3):
        assert f"## Iteration {i}: it-{i}" in markdown
    assert "| chosen cluster sizes | 7: 4, 2: 1 |" not in markdown  # sizes ascend
    assert "| chosen cluster sizes | 2: 1, 7: 4 |" in markdown


def test_html_has_one_svg_per_chart_with_its_marks() -> None:
    built = warned_run()
    page = report.render_html(built)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    svgs = re.findall(r'<svg [^>]*data-chart="(\w+)"[^>]*>(.*?)</svg>', page, flags=re.DOTALL)
    by_name = dict(svgs)
    assert list(by_name) == [
        "cluster_sizes_chosen",
        "cluster_sizes_all",
        "lexical_entropy",
        "category_coverage",
        "selection_rate",
        "pass_at_1",
    ]
    # Bars per size and iteration: sizes 2 and 7, three iterations; counts on whole grid lines.
    assert by_name["cluster_sizes_chosen"].count('<rect class="bar"') == 2 * 3
    assert re.findall(r'text-anchor="end">([^<]*)<', by_name["cluster_sizes_chosen"]) == [
        "0",
        "2",
        "4",
        "6",
        "8",
    ]
    assert by_name["lexical_entropy"].count('<circle class="point"') == 3
    assert by_name["lexical_entropy"].count('class="reference"') == 2  # the paper and the floor
    assert "lexical entropy: 2.00" in by_name["lexical_entropy"]
    assert by_name["selection_rate"].count('<rect class="bar"') == 2 * 3
    assert by_name["pass_at_1"].count('<circle class="point"') == 4
    assert page.count('<li data-code="') == len(built["warnings"])  # type: ignore[arg-type]
    assert "it-3" in page and "<td>3.60</td>" in page


def test_text_is_escaped() -> None:
    it = healthy("it-1")
    it.error = "<b>boom</b> & more"
    it.phase = orchestrator_pb2.ITERATION_PHASE_FAILED
    page = report.render_html(report.build_report([it]))
    assert "<b>boom" not in page and "&lt;b&gt;boom&lt;/b&gt; &amp; more" in page
    chart = svgplot.bar_chart("x", "a < b", ["<i>"], [1.0])
    assert "a &lt; b" in chart and "&lt;i&gt;" in chart and "<i>" not in chart


def test_svgplot_checks_and_scales() -> None:
    assert [svgplot.nice_max(v) for v in (0.0, 0.7, 1.0, 3.64, 7, 12, 260)] == [1, 1, 1, 5, 10, 20, 500]
    assert [svgplot.count_max(v) for v in (0, 1, 4, 5, 20)] == [4, 4, 4, 8, 20]  # whole grid lines
    with pytest.raises(ValueError, match="2 values for 3"):
        svgplot.grouped_bar_chart("x", "t", ["a", "b", "c"], [("s", [1.0, 2.0])])
    with pytest.raises(ValueError, match="1 values for 2"):
        svgplot.line_chart("x", "t", ["a", "b"], [("s", [1.0])])
    # A gap (None) breaks the line: two points either side are two separate polylines.
    chart = svgplot.line_chart("x", "t", ["a", "b", "c", "d", "e"], [("s", [1.0, 2.0, None, 1.0, 3.0])])
    assert chart.count("<polyline") == 2 and chart.count("<circle") == 4


# ---------------------------------------------------------------------------- the CLI's rendering


def test_cli_report_shows_diversity_consensus_and_a_warnings_panel() -> None:
    text = "\n".join(render.to_text(r, width=200) for r in render.report_renderables(warned_run()))
    assert "problem diversity per iteration" in text and "consensus per iteration" in text
    assert "3.60" in text and "2.00" in text and "it-3" in text
    assert "warnings (" in text
    for code in report.WARNING_CODES:
        assert code in text
    quiet = report.build_report([healthy()])
    text = "\n".join(render.to_text(r, width=200) for r in render.report_renderables(quiet))
    assert "no failure signature" in text


def test_cli_bars() -> None:
    assert render.bar(1.0, width=4) == "████"
    assert render.bar(0.5, width=4) == "██  "
    assert render.bar(0.0, width=3) == "   " and render.bar(None) == ""
    assert render.bar(0.1, width=1) == "▏"
    assert render.bar(2.0, top=1.0, width=2) == "██"  # clipped


def test_get_shows_diversity_tests_rejected_and_abstentions() -> None:
    it = iteration(
        "it-1",
        [
            problem("a", clusters=(3, 3), abstained="min_confidence"),
            problem("b", clusters=(5,), selected=True),
        ],
        entropy=3.25,
    )
    it.problem_diversity.pool_size = 12
    it.problem_diversity.max_category_share = 0.25
    it.tests_rejected.update({"arity": 4, "not_literal": 1})
    it.tests_likely_invalid = 2
    it.tests_kept = 30
    it.tests_mutated = 18
    text = render.to_text(render.result_table(it), width=200)
    assert re.search(r"tests kept\s+.\s+30 \(18 mutations\)", text)
    assert "lexical entropy 3.25 bits, category coverage 50% of 12, max category share 25%" in text
    assert "tests rejected" in text and "5 (arity 4, not_literal 1)" in text
    assert "tests repaired" not in text  # none repaired: no row
    assert re.search(r"tests likely invalid\s+.\s+2", text)
    it.tests_repaired.update({"swapped": 2, "joined": 1})
    text = render.to_text(render.result_table(it), width=200)
    assert re.search(r"tests repaired\s+.\s+3 \(joined 1, swapped 2\)", text)
    assert "abstentions" in text and "1 (min_confidence 1)" in text
    # Without per-problem state, nothing is said about abstentions.
    it.ClearField("problems")
    assert "abstentions" not in render.to_text(render.result_table(it), width=200)
