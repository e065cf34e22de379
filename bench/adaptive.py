"""Adaptive-sampling benchmark: samples drawn and selections made, adaptive rounds vs fixed n=128.

    python -m bench.adaptive [--problems N] [--seeds S] [--seed K] [--risks 0.01,0.05] [--json PATH]

**Problems and programs.** The first N HumanEval problems whose hidden tests have literal inputs
(:func:`ucoder_common.humaneval.extract_inputs`). Each gets a fixed set of programs, all run once
on those inputs through the executor's :class:`~services.executor.sandbox.SandboxPool` (process
backend: no sandbox, acceptable for the dataset's own code and its mutations):

* ``canonical`` - the reference solution (the ground truth: a selection is correct when its
  behaviour equals this program's);
* ``variants`` - up to 16 single-mutation variants (:func:`~ucoder_common.humaneval.wrong_variants`);
  most are wrong, some crash (ineligible), a few are equivalent to the canonical solution;
* ``tail`` - 48 programs that return a different input hash each: eligible, non-constant and all
  distinct, standing for a weak model's one-off wrong programs;
* ``broken`` - ``raise NotImplementedError``, a body of ``pass`` (returns None: a constant that
  ``reject_constant`` skips), and a syntax error.

**Samples.** A problem's sampler is a distribution over these programs, drawn once per problem
(``--seed``) from a mixture of *profiles*. The shares are an assumption meant to resemble a weak
model's spread, not a measurement (the per-profile table lets a reader reweight them):

====================  =====  ==============================================================
profile               share  program shares
====================  =====  ==============================================================
clear                 35%    canonical U(0.4, 0.8); the rest over variants, tail and broken
split                 20%    canonical U(0.15, 0.35); one wrong variant at 0.5-1.2x that
wrong                 10%    one wrong variant U(0.3, 0.6); canonical U(0.05, 0.2)
failing               20%    canonical + variants + tail U(0.05, 0.25) in all; broken the rest
hopeless              15%    broken; half of them with U(0, 0.03) canonical + tail besides
====================  =====  ==============================================================

Inside "the rest", variants follow a Zipf law (the first wrong variant is the most common), tail
programs are uniform (so they do repeat now and then), broken ones are uniform.

**Runs.** For each problem and each of ``--seeds`` runs, 128 i.i.d. draws from its distribution.
Fixed n=128 selects from all of them; an adaptive policy sees them in rounds of 16 (a prefix of
the same sequence is exactly what it would have drawn) and stops when
:func:`services.clusterer.adaptive.decide` says so, then selects from what it drew. Selections are
:func:`services.clusterer.core.select` (OUTPUT signatures, rho 0.8, tau 2, reject_constant), and
two selections are *identical* when they pick the same behaviour (signature) or both pick nothing.
Reported per policy: samples drawn (mean per run, and in all as a share of fixed), identical
selections, runs with a selection, precision (correct / selected) and why runs stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from services.clusterer.adaptive import AdaptivePolicy, RoundState, decide, observe
from services.clusterer.core import Outcome, ScoredCandidate, SignatureMode, select, signature
from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome
from ucoder_common.humaneval import HumanEvalProblem, extract_inputs, load_problems, wrong_variants

PROBLEMS = 0
"""Usable HumanEval problems to take (0 = all 161)."""
SEEDS = 30
"""Runs (sample sequences) per problem."""
RISKS = (0.02, 0.05, 0.2)
"""Adaptive policies shown besides the default one (AdaptivePolicy() with these risks)."""
VARIANTS = 16
TAIL = 48
TIMEOUT_S = 2.0
MEMORY_MB = 512
SANDBOX_ATTEMPTS = 3
RHO, TAU, MODE = 0.8, 2, SignatureMode.OUTPUT
TARGET_SAMPLES = 0.40
"""The default policy may draw at most this share of the fixed policy's samples..."""
TARGET_IDENTICAL = 0.95
"""...for at least this share of identical selections."""

