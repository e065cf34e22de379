"""Test synthesis policies replayed on the same completions: tests kept per completion asked.

    python -m bench.test_lines --home DIR --iteration ID [--problems 24] [--tests 16]
                               [--max-rounds 8] [--completions PATH] [--json PATH]
    python -m bench.test_lines --home DIR --humaneval 12 ...          # HumanEval's prompts instead
    python -m bench.test_lines --completions PATH [--json PATH]        # replay only, no stack

**Question.** Test synthesis took 34 of a pool's 37 minutes (README, "Does the loop make the model
better?"), and most of the lines the model wrote were rejected. How many more tests do the line
repairs (testsynth ``repair_lines``: joined, keywords, swapped) keep, and how many completions
does giving up on a stalled problem (``stall_rounds``) save, at what loss of tests?

**Method.** The problems of an iteration stored in a running stack (``--home``, ``--iteration``),
or ``--humaneval N`` evenly spaced HumanEval prompts (fixed problems, so runs compare; only the
prompt and signature are used, never the tests or solutions).
With ``seed_lines`` 0 (the default) a problem's tests prompt does not change between rounds, so
its completions are exchangeable: per problem and kind (typical, boundary) one stream of
completions is drawn from the stack's sampler with the service's prompt and settings (T = 0.8,
384 tokens, its stop sequences), as far as the most demanding policy reads it, and cached in
``--completions`` (JSON). Every policy then runs the service's own round loop
(``core.round_request``: the shares per kind, the quotas of ``--tests`` with the boundary ratio,
``--max-rounds``) on the same streams, reading them in order. Counted per policy: completions
asked and their tokens (the sampler's cost), tests kept (at most ``--tests`` per problem),
problems with a test and with all ``--tests``, lines rejected by reason and repaired by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.testsynth import core
from services.testsynth.app import TestSynthConfig
from ucoder_common import sampler_client
from ucoder_common.bus import Bus
from ucoder_common.humaneval import load_problems
from ucoder_common.localstack import StackPaths, read_stack
from ucoder_common.pb import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, sampler_pb2


@dataclass(frozen=True)
class Policy:
    name: str
    repair: bool
    stall_rounds: int


POLICIES = (
    Policy("before: no repairs, all rounds", repair=False, stall_rounds=0),
    Policy("repairs", repair=True, stall_rounds=0),
    Policy("stall stop (2 rounds)", repair=False, stall_rounds=2),
    Policy("repairs + stall stop (the defaults)", repair=True, stall_rounds=2),
)


@dataclass
class Streams:
    """One problem's cached completions per kind: [text, tokens] pairs, drawn on demand."""

    problem: common_pb2.Problem
    by_kind: dict[str, list[list[Any]]]
    bus: Bus | None = None
    drawn: int = 0

    async def take(self, kind: str, start: int, n: int) -> list[list[Any]]:
        stream = self.by_kind.setdefault(kind, [])
        missing = start + n - len(stream)
        if missing > 0:
            if self.bus is None:
                raise SystemExit(
                    f"bench.test_lines: the cache holds {len(stream)} {kind} completions of "
                    f"{self.problem.problem_id}, the replay needs {start + n}: run it with --home"
                )
            stream.extend(await _generate(self.bus, self.problem, kind, missing))
            self.drawn += missing
        return stream[start : start + n]


async def _generate(bus: Bus, problem: common_pb2.Problem, kind: str, n: int) -> list[list[Any]]:
    cfg = TestSynthConfig()
    signature = core.problem_signature(problem.signature, problem.prompt, problem.entry_point)
    prompt = core.build_tests_prompt(problem.prompt, problem.entry_point, problem.arity, kind, signature)
    request = sampler_pb2.GenerateRequest(
        prompt=prompt, n=n, temperature=cfg.temperature, max_tokens=cfg.max_tokens, stop=core.TESTS_STOP
    )
    response = await sampler_client.generate(bus.nc, request, cfg.sampler_timeout_s)
    if response.error:
        raise SystemExit(f"bench.test_lines: the sampler failed: {response.error}")
    return [[c.text, c.num_tokens] for c in response.completions]


