"""The iteration report: what a run's iterations did, and the paper's failure signatures as warnings.

Pure: Iteration messages (with their problems) in, a JSON-serialisable dict out (``build_report``),
and that dict rendered as Markdown (``render_markdown``) or as one self-contained HTML page with
inline SVG plots (``render_html``). The orchestrator builds one when an iteration ends, over its
run so far, and stores the three in the Object Store; ``ucoder report`` shows it.

Per iteration: problems generated / kept / rejected, their diversity (lexical entropy, distinct-n,
category coverage and shares), tests kept / rejected by reason / likely invalid, candidates,
executions, selections, the selection rate, abstentions by rule, the cluster sizes (histograms of
the chosen and of all clusters, the largest cluster's share of a problem's candidates), the mean
Theorem 2.4 confidence and HumanEval pass@1 in and out.

Warnings (the failure signatures ../shared/DESIGN.md asks to surface; thresholds below):

- ``low_consensus``: consensus is low almost everywhere in an iteration (weak tests, or problems
  too hard for the model): the selection is then mostly noise and training teaches it.
- ``entropy_collapse``: the problems' mean lexical entropy falls below a floor, or drops by more
  than a share from the run's best earlier iteration (mode collapse of the problem generator).
- ``pass_oscillation``: HumanEval pass@1 goes up then down (or down then up) over three
  consecutive measurements, each swing beyond sampling noise (over-fitting, the paper's "mild
  oscillation" after its best iteration).
"""

from __future__ import annotations

import collections
import html
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ucoder_common import diversity, svgplot
from ucoder_common.pb import orchestrator_pb2
from ucoder_common.phases import TERMINAL_PHASES

SCHEMA = 1

# --- thresholds ----------------------------------------------------------------------------------

#: low_consensus: a problem's consensus is low when its largest cluster holds fewer than this share
#: of its candidates, i.e. no behaviour is shared by half of them. The paper's selection trusts the
#: largest cluster; without a majority a few more samples can change which cluster is largest (what
#: adaptive sampling measures as p_change), and the Theorem 2.4 confidence of such a pick is low
#: (its sign test against the runner-up has little margin to work with).
LOW_CONSENSUS_CLUSTER_SHARE = 0.5
#: ... and it is low "everywhere" when that holds for at least this share of the clustered problems:
#: four problems in five, leaving room for the few easy problems every iteration has.
LOW_CONSENSUS_PROBLEM_SHARE = 0.8
#: ... or when fewer than this share of the problems with candidates is selected at all: one problem
#: in ten trains on almost nothing, whatever the clusters look like (abstentions included).
LOW_CONSENSUS_SELECTION_RATE = 0.1
#: Fewer clustered problems than this say nothing about "everywhere": no low_consensus warning.
LOW_CONSENSUS_MIN_PROBLEMS = 3

#: The paper's generated problems: lexical entropy mean 3.64 bits, standard deviation 0.69.
PAPER_LEXICAL_ENTROPY = 3.64
PAPER_LEXICAL_ENTROPY_SD = 0.69
#: entropy_collapse: an iteration's *mean* lexical entropy below the paper's mean minus two standard
#: deviations of a single problem (3.64 - 2 x 0.69 = 2.26, rounded): the average problem is then as
#: repetitive as the paper's 2.5th-percentile one (about five equally used words).
ENTROPY_FLOOR_BITS = 2.25
#: ... or a relative drop of more than this from the run's best earlier iteration. The mean over n
#: problems varies by about 0.69 / sqrt(n) bits (0.28 at 6 problems, 8% of 3.64) and the sampling
#: temperature alone moved it by 7% (3.64 at T 1.0, 3.39 at T 0.7; docs/design.md), so 20% is
#: beyond both.
ENTROPY_DROP_SHARE = 0.2

#: pass_oscillation: a swing counts when it exceeds this many standard errors of the difference of
#: two pass@1 measurements on n problems, sqrt(p(1-p) * 2/n) with p their pooled mean (at least one
#: problem, 1/n). Two standard errors: pure sampling noise makes a swing this large about once in
#: twenty measurement pairs, and two opposite ones in a row far more rarely. With 164 problems at
#: pass@1 ~ 0.8 the band is about 8.8 points; with the 20-problem evaluations of a quick run, 25.
PASS_NOISE_Z = 2.0