PROFILE_MIX: tuple[tuple[str, float], ...] = (
    ("clear", 0.35),
    ("split", 0.20),
    ("wrong", 0.10),
    ("failing", 0.20),
    ("hopeless", 0.15),
)


@dataclass(frozen=True)
class Program:
    kind: str
    """canonical | variant | tail | broken"""
    code: str
    outcomes: tuple[Outcome, ...] = ()
    logprob: float = 0.0

    @property
    def signature(self) -> tuple[str, ...]:
        return signature(self.outcomes, MODE)


@dataclass
class Pool:
    """One problem: its programs (executed) and the sampler's distribution over them."""

    problem: HumanEvalProblem
    inputs: tuple[str, ...]
    programs: list[Program]
    profile: str = ""
    weights: list[float] = field(default_factory=list)

    @property
    def truth(self) -> tuple[str, ...]:
        return self.programs[0].signature


def build_programs(problem: HumanEvalProblem, seed: int) -> list[Program]:
    """Canonical solution first, then variants, tail programs and broken ones (see the docstring)."""
    prompt = problem.prompt if problem.prompt.endswith("\n") else problem.prompt + "\n"
    programs = [Program("canonical", problem.solution)]
    programs += [Program("variant", v) for v in wrong_variants(problem.solution, VARIANTS, seed)]
    programs += [
        Program("tail", prompt + f"    return sum(map(ord, repr(locals()))) * 1009 + {k}\n")
        for k in range(TAIL)
    ]
    programs += [
        Program("broken", prompt + "    raise NotImplementedError\n"),
        Program("broken", prompt + "    pass\n"),
        Program("broken", prompt + "    return (\n"),
    ]
    return programs


def _outcome(o: TestOutcome) -> Outcome:
    return Outcome(kind=o.kind, value_digest=o.value_digest, exception_type=o.exception_type)


async def execute(pools: list[Pool], size: int) -> None:
    """Runs every program of every pool once, in place (as the executor service runs a job)."""
    sandboxes = SandboxPool(
        Backend.PROCESS, size=size, default_timeout_s=TIMEOUT_S, default_memory_mb=MEMORY_MB
    )
    await sandboxes.start()

    async def one(pool: Pool) -> None:
        codes = [p.code for p in pool.programs]
        for attempt in range(SANDBOX_ATTEMPTS):
            try:
                results = await sandboxes.run_many(codes, pool.problem.entry_point, list(pool.inputs))
                break
            except SandboxError:
                if attempt == SANDBOX_ATTEMPTS - 1:
                    raise
        pool.programs = [
            replace(p, outcomes=tuple(_outcome(o) for o in outcomes))
            for p, outcomes in zip(pool.programs, results, strict=True)
        ]

    try:
        await asyncio.gather(*(one(pool) for pool in pools))
    finally:
        await sandboxes.close()


def _zipf(n: int) -> list[float]:
    w = [1.0 / (i + 1) ** 1.2 for i in range(n)]
    total = sum(w)
    return [x / total for x in w]