@dataclass
class Outcome:
    completions: int = 0
    tokens: int = 0
    kept: int = 0
    with_a_test: int = 0
    full: int = 0
    rounds: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)

    def add(self, other: Outcome) -> None:
        for name in ("completions", "tokens", "kept", "with_a_test", "full", "rounds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected.update(other.rejected)
        self.repaired.update(other.repaired)


async def replay(streams: Streams, policy: Policy, count: int, max_rounds: int) -> Outcome:
    """The service's round loop (services/testsynth/app.py) on ``streams``, reading them in order."""
    cfg = TestSynthConfig()
    problem = streams.problem
    signature = core.problem_signature(problem.signature, problem.prompt, problem.entry_point)
    quotas = core.kind_quotas(count, cfg.boundary_ratio)
    pool, _ = core.dedupe_tests(
        core.docstring_tests(problem.prompt, problem.entry_point, problem.arity, signature)
    )
    read = Counter[str]()
    outcome = Outcome()
    stalled = 0
    for _ in range(max_rounds):
        split = core.round_request(pool, quotas, cfg.samples_per_round, stalled, policy.stall_rounds)
        if not split:
            break
        outcome.rounds += 1
        before = len(pool)
        for kind, n in split.items():
            rows = await streams.take(kind, read[kind], n)
            for text, _ in rows:
                report = core.parse_tests(
                    text,
                    problem.entry_point,
                    problem.arity,
                    core.calls_prefix(problem.entry_point),
                    signature,
                    kind,
                    policy.repair,
                )
                outcome.rejected.update(report.rejected)
                outcome.repaired.update(report.repaired)
                pool = core.dedupe_tests([*pool, *report.tests])[0]
            read[kind] += n
            outcome.completions += n
            outcome.tokens += sum(tokens for _, tokens in rows)
        stalled = stalled + 1 if len(pool) == before else 0
    kept = core.mix_tests(pool, count, cfg.boundary_ratio)
    outcome.kept = len(kept)
    outcome.with_a_test = int(bool(kept))
    outcome.full = int(len(kept) >= count)
    return outcome


def _load(path: Path | None) -> dict[str, Any]:
    if path is None or not path.is_file():
        return {"problems": {}}
    return json.loads(path.read_text())


def _save(path: Path | None, cache: dict[str, Any]) -> None:
    if path is not None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(cache) + "\n")
        tmp.replace(path)