THRESHOLDS: dict[str, float] = {
    "low_consensus_cluster_share": LOW_CONSENSUS_CLUSTER_SHARE,
    "low_consensus_problem_share": LOW_CONSENSUS_PROBLEM_SHARE,
    "low_consensus_selection_rate": LOW_CONSENSUS_SELECTION_RATE,
    "low_consensus_min_problems": LOW_CONSENSUS_MIN_PROBLEMS,
    "entropy_floor_bits": ENTROPY_FLOOR_BITS,
    "entropy_drop_share": ENTROPY_DROP_SHARE,
    "pass_noise_z": PASS_NOISE_Z,
}

WARNING_CODES = ("low_consensus", "entropy_collapse", "pass_oscillation")

Iteration = orchestrator_pb2.Iteration


def _phase_name(phase: int) -> str:
    try:
        return str(orchestrator_pb2.IterationPhase.Name(phase)).removeprefix("ITERATION_PHASE_").lower()
    except ValueError:
        return f"phase {phase}"


def _stage_name(stage: int) -> str:
    try:
        return str(orchestrator_pb2.Stage.Name(stage)).removeprefix("STAGE_").lower()
    except ValueError:
        return f"stage {stage}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _histogram(sizes: Iterable[int]) -> dict[str, int]:
    """size -> count, sizes ascending; keys are strings so that the dict is JSON as it is."""
    counts = collections.Counter(sizes)
    return {str(size): counts[size] for size in sorted(counts)}


# --- the run -------------------------------------------------------------------------------------


def run_of(iteration: Iteration) -> str:
    """The run an iteration belongs to (a lone iteration is a run of one, named by itself)."""
    return iteration.run_id or iteration.iteration_id


def run_iterations(all_iterations: Iterable[Iteration], target: Iteration) -> list[Iteration]:
    """The iterations of `target`'s run up to and including it, by run index."""
    run, index = run_of(target), max(target.run_index, 1)
    chosen = {
        it.iteration_id: it
        for it in all_iterations
        if run_of(it) == run and max(it.run_index, 1) <= index and it.iteration_id != target.iteration_id
    }
    chosen[target.iteration_id] = target
    return sorted(chosen.values(), key=lambda it: (max(it.run_index, 1), it.created_unix_ms))


# --- one iteration -------------------------------------------------------------------------------


def _clustered(it: Iteration) -> list[orchestrator_pb2.ProblemState]:
    """Problems whose consensus was decided (clustering done, no error)."""
    return [ps for ps in it.problems if not ps.error and ps.stage_done == orchestrator_pb2.STAGE_CLUSTERING]


def largest_cluster_share(ps: orchestrator_pb2.ProblemState) -> float:
    """The largest cluster's share of all the problem's candidates (those the reliability filter
    dropped count against it); 0.0 without candidates."""
    if not ps.candidates:
        return 0.0
    return max(ps.selection.cluster_sizes, default=0) / len(ps.candidates)


