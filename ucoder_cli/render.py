"""Pure rendering for the CLI: protos in, rich renderables or strings out (no I/O, no gRPC)."""

from __future__ import annotations

import collections
import io
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ucoder_cli.kube import ServiceStatus
from ucoder_common import report as iteration_report
from ucoder_common.pb import common_pb2, executor_pb2, orchestrator_pb2

Iteration = orchestrator_pb2.Iteration
ProgressEvent = orchestrator_pb2.ProgressEvent

PIPELINE_STAGES: tuple[int, ...] = (
    orchestrator_pb2.STAGE_PROBLEMS,
    orchestrator_pb2.STAGE_TESTS,
    orchestrator_pb2.STAGE_SAMPLING,
    orchestrator_pb2.STAGE_EXECUTION,
    orchestrator_pb2.STAGE_CLUSTERING,
    orchestrator_pb2.STAGE_TRAINING,
    orchestrator_pb2.STAGE_EVALUATION,
)


def stage_name(stage: int) -> str:
    """STAGE_SAMPLING -> "sampling"; unknown values stay readable."""
    try:
        return orchestrator_pb2.Stage.Name(stage).removeprefix("STAGE_").lower()
    except ValueError:
        return f"stage {stage}"


def phase_name(phase: int) -> str:
    """ITERATION_PHASE_COMPLETED -> "completed"."""
    try:
        return orchestrator_pb2.IterationPhase.Name(phase).removeprefix("ITERATION_PHASE_").lower()
    except ValueError:
        return f"phase {phase}"


def signature_mode_name(mode: int) -> str:
    try:
        return common_pb2.SignatureMode.Name(mode).removeprefix("SIGNATURE_MODE_").lower()
    except ValueError:
        return f"mode {mode}"


def format_duration(ms: int | float) -> str:
    """Milliseconds as a short human duration: 850ms, 12.3s, 4m 05s, 2h 03m."""
    ms = max(0, int(ms))
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {(whole % 3600) // 60:02d}m"


def stage_timing(stats: orchestrator_pb2.StageStats, now_ms: int | None = None) -> str:
    """How long a stage took: "12.3s", "4.0s (running)" while it runs, "-" when not started."""
    if stats.started_unix_ms <= 0:
        return "-"
    if stats.finished_unix_ms > 0:
        return format_duration(stats.finished_unix_ms - stats.started_unix_ms)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{format_duration(now - stats.started_unix_ms)} (running)"


def format_time(unix_ms: int) -> str:
    """Local wall-clock time of a unix-ms timestamp ("-" when unset)."""
    if unix_ms <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_ms / 1000))


def adapter_text(it: Iteration) -> str:
    """The model this iteration trained: "v3 (adapter-object)" or "none"."""
    if not it.HasField("model_version_out") or it.model_version_out.version <= 0:
        if it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED and it.selected == 0:
            return "none (no problem reached consensus)"
        return "none"
    out = it.model_version_out
    obj = out.adapter_object or "no adapter object"
    return f"v{out.version} ({obj})"


def _stats_by_stage(it: Iteration) -> dict[int, orchestrator_pb2.StageStats]:
    return {s.stage: s for s in it.stages}