def humaneval_problems(count: int) -> list[common_pb2.Problem]:
    """``count`` evenly spaced HumanEval prompts as problems (arity from the entry point's signature)."""
    problems = load_problems()
    chosen = [problems[i * len(problems) // count] for i in range(min(count, len(problems)))]
    out = []
    for p in chosen:
        signature = core.parse_signature(p.prompt, p.entry_point)
        arity = len(signature.params) if signature is not None else 0
        if arity >= 1:
            out.append(
                common_pb2.Problem(
                    problem_id=p.task_id, entry_point=p.entry_point, arity=arity, prompt=p.prompt
                )
            )
    return out


def _problems_of(home: Path, iteration_id: str, limit: int) -> tuple[list[common_pb2.Problem], str]:
    info = read_stack(StackPaths(home))
    if info is None or not info.any_alive():
        raise SystemExit(f"bench.test_lines: no running stack in {home}")
    if not iteration_id:
        return [], info.nats_url
    with info.channel("orchestrator") as channel:
        it = orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetIteration(
            orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id, include_problems=True),
            timeout=120,
        )
    return [ps.problem for ps in it.problems][:limit], info.nats_url


#: Problems replayed at once while drawing (as many as the service handles at once), so that the
#: sampler batches their requests together.
CONCURRENCY = TestSynthConfig().concurrency


async def run(args: argparse.Namespace) -> tuple[dict[str, Outcome], int]:
    cache_path = Path(args.completions) if args.completions else None
    cache = _load(cache_path)
    bus: Bus | None = None
    if args.home:
        problems, nats_url = _problems_of(Path(args.home), args.iteration or "", args.problems)
        if args.humaneval:
            problems = humaneval_problems(args.humaneval)
        bus = await Bus.connect(nats_url, name="bench-test-lines")
        for problem in problems:
            entry = cache["problems"].setdefault(problem.problem_id, {"streams": {}})
            entry["problem"] = problem.SerializeToString().hex()
    totals = {policy.name: Outcome() for policy in POLICIES}
    try:
        chosen = list(cache["problems"].items())[: args.problems]
        if not chosen:
            raise SystemExit("bench.test_lines: no problems: pass --home and --iteration")
        gate = asyncio.Semaphore(CONCURRENCY)
        done = 0

        async def one(entry: dict[str, Any]) -> None:
            nonlocal done
            async with gate:
                problem = common_pb2.Problem.FromString(bytes.fromhex(entry["problem"]))
                streams = Streams(problem, entry["streams"], bus)
                for policy in POLICIES:  # the first reads furthest: it draws almost everything
                    totals[policy.name].add(await replay(streams, policy, args.tests, args.max_rounds))
                done += 1
                if streams.drawn:
                    _save(cache_path, cache)
                    print(f"problem {done}/{len(chosen)}: {streams.drawn} completions drawn", flush=True)

        await asyncio.gather(*(one(entry) for _, entry in chosen))
    finally:
        if bus is not None:
            await bus.close()
    return totals, len(chosen)


def render(totals: dict[str, Outcome], problems: int, tests: int, console: Console) -> None:
    base = totals[POLICIES[0].name]
    table = Table(title=f"test synthesis on {problems} problems, up to {tests} tests each, same completions")
    for column in ("policy", "completions", "tokens", "tests kept", "kept per 100 completions"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for column in ("vs before", "problems with a test", f"with all {tests}", "rejected", "repaired"):
        table.add_column(column, justify="right")
    for policy in POLICIES:
        o = totals[policy.name]
        rate = 100 * o.kept / o.completions if o.completions else 0.0
        base_rate = 100 * base.kept / base.completions if base.completions else 0.0
        table.add_row(
            policy.name,
            str(o.completions),
            str(o.tokens),
            str(o.kept),
            f"{rate:.1f}",
            f"{rate / base_rate:.2f}x" if base_rate else "-",
            str(o.with_a_test),
            str(o.full),
            str(o.rejected.total()),
            ", ".join(f"{k} {v}" for k, v in sorted(o.repaired.items())) or "-",
        )
    console.print(table)
    for policy in POLICIES:
        reasons = ", ".join(f"{k} {v}" for k, v in totals[policy.name].rejected.most_common())
        console.print(f"rejected, {policy.name}: {reasons}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.test_lines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="UCODER_HOME of a running stack (to draw completions)")
    parser.add_argument("--iteration", help="an iteration of that stack whose problems to use")
    parser.add_argument("--humaneval", type=int, default=0, help="use N HumanEval prompts as the problems")
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("--tests", type=int, default=16, help="tests asked per problem")
    parser.add_argument("--max-rounds", type=int, default=TestSynthConfig().max_rounds)
    parser.add_argument("--completions", metavar="PATH", help="the completions cache (read, extended)")
    parser.add_argument("--json", metavar="PATH", help="write the table as JSON")
    args = parser.parse_args(argv)
    for name in ("problems", "tests", "max_rounds"):
        if getattr(args, name) < 1:
            print(f"bench.test_lines: --{name.replace('_', '-')}: must be >= 1", file=sys.stderr)
            return 2
    if args.home and not (args.iteration or args.humaneval):
        print("bench.test_lines: --home needs --iteration or --humaneval", file=sys.stderr)
        return 2
    if (args.iteration or args.humaneval) and not args.home:
        print("bench.test_lines: --iteration and --humaneval need --home (a running stack)", file=sys.stderr)
        return 2
    if not args.home and not (args.completions and Path(args.completions).is_file()):
        print("bench.test_lines: pass --home and --iteration, or an existing --completions", file=sys.stderr)
        return 2
    totals, problems = asyncio.run(run(args))
    render(totals, problems, args.tests, Console(width=max(Console().width, 160)))
    if args.json:
        out = {
            name: {
                "completions": o.completions,
                "tokens": o.tokens,
                "tests_kept": o.kept,
                "rounds": o.rounds,
                "problems_with_a_test": o.with_a_test,
                "problems_full": o.full,
                "rejected": dict(o.rejected),
                "repaired": dict(o.repaired),
            }
            for name, o in totals.items()
        }
        out["_settings"] = {"tests": args.tests, "max_rounds": args.max_rounds, "problems": problems}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