def diversity_summary(it: Iteration) -> dict[str, Any] | None:
    """The problems' diversity as problemgen measured it; computed from the problems when the
    iteration has no measurement (older iterations), without the pool-relative coverage."""
    measured = it.problem_diversity
    if measured.problems > 0:
        return {
            "source": "problemgen",
            "problems": measured.problems,
            "mean_lexical_entropy": measured.mean_lexical_entropy,
            "distinct_1": measured.distinct_1,
            "distinct_2": measured.distinct_2,
            "category_coverage": measured.category_coverage,
            "category_entropy": measured.category_entropy,
            "max_category_share": measured.max_category_share,
            "pool_size": measured.pool_size,
            # Most frequent first, ties by name (as diversity.category_counts orders them).
            "category_counts": dict(sorted(measured.category_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    if not it.problems:
        return None
    texts = [ps.problem.description or ps.problem.docstring for ps in it.problems]
    categories = [ps.problem.category for ps in it.problems]
    computed = diversity.diversity_report(texts, categories, [c for c in categories if c])
    return {
        "source": "problems",
        "problems": computed.problems,
        "mean_lexical_entropy": computed.mean_lexical_entropy,
        "distinct_1": computed.distinct_1,
        "distinct_2": computed.distinct_2,
        "category_coverage": None,  # the category pool is not recorded on the iteration
        "category_entropy": computed.category_entropy,
        "max_category_share": computed.max_category_share,
        "pool_size": None,
        "category_counts": computed.category_counts,
    }


def _eval(it: Iteration, field: str) -> dict[str, Any] | None:
    if not it.HasField(field):
        return None
    result: orchestrator_pb2.EvalResult = getattr(it, field)
    return {
        "model_version": result.model_version,
        "pass_at_1": result.pass_at_1,
        "num_problems": result.num_problems,
        "num_samples": result.num_samples,
    }


def iteration_summary(it: Iteration) -> dict[str, Any]:
    """Every aggregate of one iteration (its `problems` field filled in; empty is fine)."""
    clustered = _clustered(it)
    with_candidates = sum(1 for ps in it.problems if ps.candidates)
    shares = [largest_cluster_share(ps) for ps in clustered]
    low = sum(1 for share in shares if share < LOW_CONSENSUS_CLUSTER_SHARE)
    abstained = collections.Counter(ps.selection.abstained for ps in clustered if ps.selection.abstained)
    rejected_by_reason = dict(sorted(it.tests_rejected.items()))
    out = it.model_version_out if it.HasField("model_version_out") else None
    seconds = (
        (it.finished_unix_ms - it.created_unix_ms) / 1000
        if it.finished_unix_ms > 0 and it.created_unix_ms > 0
        else None
    )
    return {
        "iteration_id": it.iteration_id,
        "run_index": max(it.run_index, 1),
        "phase": _phase_name(it.phase),
        "stage": _stage_name(it.stage),
        "error": it.error,
        "created_unix_ms": it.created_unix_ms,
        "finished_unix_ms": it.finished_unix_ms,
        "seconds": seconds,
        "model_version_in": it.model_version_in,
        "model_version_out": out.version if out is not None else None,
        "train_examples": out.train_examples if out is not None else None,
        "run_decision": it.run_decision,
        "problems": {
            "generated": it.problems_generated,
            "kept": len(it.problem_ids) or len(it.problems),
            "rejected": it.problems_rejected,
            "failed": sum(1 for ps in it.problems if ps.error),
            "with_candidates": with_candidates,
            "clustered": len(clustered),
        },
        "diversity": diversity_summary(it),
        "tests": {
            "kept": it.tests_kept,
            "mutated": it.tests_mutated,
            "rejected": sum(rejected_by_reason.values()),
            "rejected_by_reason": rejected_by_reason,
            "repaired_by_kind": dict(sorted(it.tests_repaired.items())),
            "likely_invalid": it.tests_likely_invalid,
        },
        "candidates": it.candidates,
        "executions": it.executions,
        "selected": it.selected,
        "selection_rate": it.selected / with_candidates if with_candidates else None,
        "abstentions": {"total": sum(abstained.values()), "by_rule": dict(sorted(abstained.items()))},
        "clusters": {
            "chosen_size_histogram": _histogram(ps.selection.cluster_size for ps in clustered),
            "all_size_histogram": _histogram(size for ps in clustered for size in ps.selection.cluster_sizes),
            "largest_share_mean": _mean(shares),
            "largest_share_min": min(shares, default=None),
            "largest_share_max": max(shares, default=None),
            "low_consensus_problems": low,
            "low_consensus_share": low / len(clustered) if clustered else None,
        },
        "mean_confidence": _mean([ps.selection.confidence for ps in clustered]),
        "pass_at_1": {"in": _eval(it, "eval_in"), "out": _eval(it, "eval_out")},
    }


# --- pass@1 over the run -------------------------------------------------------------------------


@dataclass(frozen=True)
class PassPoint:
    """One HumanEval measurement of the run: a model version's pass@1 on num_problems problems."""

    model_version: int
    pass_at_1: float
    num_problems: int
    iteration_id: str


def pass_series(iterations: Sequence[Iteration]) -> list[PassPoint]:
    """The run's measurements in order, each version once (an iteration's eval_in is usually the
    previous one's eval_out, copied)."""
    points: list[PassPoint] = []
    seen: set[int] = set()
    for it in iterations:
        for field in ("eval_in", "eval_out"):
            if not it.HasField(field):
                continue
            result: orchestrator_pb2.EvalResult = getattr(it, field)
            if result.model_version in seen or result.num_problems <= 0:
                continue
            seen.add(result.model_version)
            points.append(
                PassPoint(result.model_version, result.pass_at_1, result.num_problems, it.iteration_id)
            )
    return points


def pass_noise_band(points: Sequence[PassPoint]) -> float:
    """PASS_NOISE_Z standard errors of the difference of two of these measurements (see above)."""
    n = min(p.num_problems for p in points)
    pooled = sum(p.pass_at_1 for p in points) / len(points)
    se = math.sqrt(max(pooled * (1 - pooled), 0.0) * 2 / n)
    return max(PASS_NOISE_Z * se, 1 / n)


# --- warnings ------------------------------------------------------------------------------------


def _warning(
    code: str, iteration_id: str, iteration_ids: Sequence[str], message: str, value: float, threshold: float
) -> dict[str, Any]:
    return {
        "code": code,
        "iteration_id": iteration_id,
        "iteration_ids": list(dict.fromkeys(iteration_ids)),
        "message": message,
        "value": value,
        "threshold": threshold,
    }


def low_consensus_warnings(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for s in summaries:
        clustered = s["problems"]["clustered"]
        if clustered < LOW_CONSENSUS_MIN_PROBLEMS:
            continue
        iid, low_share, rate = s["iteration_id"], s["clusters"]["low_consensus_share"], s["selection_rate"]
        context = (
            f"{s['clusters']['low_consensus_problems']} of {clustered} clustered problems have no cluster "
            f"holding {LOW_CONSENSUS_CLUSTER_SHARE:.0%} of their candidates; selection rate "
            + (f"{rate:.0%}" if rate is not None else "-")
        )
        if low_share >= LOW_CONSENSUS_PROBLEM_SHARE:
            message = (
                f"iteration {s['run_index']}: low consensus on {low_share:.0%} of problems "
                f"(threshold {LOW_CONSENSUS_PROBLEM_SHARE:.0%}): {context}; tests may be weak or problems "
                "too hard for the model"
            )
            out.append(_warning("low_consensus", iid, [iid], message, low_share, LOW_CONSENSUS_PROBLEM_SHARE))
        elif rate is not None and rate < LOW_CONSENSUS_SELECTION_RATE:
            message = (
                f"iteration {s['run_index']}: selection rate {rate:.0%} is under "
                f"{LOW_CONSENSUS_SELECTION_RATE:.0%}: {context}; almost nothing to train on"
            )
            out.append(_warning("low_consensus", iid, [iid], message, rate, LOW_CONSENSUS_SELECTION_RATE))
    return out


def entropy_collapse_warnings(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    peak: tuple[float, str] | None = None  # the best earlier iteration: (entropy, id)
    for s in summaries:
        div = s["diversity"]
        if div is None or not div["problems"]:
            continue
        entropy, iid = float(div["mean_lexical_entropy"]), s["iteration_id"]
        if entropy < ENTROPY_FLOOR_BITS:
            message = (
                f"iteration {s['run_index']}: mean lexical entropy of the problems {entropy:.2f} bits is "
                f"below the floor {ENTROPY_FLOOR_BITS:.2f} (paper: {PAPER_LEXICAL_ENTROPY} bits); the "
                "problem generator repeats itself"
            )
            ids = [peak[1], iid] if peak is not None else [iid]
            out.append(_warning("entropy_collapse", iid, ids, message, entropy, ENTROPY_FLOOR_BITS))
        elif peak is not None and peak[0] > 0 and (peak[0] - entropy) / peak[0] > ENTROPY_DROP_SHARE:
            drop = (peak[0] - entropy) / peak[0]
            message = (
                f"iteration {s['run_index']}: mean lexical entropy fell {drop:.0%} to {entropy:.2f} bits "
                f"from {peak[0]:.2f} (iteration {peak[1]}), more than {ENTROPY_DROP_SHARE:.0%}; the "
                "problems are getting less diverse"
            )
            out.append(_warning("entropy_collapse", iid, [peak[1], iid], message, drop, ENTROPY_DROP_SHARE))
        if peak is None or entropy > peak[0]:
            peak = (entropy, iid)
    return out


def pass_oscillation_warnings(points: Sequence[PassPoint]) -> list[dict[str, Any]]:
    out = []
    for a, b, c in zip(points, points[1:], points[2:], strict=False):
        first, second = b.pass_at_1 - a.pass_at_1, c.pass_at_1 - b.pass_at_1
        band = pass_noise_band((a, b, c))
        fewest = min(a.num_problems, b.num_problems, c.num_problems)
        if first * second < 0 and abs(first) > band and abs(second) > band:
            shape = "up then down" if first > 0 else "down then up"
            message = (
                f"pass@1 went {shape}: v{a.model_version} {a.pass_at_1:.1%} -> v{b.model_version} "
                f"{b.pass_at_1:.1%} -> v{c.model_version} {c.pass_at_1:.1%}, both swings beyond the noise "
                f"band of {band:.1%} ({PASS_NOISE_Z:g} standard errors on {fewest} problems); the run may "
                "be over-fitting: keep the best version"
            )
            out.append(
                _warning(
                    "pass_oscillation",
                    c.iteration_id,
                    [a.iteration_id, b.iteration_id, c.iteration_id],
                    message,
                    min(abs(first), abs(second)),
                    band,
                )
            )
    return out


# --- the report ----------------------------------------------------------------------------------


def build_report(iterations: Sequence[Iteration], generated_unix_ms: int = 0) -> dict[str, Any]:
    """The report of a run up to its last iteration (by run index); `iterations` carry their problems."""
    if not iterations:
        raise ValueError("a report needs at least one iteration")
    ordered = sorted(iterations, key=lambda it: (max(it.run_index, 1), it.created_unix_ms))
    target = ordered[-1]
    summaries = [iteration_summary(it) for it in ordered]
    points = pass_series(ordered)
    warnings = [
        *low_consensus_warnings(summaries),
        *entropy_collapse_warnings(summaries),
        *pass_oscillation_warnings(points),
    ]
    complete = target.phase in TERMINAL_PHASES
    note = (
        ""
        if complete
        else f"iteration {target.iteration_id} is still running ({_stage_name(target.stage)}): "
        "this report covers what it has done so far"
    )
    return {
        "schema": SCHEMA,
        "iteration_id": target.iteration_id,
        "run_id": run_of(target),
        "iterations_planned": max(target.spec.iterations, 1),
        "complete": complete,
        "note": note,
        "generated_unix_ms": generated_unix_ms,
        "thresholds": dict(THRESHOLDS),
        "iterations": summaries,
        "pass_at_1_series": [
            {
                "model_version": p.model_version,
                "pass_at_1": p.pass_at_1,
                "num_problems": p.num_problems,
                "iteration_id": p.iteration_id,
            }
            for p in points
        ],
        "warnings": warnings,
    }


# --- rendering -----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pass_text(s: dict[str, Any]) -> str:
    parts = [
        f"v{m['model_version']} {m['pass_at_1']:.1%}"
        for m in (s["pass_at_1"]["in"], s["pass_at_1"]["out"])
        if m is not None
    ]
    return " -> ".join(parts) or "-"


RUN_COLUMNS = (
    "#",
    "iteration",
    "phase",
    "model",
    "problems kept / generated",
    "lexical entropy",
    "distinct-2",
    "category coverage",
    "max category share",
    "selected / with candidates",
    "selection rate",
    "largest cluster share",
    "low-consensus problems",
    "mean confidence",
    "pass@1",
)


def run_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per iteration (RUN_COLUMNS): diversity and consensus side by side."""
    rows = []
    for s in report["iterations"]:
        div = s["diversity"] or {}
        clusters = s["clusters"]
        out = s["model_version_out"]
        rows.append(
            [
                str(s["run_index"]),
                s["iteration_id"],
                s["phase"],
                f"v{s['model_version_in']} -> " + (f"v{out}" if out is not None else "none"),
                f"{s['problems']['kept']} / {s['problems']['generated']}",
                _num(div.get("mean_lexical_entropy")),
                _num(div.get("distinct_2")),
                _pct(div.get("category_coverage")),
                _pct(div.get("max_category_share")),
                f"{s['selected']} / {s['problems']['with_candidates']}",
                _pct(s["selection_rate"]),
                _pct(clusters["largest_share_mean"]),
                f"{clusters['low_consensus_problems']} / {s['problems']['clustered']}",
                _num(s["mean_confidence"]),
                _pass_text(s),
            ]
        )
    return rows


def detail_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows of one iteration's details."""
    div = s["diversity"]
    tests = s["tests"]
    clusters = s["clusters"]
    reasons = ", ".join(f"{reason} {count}" for reason, count in tests["rejected_by_reason"].items())
    repairs = ", ".join(f"{repair} {count}" for repair, count in tests.get("repaired_by_kind", {}).items())
    abstained = ", ".join(f"{rule} {count}" for rule, count in s["abstentions"]["by_rule"].items())
    rows = [
        ("phase", s["phase"] + (f" ({s['error']})" if s["error"] else "")),
        (
            "problems",
            f"{s['problems']['kept']} kept of {s['problems']['generated']} generated, "
            f"{s['problems']['rejected']} rejected, {s['problems']['failed']} failed later",
        ),
    ]
    if div is not None:
        rows += [
            (
                "diversity",
                f"lexical entropy {div['mean_lexical_entropy']:.2f} bits, "
                f"distinct-1 {div['distinct_1']:.2f}, distinct-2 {div['distinct_2']:.2f}",
            ),
            (
                "categories",
                f"coverage {_pct(div['category_coverage'])} of {div['pool_size'] or '?'} categories, "
                f"entropy {div['category_entropy']:.2f} bits, max share {_pct(div['max_category_share'])}",
            ),
            (
                "problems per category",
                ", ".join(f"{name} {count}" for name, count in div["category_counts"].items()) or "-",
            ),
        ]
    else:
        rows.append(("diversity", "not measured"))
    rows += [
        (
            "tests",
            f"{tests['kept']} kept"
            + (f" ({tests['mutated']} of them mutations)" if tests.get("mutated") else "")
            + f", {tests['rejected']} rejected"
            + (f" ({reasons})" if reasons else "")
            + (
                f", {sum(tests['repaired_by_kind'].values())} kept after a repair ({repairs})"
                if repairs
                else ""
            )
            + f", {tests['likely_invalid']} likely invalid",
        ),
        ("candidates / executions", f"{s['candidates']} / {s['executions']}"),
        (
            "selected",
            f"{s['selected']} of {s['problems']['with_candidates']} problems with candidates "
            f"({_pct(s['selection_rate'])})",
        ),
        ("abstentions", f"{s['abstentions']['total']}" + (f" ({abstained})" if abstained else "")),
        ("chosen cluster sizes", _hist_text(clusters["chosen_size_histogram"])),
        ("all cluster sizes", _hist_text(clusters["all_size_histogram"])),
        (
            "largest cluster share",
            f"mean {_pct(clusters['largest_share_mean'])}, min {_pct(clusters['largest_share_min'])}, "
            f"max {_pct(clusters['largest_share_max'])}; {clusters['low_consensus_problems']} of "
            f"{s['problems']['clustered']} under {LOW_CONSENSUS_CLUSTER_SHARE:.0%}",
        ),
        ("mean confidence", _num(s["mean_confidence"])),
        ("pass@1 (HumanEval)", _pass_text(s)),
    ]
    if s["run_decision"]:
        rows.append(("run", s["run_decision"]))
    return rows


def _hist_text(histogram: dict[str, int]) -> str:
    return ", ".join(f"{size}: {count}" for size, count in histogram.items()) or "-"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _generated_text(report: dict[str, Any]) -> str:
    ms = report["generated_unix_ms"]
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000)) if ms else "-"


def render_markdown(report: dict[str, Any]) -> str:
    """The readable summary: the run's table, the warnings, then each iteration's details."""
    n = len(report["iterations"])
    lines = [
        f"# Iteration report: {report['iteration_id']}",
        "",
        f"Run {report['run_id']}: iteration {n} of {report['iterations_planned']} (generated "
        f"{_generated_text(report)}).",
    ]
    if report["note"]:
        lines += ["", f"**Note:** {report['note']}."]
    lines += ["", "## Warnings", ""]
    if report["warnings"]:
        lines += [
            f"- **{w['code']}** ({w['iteration_id']}): {w['message']} "
            f"(value {w['value']:.3g}, threshold {w['threshold']:.3g})"
            for w in report["warnings"]
        ]
    else:
        lines.append("None.")
    lines += ["", "## Diversity and consensus per iteration", ""]
    lines += _md_table(RUN_COLUMNS, run_rows(report))
    if report["pass_at_1_series"]:
        lines += ["", "## HumanEval pass@1", ""]
        lines += _md_table(
            ("model", "pass@1", "problems", "iteration"),
            [
                (f"v{p['model_version']}", f"{p['pass_at_1']:.1%}", str(p["num_problems"]), p["iteration_id"])
                for p in report["pass_at_1_series"]
            ],
        )
    for s in report["iterations"]:
        lines += ["", f"## Iteration {s['run_index']}: {s['iteration_id']}", ""]
        lines += _md_table(("what", "value"), detail_rows(s))
    return "\n".join(lines) + "\n"


def _sizes_chart(report: dict[str, Any], key: str, name: str, title: str) -> str:
    summaries = report["iterations"]
    sizes = sorted({int(size) for s in summaries for size in s["clusters"][key]})
    series = [
        (f"it {s['run_index']}", [float(s["clusters"][key].get(str(size), 0)) for size in sizes])
        for s in summaries
    ]
    return svgplot.grouped_bar_chart(
        name, title, [str(size) for size in sizes], series, counts=True, empty_message="no problem clustered"
    )


def charts(report: dict[str, Any]) -> dict[str, str]:
    """The report's plots as SVG, by name."""
    summaries = report["iterations"]
    labels = [f"it {s['run_index']}" for s in summaries]
    divs = [s["diversity"] or {} for s in summaries]
    points = report["pass_at_1_series"]
    return {
        "cluster_sizes_chosen": _sizes_chart(
            report,
            "chosen_size_histogram",
            "cluster_sizes_chosen",
            "Problems by the size of their chosen cluster",
        ),
        "cluster_sizes_all": _sizes_chart(
            report,
            "all_size_histogram",
            "cluster_sizes_all",
            "Clusters by size (all clusters of all problems)",
        ),
        "lexical_entropy": svgplot.line_chart(
            "lexical_entropy",
            "Mean lexical entropy of the problems (bits)",
            labels,
            [("lexical entropy", [d.get("mean_lexical_entropy") for d in divs])],
            references=[("paper 3.64", PAPER_LEXICAL_ENTROPY), ("floor", ENTROPY_FLOOR_BITS)],
            y_format="{:.2f}",
        ),
        "category_coverage": svgplot.line_chart(
            "category_coverage",
            "Category coverage and largest category share",
            labels,
            [
                ("coverage", [d.get("category_coverage") for d in divs]),
                ("max share", [d.get("max_category_share") for d in divs]),
            ],
            y_max=1.0,
            y_format="{:.0%}",
        ),
        "selection_rate": svgplot.grouped_bar_chart(
            "selection_rate",
            "Selection rate and mean largest-cluster share",
            labels,
            [
                ("selection rate", [s["selection_rate"] or 0.0 for s in summaries]),
                ("largest cluster share", [s["clusters"]["largest_share_mean"] or 0.0 for s in summaries]),
            ],
            y_max=1.0,
            y_format="{:.0%}",
        ),
        "pass_at_1": svgplot.line_chart(
            "pass_at_1",
            "HumanEval pass@1 by model version",
            [f"v{p['model_version']}" for p in points],
            [("pass@1", [p["pass_at_1"] for p in points])],
            y_max=1.0,
            y_format="{:.0%}",
            empty_message="not evaluated",
        ),
    }


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
.warnings li { margin: 0.3em 0; }
.warning-code { font-weight: bold; color: #b00020; }
.note { background: #fff6d5; padding: 0.5em; }
.charts svg { margin: 0.5em; border: 1px solid #eee; }
"""


def _html_table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    parts = ["<table>"]
    if header is not None:
        parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page: the warnings, the run's table, the plots (inline SVG), the details."""
    esc = html.escape
    n = len(report["iterations"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>UCoder iteration report {esc(report['iteration_id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Iteration report: {esc(report['iteration_id'])}</h1>",
        f"<p>Run {esc(report['run_id'])}: iteration {n} of {report['iterations_planned']} "
        f"(generated {esc(_generated_text(report))}).</p>",
    ]
    if report["note"]:
        parts.append(f'<p class="note">{esc(report["note"])}.</p>')
    parts.append("<h2>Warnings</h2>")
    if report["warnings"]:
        parts.append('<ul class="warnings">')
        for w in report["warnings"]:
            parts.append(
                f'<li data-code="{esc(w["code"])}"><span class="warning-code">{esc(w["code"])}</span> '
                f"({esc(w['iteration_id'])}): {esc(w['message'])} (value {w['value']:.3g}, threshold "
                f"{w['threshold']:.3g})</li>"
            )
        parts.append("</ul>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Diversity and consensus per iteration</h2>")
    parts.append(_html_table(RUN_COLUMNS, run_rows(report)))
    parts.append('<h2>Plots</h2><div class="charts">')
    parts += list(charts(report).values())
    parts.append("</div>")
    for s in report["iterations"]:
        parts.append(f"<h2>Iteration {s['run_index']}: {esc(s['iteration_id'])}</h2>")
        parts.append(_html_table(None, detail_rows(s)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