def result_table(it: Iteration, now_ms: int | None = None) -> Table:
    """The summary of one iteration: counts, the trained adapter, and time per stage."""
    table = Table(title=f"iteration {it.iteration_id} - {phase_name(it.phase)}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("phase", phase_name(it.phase))
    table.add_row("problems (kept / generated)", f"{_kept(it)} / {it.problems_generated}")
    table.add_row("problems rejected", str(it.problems_rejected))
    if it.problem_diversity.problems:
        div = it.problem_diversity
        table.add_row(
            "problem diversity",
            f"lexical entropy {div.mean_lexical_entropy:.2f} bits, category coverage "
            f"{div.category_coverage:.0%} of {div.pool_size}, "
            f"max category share {div.max_category_share:.0%}",
        )
    table.add_row(
        "tests kept",
        f"{it.tests_kept} ({it.tests_mutated} mutations)" if it.tests_mutated else str(it.tests_kept),
    )
    if it.tests_rejected:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(it.tests_rejected.items()))
        table.add_row("tests rejected", f"{sum(it.tests_rejected.values())} ({escape(reasons)})")
    if it.tests_repaired:
        repairs = ", ".join(f"{repair} {n}" for repair, n in sorted(it.tests_repaired.items()))
        table.add_row("tests repaired", f"{sum(it.tests_repaired.values())} ({escape(repairs)})")
    table.add_row("tests likely invalid", str(it.tests_likely_invalid))
    table.add_row("candidates", str(it.candidates))
    table.add_row("executions", str(it.executions))
    table.add_row("selected", str(it.selected))
    if it.problems:
        # Per-problem state is only there with --include-problems.
        abstained = collections.Counter(p.selection.abstained for p in it.problems if p.selection.abstained)
        rules = ", ".join(f"{rule} {n}" for rule, n in sorted(abstained.items()))
        table.add_row("abstentions", f"{sum(abstained.values())}" + (f" ({escape(rules)})" if rules else ""))
    table.add_row("model in", f"v{it.model_version_in}")
    table.add_row("adapter trained", adapter_text(it))
    if it.HasField("model_version_out") and it.model_version_out.train_examples:
        out = it.model_version_out
        table.add_row("training", f"{out.train_examples} examples, loss {out.train_loss:.4f}")
    for field, label in (("eval_in", "HumanEval in"), ("eval_out", "HumanEval out")):
        if it.HasField(field):
            table.add_row(label, eval_text(getattr(it, field)))
    if it.run_decision:
        table.add_row(
            "run", f"iteration {max(it.run_index, 1)} of {max(it.spec.iterations, 1)}: {it.run_decision}"
        )
    stats = _stats_by_stage(it)
    for stage in PIPELINE_STAGES:
        row = stats.get(stage)
        timing = stage_timing(row, now_ms) if row is not None else "-"
        if row is not None and row.failed:
            timing += f"  ({row.failed} failed)"
        table.add_row(f"time {stage_name(stage)}", timing)
    if it.created_unix_ms > 0 and it.finished_unix_ms > 0:
        table.add_row("time total", format_duration(it.finished_unix_ms - it.created_unix_ms))
    if it.error:
        table.add_row("error", f"[red]{it.error}[/red]")
    return table


def eval_text(result: orchestrator_pb2.EvalResult) -> str:
    """ "v1: pass@1 6.1% (164 problems x 1, 1m 12s)"; other ks follow pass@1."""
    scores = ", ".join(f"pass@{k} {result.pass_at_k[k]:.1%}" for k in sorted(result.pass_at_k) if k != 1)
    per = result.num_samples // result.num_problems if result.num_problems else 0
    text = (
        f"v{result.model_version}: pass@1 {result.pass_at_1:.1%}"
        + (f", {scores}" if scores else "")
        + f" ({result.num_problems} problems x {per}, {format_duration(result.seconds * 1000)})"
    )
    return text


