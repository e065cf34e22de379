"""Yield before and after, in one run: one pool iteration per variant of the loop's settings.

    python -m bench.pool_yield --json bench/results/pool-yield.json    # resumable, per variant
    python -m bench.pool_yield --from-cache                             # the table again, running nothing

Each variant runs the efficacy experiment's pool (``bench.efficacy.Budget``: 24 problems x 16 tests
x 32 samples at T = 0.8, adaptive sampling, the clusterer's ``min_confidence``; no training, no
evaluation) on a fresh stack of its own (its own UCODER_HOME under the cache: the same engine seed
and an empty state for every variant), with the services' settings overridden through their
environment variables. ``before`` turns off what was built for yield (testsynth ``repair_lines``
and ``stall_rounds``), ``after`` is the defaults. Yield is selected examples per core-hour (the
pool's wall time x this machine's cores, the unit of bench.efficacy); the ratio is against
``before`` of the same run, so machines of different speed compare. A finished variant is cached
(its iteration as JSON); an unfinished one is run again from the start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from bench.efficacy import Budget
from ucoder_cli.main import Client, watch_iteration
from ucoder_common.localstack import StackPaths, start_stack, stop_stack
from ucoder_common.models import cache_dir
from ucoder_common.pb import orchestrator_pb2

DEFAULT_CACHE = cache_dir() / "bench-pool-yield"
BASELINE = "before"
# Service settings per variant (environment overrides of the stack's processes).
VARIANTS: dict[str, dict[str, str]] = {
    BASELINE: {"UCODER_TESTSYNTH_REPAIR_LINES": "0", "UCODER_TESTSYNTH_STALL_ROUNDS": "0"},
    "after": {},
}


def pool_row(
    name: str, overrides: Mapping[str, str], iteration: Mapping[str, Any], cores: int
) -> dict[str, Any]:
    """One variant's numbers from its iteration (``MessageToDict`` with field names kept)."""
    wall_s = (int(iteration["finished_unix_ms"]) - int(iteration["created_unix_ms"])) / 1000
    core_hours = wall_s * cores / 3600
    selected = int(iteration.get("selected", 0))
    problems = iteration.get("problems", [])
    return {
        "variant": name,
        "overrides": dict(overrides),
        "iteration_id": iteration["iteration_id"],
        "problems_generated": int(iteration.get("problems_generated", 0)),
        "problems_kept": len(iteration.get("problem_ids", [])),
        "problems_with_tests": sum(1 for p in problems if p.get("tests")),
        "tests_kept": int(iteration.get("tests_kept", 0)),
        "tests_rejected": sum(int(v) for v in iteration.get("tests_rejected", {}).values()),
        "tests_repaired": sum(int(v) for v in iteration.get("tests_repaired", {}).values()),
        "candidates": int(iteration.get("candidates", 0)),
        "executions": int(iteration.get("executions", 0)),
        "selected": selected,
        "wall_s": wall_s,
        "core_hours": core_hours,
        "selected_per_core_hour": selected / core_hours if core_hours else 0.0,
        "tests_per_core_hour": int(iteration.get("tests_kept", 0)) / core_hours if core_hours else 0.0,
    }


