"""Test-synthesis prompts with and without seed lines: valid, new tests per round on the same problems.

    python -m bench.seeded_tests --home DIR --iteration ID [--problems 12] [--rounds 2]
                                 [--samples 4] [--seed-lines 3] [--json PATH]

**Question.** The model often writes test lines that are no test (the parameters' names as
arguments, wrong arity, wrong types). Does showing it the problem's own valid tests as the first
lines of the block it continues (``services.testsynth`` setting ``seed_lines``: the docstring
examples, then earlier rounds' lines, rotating by round) make it write more valid, new tests?

**Method.** The problems of an iteration already stored in a running stack (``--home``, the
stack's ``UCODER_HOME``; ``--iteration``, e.g. a pool of bench/efficacy.py). Per problem and
round, one typical-kind request of ``--samples`` completions with the seed lines and one without,
sent together to the stack's sampler (its defaults: T = 0.8, 384 tokens, the service's stop
sequences and parser). Each arm keeps its own pool, starting from the docstring examples, so
round 2's seeds are what that arm found in round 1. Counted per arm: lines parsed as valid tests,
lines rejected, and *new* distinct tests added to the pool (what test synthesis needs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.testsynth import core
from services.testsynth.app import TestSynthConfig
from ucoder_common import sampler_client
from ucoder_common.bus import Bus
from ucoder_common.localstack import StackPaths, read_stack
from ucoder_common.pb import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, sampler_pb2

ARMS = ("unseeded", "seeded")


async def one_problem(
    bus: Bus, problem: common_pb2.Problem, rounds: int, samples: int, seed_lines: int
) -> dict[str, Counter[str]]:
    """Per arm: valid, rejected and new tests per round, and whether the pool ended non-empty."""
    cfg = TestSynthConfig()
    signature = core.problem_signature(problem.signature, problem.prompt, problem.entry_point)
    start = core.dedupe_tests(
        core.docstring_tests(problem.prompt, problem.entry_point, problem.arity, signature)
    )[0]
    pools = {arm: list(start) for arm in ARMS}
    counts: dict[str, Counter[str]] = {arm: Counter() for arm in ARMS}

    async def generate(arm: str, round_index: int) -> list[str]:
        seeds = core.seed_tests(pools[arm], core.TYPICAL, seed_lines, round_index) if arm == "seeded" else []
        prompt = core.build_tests_prompt(
            problem.prompt, problem.entry_point, problem.arity, core.TYPICAL, signature, seeds
        )
        request = sampler_pb2.GenerateRequest(
            prompt=prompt,
            n=samples,
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            stop=core.TESTS_STOP,
        )
        response = await sampler_client.generate(bus.nc, request, cfg.sampler_timeout_s)
        return [c.text for c in response.completions]

    for round_index in range(rounds):
        texts = await asyncio.gather(*(generate(arm, round_index) for arm in ARMS))
        for arm, completions in zip(ARMS, texts, strict=True):
            for text in completions:
                report = core.parse_tests(
                    text,
                    problem.entry_point,
                    problem.arity,
                    core.calls_prefix(problem.entry_point),
                    signature,
                )
                before = len(pools[arm])
                pools[arm] = core.dedupe_tests([*pools[arm], *report.tests])[0]
                counts[arm]["valid"] += len(report.tests)
                counts[arm]["rejected"] += report.rejected.total()
                counts[arm][f"new round {round_index + 1}"] += len(pools[arm]) - before
    for arm in ARMS:
        counts[arm]["problems with a test"] += bool(pools[arm])
    return counts


async def run(
    home: Path, iteration_id: str, problems: int, rounds: int, samples: int, seed_lines: int
) -> dict[str, Counter[str]]:
    info = read_stack(StackPaths(home))
    if info is None or not info.any_alive():
        raise SystemExit(f"bench.seeded_tests: no running stack in {home}")
    with info.channel("orchestrator") as channel:
        it = orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetIteration(
            orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id, include_problems=True),
            timeout=120,
        )
    chosen = [ps.problem for ps in it.problems][:problems]
    bus = await Bus.connect(info.nats_url, name="bench-seeded-tests")
    try:
        per_problem = await asyncio.gather(
            *(one_problem(bus, p, rounds, samples, seed_lines) for p in chosen)
        )
    finally:
        await bus.close()
    totals: dict[str, Counter[str]] = {arm: Counter() for arm in ARMS}
    for counts in per_problem:
        for arm in ARMS:
            totals[arm].update(counts[arm])
    totals["_problems"] = Counter({"problems": len(chosen)})
    return totals


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.seeded_tests", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--home", required=True, help="UCODER_HOME of a running stack")
    parser.add_argument("--iteration", required=True, help="an iteration of that stack whose problems to use")
    parser.add_argument("--problems", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=4, help="completions per request")
    parser.add_argument("--seed-lines", type=int, default=3)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    for name in ("problems", "rounds", "samples", "seed_lines"):
        if getattr(args, name) < 1:
            print(f"bench.seeded_tests: --{name.replace('_', '-')}: must be >= 1", file=sys.stderr)
            return 2
    totals = asyncio.run(
        run(Path(args.home), args.iteration, args.problems, args.rounds, args.samples, args.seed_lines)
    )
    rows = ["valid", "rejected", *(f"new round {r + 1}" for r in range(args.rounds)), "problems with a test"]
    table = Table(
        title=f"test lines on {totals['_problems']['problems']} problems, "
        f"{args.samples} completions per round and arm"
    )
    table.add_column("")
    for arm in ARMS:
        table.add_column(arm, justify="right")
    for row in rows:
        table.add_row(row, *(str(totals[arm][row]) for arm in ARMS))
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({arm: dict(totals[arm]) for arm in totals}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