def assign_profile(pool: Pool, rng: random.Random) -> None:
    """Draws the pool's profile and its distribution over programs (see the docstring)."""
    names, shares = zip(*PROFILE_MIX, strict=True)
    profile = rng.choices(names, shares)[0]
    u = rng.uniform
    if profile == "clear":
        c = u(0.4, 0.8)
        rest = 1 - c
        v1, vo, b = rest * u(0.1, 0.3), rest * u(0.1, 0.3), rest * u(0.1, 0.3)
    elif profile == "split":
        c = u(0.15, 0.35)
        v1 = c * u(0.5, 1.2)
        rest = 1 - c - v1
        vo, b = rest * u(0.2, 0.4), rest * u(0.1, 0.3)
    elif profile == "wrong":
        v1, c = u(0.3, 0.6), u(0.05, 0.2)
        rest = 1 - c - v1
        vo, b = rest * u(0.2, 0.4), rest * u(0.1, 0.3)
    elif profile == "failing":
        e = u(0.05, 0.25)
        c = e * u(0.3, 0.7)
        v1, vo = (e - c) * u(0.2, 0.5), (e - c) * u(0.2, 0.4)
        b = 1 - e
    else:  # hopeless
        e = 0.0 if rng.random() < 0.5 else u(0.0, 0.03)
        c, v1, vo = e * u(0.3, 0.7), 0.0, 0.0
        b = 1 - e
    t = max(0.0, 1 - c - v1 - vo - b)
    kinds = [p.kind for p in pool.programs]
    variants = kinds.count("variant")
    if variants == 0:  # no mutation site: their share goes to the tail
        t, v1, vo = t + v1 + vo, 0.0, 0.0
    shares_v = [v1] + [vo * z for z in _zipf(variants - 1)] if variants else []
    weights = [c, *shares_v]
    weights += [t / kinds.count("tail")] * kinds.count("tail")
    weights += [b / kinds.count("broken")] * kinds.count("broken")
    pool.profile, pool.weights = profile, weights
    # A sampling score per program (perplexity only breaks ties).
    pool.programs = [replace(p, logprob=-u(5.0, 40.0)) for p in pool.programs]


# ---------------------------------------------------------------------------------------------
# Replaying runs


@dataclass
class Run:
    """One policy on one sample sequence of one problem."""

    profile: str
    drawn: int
    selection: tuple[str, ...] | None
    reason: str
    correct: bool


class Sequence128:
    """One sample sequence of a pool, with the clusterer's view of each prefix (computed once)."""

    def __init__(self, pool: Pool, order: list[int]) -> None:
        self.pool = pool
        self.order = order
        self.candidates = [
            ScoredCandidate(
                candidate_id=f"{i:04d}",
                code="",
                outcomes=pool.programs[k].outcomes,
                cumulative_logprob=pool.programs[k].logprob,
                num_tokens=50,
            )
            for i, k in enumerate(order)
        ]
        self._states: dict[int, RoundState] = {}
        self._selections: dict[int, tuple[str, ...] | None] = {}

    def state(self, n: int) -> RoundState:
        if n not in self._states:
            self._states[n] = observe(self.candidates[:n], RHO, TAU, MODE)
        return self._states[n]

    def selection(self, n: int) -> tuple[str, ...] | None:
        if n not in self._selections:
            result = select(self.candidates[:n], RHO, TAU, MODE)
            self._selections[n] = (
                self.pool.programs[self.order[int(result.candidate_id)]].signature
                if result.selected
                else None
            )
        return self._selections[n]

    def run(self, policy: AdaptivePolicy) -> Run:
        n = 0
        while True:
            decision = decide(policy, self.state(n))
            if decision.stop:
                break
            n += decision.next_round
        selection = self.selection(n)
        correct = selection is not None and selection == self.pool.truth
        return Run(self.pool.profile, n, selection, str(decision.reason), correct)


@dataclass
class Summary:
    name: str
    runs: int
    drawn_mean: float
    drawn_median: float
    samples_share: float
    """Samples drawn in all, over the fixed policy's."""
    identical: float
    selected: float
    selected_fixed: float
    precision: float | None
    precision_fixed: float | None
    reasons: dict[str, int]


def summarize(name: str, runs: list[Run], fixed: list[Run]) -> Summary:
    def precision(rs: list[Run]) -> float | None:
        chosen = [r for r in rs if r.selection is not None]
        return sum(r.correct for r in chosen) / len(chosen) if chosen else None

    n = len(runs)
    return Summary(
        name=name,
        runs=n,
        drawn_mean=statistics.fmean(r.drawn for r in runs),
        drawn_median=statistics.median(r.drawn for r in runs),
        samples_share=sum(r.drawn for r in runs) / sum(r.drawn for r in fixed),
        identical=sum(a.selection == b.selection for a, b in zip(runs, fixed, strict=True)) / n,
        selected=sum(r.selection is not None for r in runs) / n,
        selected_fixed=sum(r.selection is not None for r in fixed) / n,
        precision=precision(runs),
        precision_fixed=precision(fixed),
        reasons=dict(Counter(r.reason for r in runs).most_common()),
    )