def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's yields as a ratio of the baseline's (None where the baseline has none)."""
    base = next((r for r in rows if r["variant"] == BASELINE), None)
    for row in rows:
        for key in ("selected_per_core_hour", "tests_per_core_hour", "core_hours"):
            denominator = base[key] if base else 0.0
            row[f"{key}_vs_{BASELINE}"] = row[key] / denominator if denominator else None
    return rows


def run_variant(
    root: Path, name: str, overrides: Mapping[str, str], budget: Budget, console: Console
) -> dict[str, Any]:
    """The variant's completed iteration (from the cache, else run on a fresh stack of its own)."""
    done = root / name / "iteration.json"
    if done.exists():
        cached: dict[str, Any] = json.loads(done.read_text())
        return cached
    home = root / name / "home"
    if home.exists():  # an unfinished run: its half-done state must not leak into this one
        shutil.rmtree(home)
    paths = StackPaths(home)
    console.print(f"[bold]{name}[/]: starting a stack in {home} with {dict(overrides) or 'the defaults'}")
    info = start_stack(paths, extra_env=dict(overrides), timeout_s=1800)
    try:
        with Client(info.orchestrator_address, info.channel("orchestrator")) as client:
            started = client.call(
                "StartIteration", orchestrator_pb2.StartIterationRequest(spec=budget.spec())
            )
            assert isinstance(started, orchestrator_pb2.Iteration)
            watch_iteration(client, started.iteration_id, console)
            it = client.call(
                "GetIteration",
                orchestrator_pb2.GetIterationRequest(
                    iteration_id=started.iteration_id, include_problems=True
                ),
            )
            assert isinstance(it, orchestrator_pb2.Iteration)
    finally:
        stop_stack(paths)
    if it.phase != orchestrator_pb2.ITERATION_PHASE_COMPLETED:
        raise RuntimeError(f"{name}: iteration {it.iteration_id} did not complete: {it.error}")
    record = MessageToDict(it, preserving_proto_field_name=True)
    done.parent.mkdir(parents=True, exist_ok=True)
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, done)
    return record


def render(report: Mapping[str, Any], console: Console) -> None:
    table = Table(title=f"pool yield ({report['cores']} cores; ratios vs {BASELINE} of this run)")
    for column in (
        "variant",
        "problems gen/kept/with tests",
        "tests kept",
        "rejected",
        "repaired",
        "selected",
        "core-hours",
        "selected/core-hour",
        "vs before",
        "tests/core-hour",
        "vs before",
    ):
        table.add_column(column)

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    for row in report["rows"]:
        table.add_row(
            row["variant"],
            f"{row['problems_generated']}/{row['problems_kept']}/{row['problems_with_tests']}",
            str(row["tests_kept"]),
            str(row["tests_rejected"]),
            str(row["tests_repaired"]),
            str(row["selected"]),
            f"{row['core_hours']:.2f}",
            f"{row['selected_per_core_hour']:.2f}",
            ratio(row[f"selected_per_core_hour_vs_{BASELINE}"]),
            f"{row['tests_per_core_hour']:.0f}",
            ratio(row[f"tests_per_core_hour_vs_{BASELINE}"]),
        )
    console.print(table)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pool_yield", description=__doc__.split("\n\n")[0])
    b = Budget()
    parser.add_argument("--problems", type=int, default=b.problems, help="problems per pool")
    parser.add_argument("--tests", type=int, default=b.tests, help="test inputs per problem")
    parser.add_argument("--samples", type=int, default=b.samples, help="candidate budget per problem")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where finished variants are kept")
    parser.add_argument("--from-cache", action="store_true", help="print what is cached; run nothing")
    parser.add_argument("--json", type=Path, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        print(f"bench.pool_yield: --variants: must be some of {', '.join(VARIANTS)}, got {args.variants!r}")
        return 2
    budget = Budget(problems=args.problems, tests=args.tests, samples=args.samples)
    root = args.cache / f"p{budget.problems}-t{budget.tests}-s{budget.samples}"
    cores = os.cpu_count() or 1
    rows = []
    for name in names:
        if args.from_cache and not (root / name / "iteration.json").exists():
            console.print(f"{name}: not run yet in {root}")
            continue
        started = time.monotonic()
        iteration = run_variant(root, name, VARIANTS[name], budget, console)
        console.print(f"{name}: done ({time.monotonic() - started:.0f} s this run)")
        rows.append(pool_row(name, VARIANTS[name], iteration, cores))
    report = {"schema": 1, "budget": asdict(budget), "cores": cores, "rows": with_ratios(rows)}
    # Wide enough for the whole table when the output is a file or a pipe (rich's default there is 80).
    render(report, Console(width=None if sys.stdout.isatty() else 160))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