def eval_table(result: orchestrator_pb2.EvalResult) -> Table:
    """An Evaluate result: pass@k per k, sizes and time."""
    table = Table(title=f"HumanEval - model v{result.model_version}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for k in sorted(result.pass_at_k):
        table.add_row(f"pass@{k}", f"{result.pass_at_k[k]:.2%}")
    table.add_row("problems", str(result.num_problems))
    table.add_row("samples", str(result.num_samples))
    spec = result.spec
    table.add_row("sampling", f"temperature {spec.temperature:g}, max_tokens {spec.max_tokens}")
    table.add_row("time", format_duration(result.seconds * 1000))
    return table


def _kept(it: Iteration) -> int:
    """Problems kept: the iteration's problem ids, else generated - rejected."""
    if it.problem_ids:
        return len(it.problem_ids)
    if it.problems:
        return len(it.problems)
    return max(0, it.problems_generated - it.problems_rejected)


def iterations_table(iterations: Sequence[Iteration]) -> Table:
    """One row per iteration, newest first."""
    table = Table(title="iterations")
    for col in (
        "id",
        "phase",
        "stage",
        "created",
        "problems",
        "selected",
        "model in",
        "adapter out",
        "pass@1",
    ):
        table.add_column(col)
    for it in sorted(iterations, key=lambda i: i.created_unix_ms, reverse=True):
        table.add_row(
            it.iteration_id,
            phase_name(it.phase),
            stage_name(it.stage),
            format_time(it.created_unix_ms),
            str(_kept(it)),
            str(it.selected),
            f"v{it.model_version_in}",
            adapter_text(it),
            _pass_at_1_text(it),
        )
    return table


def _pass_at_1_text(it: Iteration) -> str:
    """ "3.0% -> 4.3%" (in -> out), or whichever was measured, or "-"."""
    parts = [f"{getattr(it, f).pass_at_1:.1%}" for f in ("eval_in", "eval_out") if it.HasField(f)]
    return " -> ".join(parts) or "-"


def spec_line(spec: orchestrator_pb2.IterationSpec) -> str:
    """The requested settings in one line (0 means the server's default)."""
    parts = [
        f"problems={spec.num_problems}",
        f"tests={spec.tests_per_problem}",
        f"samples={spec.samples_per_problem}",
        f"rho={spec.rho:g}",
        f"tau={spec.tau}",
        f"temperature={spec.temperature:g}",
        f"max_tokens={spec.max_tokens}",
        f"signature={signature_mode_name(spec.signature_mode)}",
        "training=off" if spec.skip_training else f"epochs={spec.train_epochs}",
    ]
    if spec.sampling.mode == "fixed":
        parts.append("sampling=fixed")
    elif spec.sampling.mode or spec.sampling.round_size:
        parts.append(f"sampling=adaptive(round={spec.sampling.round_size or 16})")
    if spec.selection_rule:
        parts.append(f"rule={spec.selection_rule}")
    if spec.HasField("min_confidence"):
        parts.append(f"min_confidence={spec.min_confidence:g}")
    if spec.iterations > 1:
        parts.append(f"iterations={spec.iterations} patience={spec.patience}")
    if spec.skip_evaluation:
        parts.append("evaluation=off")
    else:
        ev = spec.evaluation
        parts.append(f"eval=humaneval:{ev.problems or 'all'}x{ev.samples or 1}")
    if spec.model:
        parts.append(f"model={spec.model}")
    return " ".join(parts)


def outcome_kind_name(kind: int) -> str:
    """OUTCOME_KIND_COMPILE_ERROR -> "compile_error"."""
    try:
        return common_pb2.OutcomeKind.Name(kind).removeprefix("OUTCOME_KIND_").lower()
    except ValueError:
        return f"kind {kind}"


def outcome_detail(outcome: common_pb2.TestOutcome) -> str:
    """The returned value's repr, or what was raised: "ValueError('neg')", "signal:SIGKILL"."""
    if outcome.kind == common_pb2.OUTCOME_KIND_RETURNED:
        return outcome.value_repr
    exc, text = outcome.exception_type, outcome.value_repr
    if exc and text and not text.startswith(exc):
        return f"{exc}: {text}"
    return text or exc or "-"


def _outcomes(reply: executor_pb2.ExecuteResponse) -> list[common_pb2.TestOutcome]:
    return list(reply.results[0].outcomes) if reply.results else []


def exec_table(
    request: executor_pb2.ExecuteRequest, reply: executor_pb2.ExecuteResponse, title: str = ""
) -> Table:
    """`ucoder exec`: one row per input; `passed` only when the inputs have expected values."""
    with_expected = any(t.expected_literal for t in request.tests)
    table = Table(title=escape(title) if title else None)
    table.add_column("#", justify="right")
    table.add_column("input", overflow="fold")
    table.add_column("kind")
    table.add_column("value / exception", overflow="fold")
    table.add_column("ms", justify="right")
    if with_expected:
        table.add_column("expected", overflow="fold")
        table.add_column("passed")
    colours = {common_pb2.OUTCOME_KIND_RETURNED: "green", common_pb2.OUTCOME_KIND_RAISED: "yellow"}
    for i, (test, outcome) in enumerate(zip(request.tests, _outcomes(reply), strict=False)):
        colour = colours.get(outcome.kind, "red")
        row = [
            str(i + 1),
            escape(test.args_literal),
            f"[{colour}]{outcome_kind_name(outcome.kind)}[/{colour}]",
            escape(outcome_detail(outcome)),
            f"{outcome.duration_ms:.1f}",
        ]
        if with_expected:
            row.append(escape(test.expected_literal))
            row.append("[green]yes[/green]" if outcome.passed else "[red]no[/red]")
        table.add_row(*row)
    return table


def exec_summary(request: executor_pb2.ExecuteRequest, reply: executor_pb2.ExecuteResponse) -> str:
    """One line: "3 inputs: 2 returned, 1 raised; passed 2/3; backend process, entry point add"."""
    outcomes = _outcomes(reply)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        name = outcome_kind_name(outcome.kind)
        counts[name] = counts.get(name, 0) + 1
    kinds = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no outcomes"
    line = f"{len(request.tests)} inputs: {kinds}"
    if any(t.expected_literal for t in request.tests):
        line += f"; passed {sum(o.passed for o in outcomes)}/{len(outcomes)}"
    return f"{line}; backend {reply.backend or 'unknown'}, entry point {request.entry_point}"


@dataclass(frozen=True)
class ServiceRow:
    """One process of the local stack as `ucoder status` shows it."""

    name: str
    pid: int
    alive: bool
    health: str
    grpc_port: int
    metrics_port: int
    log: str


def status_table(rows: Iterable[ServiceRow], title: str = "local stack") -> Table:
    table = Table(title=title)
    for col in ("process", "pid", "alive", "health", "grpc", "metrics"):
        table.add_column(col)
    table.add_column("log", overflow="fold")
    colours = {"SERVING": "green", "NOT_SERVING": "yellow", "UNREACHABLE": "red"}
    for row in rows:
        colour = colours.get(row.health, "white")
        table.add_row(
            row.name,
            str(row.pid),
            "yes" if row.alive else "[red]no[/red]",
            f"[{colour}]{row.health}[/{colour}]",
            str(row.grpc_port or "-"),
            str(row.metrics_port or "-"),
            row.log,
        )
    return table


def format_age(seconds: float | None) -> str:
    """A pod's age like kubectl: "42s", "5m 03s", "5h 03m", then whole days ("12d"); "-" when unknown."""
    if seconds is None:
        return "-"
    if seconds < 48 * 3600:
        return format_duration(seconds * 1000)
    return f"{int(seconds // 86400)}d"


def kube_services_table(rows: Iterable[ServiceStatus], title: str) -> Table:
    """`ucoder status --kubernetes`: one row per service with its Deployment's replica counts."""
    table = Table(title=escape(title))
    numeric = ("desired", "ready", "up-to-date", "available")
    for col in ("service", "deployment", *numeric, "autoscaler", "state"):
        table.add_column(col, justify="right" if col in numeric else "left")
    colours = {"ready": "green", "idle": "green", "not ready": "yellow"}
    for row in rows:
        colour = colours.get(row.state, "red")
        counts = (
            (str(row.desired), str(row.ready), str(row.updated), str(row.available))
            if row.deployment
            else ("-",) * 4
        )
        table.add_row(
            row.service,
            escape(row.deployment) or "-",
            *counts,
            escape(row.autoscaler.bounds) if row.autoscaler else "-",
            f"[{colour}]{row.state}[/{colour}]",
        )
    return table


def kube_pods_table(rows: Iterable[ServiceStatus], title: str = "pods") -> Table:
    """The services' pods: state (phase or what blocks it), ready containers, restarts, node, age."""
    table = Table(title=escape(title))
    for col in ("service", "pod", "state", "ready", "restarts", "node", "age"):
        table.add_column(col, justify="right" if col in ("restarts", "age") else "left")
    for row in rows:
        for pod in row.pods:
            ok = pod.state in ("Running", "Succeeded") and pod.ready == pod.containers
            colour = "green" if ok else ("yellow" if pod.state in ("Pending", "Running") else "red")
            table.add_row(
                row.service,
                escape(pod.name),
                f"[{colour}]{escape(pod.state)}[/{colour}]",
                f"{pod.ready}/{pod.containers}",
                str(pod.restarts),
                escape(pod.node) or "-",
                format_age(pod.age_s),
            )
    return table


def startup_table(
    states: dict[str, str],
    started: dict[str, float],
    ended: dict[str, float] | None = None,
    now: float | None = None,
) -> Table:
    """Live view of `ucoder up`: each process, its state, and how long it took (or has taken so far)."""
    now = time.monotonic() if now is None else now
    ended = ended or {}
    table = Table(title="starting the local stack")
    table.add_column("process")
    table.add_column("state")
    table.add_column("elapsed")
    colours = {"starting": "yellow", "serving": "green", "exited": "red"}
    for name, state in states.items():
        colour = colours.get(state, "white")
        elapsed = ended.get(name, now) - started[name]
        table.add_row(name, f"[{colour}]{state}[/{colour}]", format_duration(elapsed * 1000))
    return table


class StageProgress:
    """One progress bar per pipeline stage, fed with ProgressEvents (absolute counts, so replays are fine)."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<11}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[int, TaskID] = {
            stage: self.progress.add_task(stage_name(stage), total=None, start=False, note="")
            for stage in PIPELINE_STAGES
        }
        self.started: set[int] = set()
        self.phase: int = orchestrator_pb2.ITERATION_PHASE_UNSPECIFIED
        self.message = ""

    def update(self, event: ProgressEvent) -> None:
        self.phase = event.phase
        if event.message:
            self.message = event.message
        task = self.tasks.get(event.stage)
        if task is None:
            return
        if event.stage not in self.started:
            self.progress.start_task(task)
            self.started.add(event.stage)
            # Earlier stages are over once a later one reports.
            for stage in PIPELINE_STAGES:
                if stage < event.stage and stage in self.started:
                    self.progress.stop_task(self.tasks[stage])
        note = f"[red]{event.failed} failed[/red]" if event.failed else ""
        total = event.total if event.total > 0 else None
        self.progress.update(task, completed=event.done, total=total, note=note)
        if total is not None and event.done + event.failed >= total:
            self.progress.stop_task(task)

    def finish(self) -> None:
        for stage in self.started:
            self.progress.stop_task(self.tasks[stage])

    def snapshot(self) -> dict[str, tuple[float, float | None, str]]:
        """stage name -> (done, total, note): what the bars show, for tests."""
        out: dict[str, tuple[float, float | None, str]] = {}
        for stage, task_id in self.tasks.items():
            task = self.progress.tasks[task_id]
            out[stage_name(stage)] = (task.completed, task.total, str(task.fields.get("note", "")))
        return out


# ---------------------------------------------------------------------------- iteration report

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(value: float | None, top: float = 1.0, width: int = 10) -> str:
    """A horizontal bar of unicode blocks, `width` cells for `top` (eighths of a cell); "" for None."""
    if value is None or top <= 0:
        return ""
    eighths = round(min(max(value / top, 0.0), 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[rest] if rest else "")).ljust(width)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _with_bar(text: str, value: float | None, top: float = 1.0) -> str:
    return f"{bar(value, top)} {text}" if value is not None else text


def report_renderables(report: dict[str, Any]) -> list[RenderableType]:
    """`ucoder report`: a heading, diversity and consensus per iteration (with bars), pass@1 when
    measured, then the warnings panel."""
    summaries = report["iterations"]
    heading = (
        f"[bold]iteration report {escape(report['iteration_id'])}[/bold] - run {escape(report['run_id'])}, "
        f"iteration {len(summaries)} of {report['iterations_planned']}"
    )
    out: list[RenderableType] = [heading]
    if report["note"]:
        out.append(f"[yellow]{escape(report['note'])}[/yellow]")

    diversity = Table(title="problem diversity per iteration")
    for col in (
        "#",
        "iteration",
        "phase",
        "problems",
        "entropy (bits)",
        "distinct-2",
        "coverage",
        "max share",
    ):
        diversity.add_column(col)
    consensus = Table(title="consensus per iteration")
    for col in (
        "#",
        "selected",
        "rate",
        "largest cluster",
        "low consensus",
        "confidence",
        "cluster sizes",
        "abstained",
        "tests rejected / invalid",
        "pass@1",
    ):
        consensus.add_column(col)
    for s in summaries:
        div = s["diversity"] or {}
        entropy = div.get("mean_lexical_entropy")
        clusters = s["clusters"]
        problems = s["problems"]
        diversity.add_row(
            str(s["run_index"]),
            escape(s["iteration_id"]),
            s["phase"],
            f"{problems['kept']} / {problems['generated']}",
            _with_bar(f"{entropy:.2f}", entropy, top=5.0) if entropy is not None else "-",
            f"{div['distinct_2']:.2f}" if div else "-",
            _with_bar(_pct(div.get("category_coverage")), div.get("category_coverage")),
            _pct(div.get("max_category_share")),
        )
        sizes = ", ".join(f"{size}x{n}" for size, n in clusters["chosen_size_histogram"].items()) or "-"
        passes = [
            f"{m['pass_at_1']:.1%}" for m in (s["pass_at_1"]["in"], s["pass_at_1"]["out"]) if m is not None
        ]
        consensus.add_row(
            str(s["run_index"]),
            f"{s['selected']} / {problems['with_candidates']}",
            _with_bar(_pct(s["selection_rate"]), s["selection_rate"]),
            _with_bar(_pct(clusters["largest_share_mean"]), clusters["largest_share_mean"]),
            f"{clusters['low_consensus_problems']} / {problems['clustered']}",
            "-" if s["mean_confidence"] is None else f"{s['mean_confidence']:.2f}",
            sizes,
            str(s["abstentions"]["total"]),
            f"{s['tests']['rejected']} / {s['tests']['likely_invalid']}",
            " -> ".join(passes) or "-",
        )
    out += [diversity, consensus]
    out.append(warnings_panel(report))
    return out


def warnings_panel(report: dict[str, Any]) -> Panel:
    """The failure signatures, red; a green panel when there are none."""
    warnings = report["warnings"]
    if not warnings:
        return Panel(
            "[green]no failure signature in this run[/green]", title="warnings", border_style="green"
        )
    lines = [
        f"[bold red]{escape(w['code'])}[/bold red] ({escape(w['iteration_id'])}): {escape(w['message'])} "
        f"[dim](value {w['value']:.3g}, threshold {w['threshold']:.3g})[/dim]"
        for w in warnings
    ]
    return Panel("\n".join(lines), title=f"warnings ({len(warnings)})", border_style="red")


def report_thresholds_line() -> str:
    """The warning thresholds in one line (for help texts)."""
    t = iteration_report.THRESHOLDS
    return (
        f"low_consensus: largest cluster < {t['low_consensus_cluster_share']:.0%} of candidates on "
        f">= {t['low_consensus_problem_share']:.0%} of problems, or selection rate < "
        f"{t['low_consensus_selection_rate']:.0%}; entropy_collapse: < {t['entropy_floor_bits']:g} bits or "
        f"a drop > {t['entropy_drop_share']:.0%}; pass_oscillation: two opposite swings > "
        f"{t['pass_noise_z']:g} standard errors"
    )


def to_text(renderable: RenderableType, width: int = 120) -> str:
    """A renderable as plain text (what a terminal would show, without colours)."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()