@dataclass
class BenchReport:
    problems: int
    seeds: int
    seed: int
    cores: int
    profiles: dict[str, int]
    execute_s: float
    replay_s: float
    policies: list[Summary]
    """fixed first, then each adaptive policy; the default one is named 'default'."""
    by_profile: list[Summary]
    """The default policy, per profile."""
    default: dict[str, Any]

    def target(self) -> tuple[bool, Summary]:
        summary = next(s for s in self.policies if s.name.startswith("default"))
        met = summary.samples_share <= TARGET_SAMPLES and summary.identical >= TARGET_IDENTICAL
        return met, summary

    def to_json(self) -> dict[str, Any]:
        met, _ = self.target()
        return {
            "problems": self.problems,
            "seeds": self.seeds,
            "seed": self.seed,
            "cores": self.cores,
            "profiles": self.profiles,
            "execute_s": round(self.execute_s, 2),
            "replay_s": round(self.replay_s, 2),
            "default_policy": self.default,
            "policies": [vars(s) for s in self.policies],
            "by_profile": [vars(s) for s in self.by_profile],
            "target": {"samples_max": TARGET_SAMPLES, "identical_min": TARGET_IDENTICAL, "met": met},
        }


def build_pools(problems: int, seed: int) -> list[Pool]:
    pools: list[Pool] = []
    rng = random.Random(f"profiles:{seed}")
    for p in load_problems():
        inputs = tuple(extract_inputs(p))
        if not inputs:
            continue
        pool = Pool(p, inputs, build_programs(p, seed))
        assign_profile(pool, rng)
        pools.append(pool)
        if problems and len(pools) == problems:
            break
    return pools


def policies_for(risks: Sequence[float], default: AdaptivePolicy) -> list[tuple[str, AdaptivePolicy]]:
    out = [(f"default (risk {default.risk:g})", default)]
    out += [(f"risk {r:g}", replace(default, risk=r)) for r in risks if r != default.risk]
    return sorted(out, key=lambda item: -item[1].risk)


def run_bench(
    problems: int,
    seeds: int,
    seed: int = 0,
    risks: Sequence[float] = RISKS,
    default: AdaptivePolicy | None = None,
) -> BenchReport:
    """``default`` is the policy the target applies to (AdaptivePolicy() unless given)."""
    default = AdaptivePolicy() if default is None else default
    cores = os.cpu_count() or 1
    pools = build_pools(problems, seed)
    t0 = time.perf_counter()
    asyncio.run(execute(pools, cores))
    execute_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    fixed_policy = replace(default, mode="fixed")
    named = policies_for(risks, default)
    fixed: list[Run] = []
    runs: dict[str, list[Run]] = {name: [] for name, _ in named}
    for index, pool in enumerate(pools):
        rng = random.Random(f"draws:{seed}:{index}")
        for _ in range(seeds):
            order = rng.choices(range(len(pool.programs)), pool.weights, k=fixed_policy.budget)
            seq = Sequence128(pool, order)
            fixed.append(seq.run(fixed_policy))
            for name, policy in named:
                runs[name].append(seq.run(policy))
    replay_s = time.perf_counter() - t0

    summaries = [summarize("fixed n=128", fixed, fixed)]
    summaries += [summarize(name, runs[name], fixed) for name, _ in named]
    default_name = named[[p for _, p in named].index(default)][0]
    by_profile = []
    for profile, _ in PROFILE_MIX:
        idx = [i for i, r in enumerate(fixed) if r.profile == profile]
        if idx:
            by_profile.append(
                summarize(profile, [runs[default_name][i] for i in idx], [fixed[i] for i in idx])
            )
    return BenchReport(
        problems=len(pools),
        seeds=seeds,
        seed=seed,
        cores=cores,
        profiles=dict(Counter(p.profile for p in pools)),
        execute_s=execute_s,
        replay_s=replay_s,
        policies=summaries,
        by_profile=by_profile,
        default=vars(default),
    )


# ---------------------------------------------------------------------------------------------
# Output


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _table(title: str, first: str, rows: list[Summary]) -> Table:
    table = Table(title=title)
    table.add_column(first, no_wrap=True)
    for col in ("runs", "drawn mean", "drawn median", "samples", "identical", "selected", "precision"):
        table.add_column(col, justify="right")
    table.add_column("stopped because")
    for s in rows:
        table.add_row(
            s.name,
            str(s.runs),
            f"{s.drawn_mean:.1f}",
            f"{s.drawn_median:g}",
            _pct(s.samples_share),
            _pct(s.identical),
            f"{_pct(s.selected)} / {_pct(s.selected_fixed)}",
            f"{_pct(s.precision)} / {_pct(s.precision_fixed)}",
            ", ".join(f"{k} {v}" for k, v in s.reasons.items()),
        )
    return table


def render(report: BenchReport, console: Console) -> None:
    console.print(
        f"problems: {report.problems} ({', '.join(f'{k} {v}' for k, v in report.profiles.items())}), "
        f"runs per problem: {report.seeds}, seed {report.seed}, cores: {report.cores}   "
        f"execution {report.execute_s:.1f} s, replay {report.replay_s:.1f} s"
    )
    default = report.default
    console.print(
        "default policy: " + ", ".join(f"{k}={v}" for k, v in default.items()),
        markup=False,
    )
    console.print(
        "samples: drawn in all over fixed n=128; identical: same behaviour selected as fixed n=128 "
        "(or nothing by both); selected and precision: adaptive / fixed"
    )
    console.print(_table("adaptive vs fixed n=128 (HumanEval pools)", "policy", report.policies))
    console.print(_table("default policy by profile", "profile", report.by_profile))
    met, s = report.target()
    console.print(
        f"target samples <= {TARGET_SAMPLES:.0%} and identical >= {TARGET_IDENTICAL:.0%} ({s.name}): "
        f"{'PASS' if met else 'MISS'} ({_pct(s.samples_share)} samples, {_pct(s.identical)} identical)"
    )


def _policy(settings: list[str]) -> AdaptivePolicy:
    """AdaptivePolicy() with FIELD=VALUE overrides (values converted to the field's default type)."""
    base = AdaptivePolicy()
    changes: dict[str, Any] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not hasattr(base, name):
            raise ValueError(f"expected FIELD=VALUE with a field of AdaptivePolicy, got {item!r}")
        kind = type(getattr(base, name))
        changes[name] = kind(value)
    return replace(base, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptive", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--problems", type=int, default=PROBLEMS, help="usable HumanEval problems to take (0 = all)"
    )
    parser.add_argument("--seeds", type=int, default=SEEDS, help="sample sequences (runs) per problem")
    parser.add_argument("--seed", type=int, default=0, help="seed for variants, profiles and draws")
    parser.add_argument(
        "--risks",
        default=",".join(f"{r:g}" for r in RISKS),
        help="risk values of the extra adaptive policies, comma-separated",
    )
    parser.add_argument(
        "--set",
        metavar="FIELD=VALUE",
        action="append",
        default=[],
        help="override a field of the default AdaptivePolicy (repeatable), e.g. --set hopeless_rate=0",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    try:
        default = _policy(args.set)
        default.validate()
    except ValueError as exc:
        parser.error(f"--set: {exc}")
    try:
        risks = [float(r) for r in args.risks.split(",") if r.strip()]
        for r in risks:
            replace(default, risk=r).validate()
    except ValueError as exc:
        parser.error(f"--risks: {exc}")
    if args.problems < 0 or args.seeds < 1:
        parser.error("--problems must be >= 0 and --seeds >= 1")
    report = run_bench(args.problems, args.seeds, args.seed, risks, default)
    render(report, Console(width=max(Console().width, 150)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
