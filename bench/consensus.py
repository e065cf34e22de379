"""Consensus benchmark: how often the clusterer's selection is right, on problems with known answers.

    python -m bench.consensus [--problems N] [--samples N] [--no-model] [--from-cache]
                              [--cache DIR] [--model DIR] [--seed K] [--json PATH]

**Question.** The clusterer picks one candidate per problem and the trainer learns from it, so a
wrong pick is a wrong training example. This bench measures, per selection rule, *precision*
(selected and correct / selected) and *coverage* (problems with a selection / problems), where
*correct* means the selected code passes HumanEval's own hidden tests
(:func:`ucoder_common.evaluation.check_program`, run by the executor). The hidden tests are never
shown to the rules.

**Problems.** The first N (``--problems``) HumanEval problems whose hidden tests have literal
inputs (:func:`ucoder_common.humaneval.extract_inputs`); with ``--no-model`` all 161 by default.

**Pools** (candidates x test inputs), so that the quality of the model's tests and the quality
of its candidates can be told apart:

* ``model``: ``--samples`` candidates from the model (the sampler's candidate prompt, stop
  sequences and 256-token limit, T=0.8, log-probabilities);
* ``known``: 128 draws from the known-answer programs of :mod:`bench.adaptive` (canonical
  solution, up to 16 single-mutation wrong variants, 48 distinct wrong "tail" programs, broken
  ones) with its per-problem profile mix (clear / split / wrong / failing / hopeless): a pool
  whose share of correct programs is known and that goes beyond what the weak model writes;

each on four input sets:

* ``model tests``: up to 100 tests the model writes with test synthesis's prompts and parser
  (docstring examples first, then typical and boundary calls, 30% boundary, deduplicated, as
  the testsynth service mixes them), with the model's guessed outputs for the ``pass`` mode;
* ``mutated tests``: the model tests topped up to 100 by test synthesis's mutation fill
  (:func:`services.testsynth.core.mutation_tests`: type-preserving mutations of the model's own
  inputs, validated like them, seeded by task id), what the service sends with
  ``mutation_fill`` on. Nothing filters out mutations that break the problem's precondition
  (the service has no reference solution either), and they carry no expected output, so in the
  ``pass`` mode they are a constant fail column;
* ``hidden inputs``: the inputs of HumanEval's hidden tests. They carry no expected outputs, so
  the ``pass`` mode there compares with the canonical solution's outputs: an *oracle* upper
  bound, marked as such;
* ``fuzzed inputs``: the hidden inputs followed by type-preserving mutations of them
  (:func:`ucoder_common.mutation.fuzz_inputs`, seeded by task id; FUZZ_POOL tried), keeping the
  first 100 on which the canonical solution returns, so that the tests sweep has 100 tests to
  vary (``pass`` mode: the canonical outputs, an oracle as above).

Model candidates run in gVisor with a per-candidate budget (CANDIDATE_BUDGET_S for all of a
candidate's inputs, the executor's ``timeout_per_candidate_s``), so a looping candidate costs one
budget rather than a timeout per input.

**Rules** (:func:`services.clusterer.core.select`): the paper's rule in both signature modes
(``paper-output``, ``paper-pass``) and its ablation baselines (``random`` among successful,
``cluster`` = dominant output cluster without the reliability filter, ``low_ppl``,
``success_rate`` >= 0.5), each with the clusterer's ``reject_constant`` and no abstention unless
a table says otherwise. Defaults rho 0.8, tau 2, all tests, all samples; the sweeps vary one of
rho {0.5, 0.8, 1.0}, tau {1..4}, tests {10, 25, 50, 100} (a prefix of the test list) and
samples {8, 32, 128} (a prefix of the draws) at a time. The abstention table sweeps
``min_confidence`` (0, 0.5, 0.8, 0.9, 0.95) under five sets of the other abstention rules: none;
``near_constant`` 0.9 + ``trivial_body``; those + ``min_distinct`` 2; those with the threshold on
the distinct-program confidence instead; those + ``min_share`` 0.3. Each rule selects once and
the thresholds are applied to the confidences it reports, which is what the clusterer's
abstention does (it withholds a pick, never changes it). The calibration table gives, per set,
the least threshold reaching 90% precision and its coverage.

**Fairness and cost.** Every rule sees the same candidates and the same outcomes. Generation
runs once and is cached as JSON under ``--cache`` (a directory per model and generation
settings; one file per problem, so an interrupted run resumes); every distinct
(program, input) pair and every hidden-test check runs once and is cached beside it, so
``--from-cache`` recomputes all tables without the model. Model-written code runs in the gVisor
sandbox as the executor service runs it; dataset code (canonical solution and its mutations) in
the process backend, as :mod:`bench.adaptive` does. Known-answer draws are seeded (``--seed``).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.adaptive import Pool as AdaptivePool
from bench.adaptive import assign_profile, build_programs
from services.clusterer.core import (
    DEFAULT_NEAR_CONSTANT,
    Outcome,
    ScoredCandidate,
    SelectionRule,
    SignatureMode,
    select,
)
from services.executor.harness import canonical_digest
from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome
from services.sampler.core import CANDIDATE_STOP, assemble_candidate, candidate_prompt
from services.testsynth import core as testsynth
from ucoder_common.evaluation import CHECK_ENTRY_POINT, CHECK_INPUT, CHECK_PASSED_DIGEST, check_program
from ucoder_common.humaneval import HumanEvalProblem, extract_inputs, load_problems
from ucoder_common.mutation import fuzz_inputs

PROBLEMS = 40
"""Model arm: problems (2-core CPU: ~35 s of generation and 15-20 s of execution each, ~35 min)."""
SAMPLES = 32
"""Model candidates per problem."""
TEMPERATURE = 0.8
CANDIDATE_MAX_TOKENS = 256
"""The orchestrator's default candidate budget."""
TEST_COMPLETIONS = 6
"""Test-writing completions per kind (typical, boundary) and problem."""
TEST_MAX_TOKENS = 384
"""testsynth's default budget of one completion."""
MAX_TESTS = 100
BOUNDARY_RATIO = 0.3
DRAWS = 128
"""Known-answer draws per problem."""
TIMEOUT_S = 2.0
CHECK_TIMEOUT_S = 3.0
MEMORY_MB = 512
SANDBOX_ATTEMPTS = 3
CHECKPOINT_EVERY = 4
DEFAULT_CACHE = Path("~/.cache/ucoder/bench-consensus")

RHO, TAU = 0.8, 2
RHOS = (0.5, 0.8, 1.0)
TAUS = (1, 2, 3, 4)
TESTS_GRID = (10, 25, 50, 100)
SAMPLES_GRID = (8, 32, 128)
THRESHOLDS = (0.0, 0.5, 0.8, 0.9, 0.95)
TARGET_PRECISION = 0.9

RULES: tuple[tuple[str, SelectionRule, SignatureMode], ...] = (
    ("paper-output", SelectionRule.PAPER, SignatureMode.OUTPUT),
    ("paper-pass", SelectionRule.PAPER, SignatureMode.PASS),
    ("random", SelectionRule.RANDOM, SignatureMode.OUTPUT),
    ("cluster", SelectionRule.CLUSTER, SignatureMode.OUTPUT),
    ("low_ppl", SelectionRule.LOW_PPL, SignatureMode.OUTPUT),
    ("success_rate", SelectionRule.SUCCESS_RATE, SignatureMode.OUTPUT),
)
CANDIDATE_SETS = ("model", "known")
INPUT_SETS = ("model tests", "mutated tests", "hidden inputs", "fuzzed inputs")
FUZZ_POOL = 2 * MAX_TESTS
"""Fuzzed tuples tried per problem; the first MAX_TESTS on which the canonical solution returns are kept."""
CANDIDATE_BUDGET_S = 20.0
"""Wall-clock budget of one model candidate on all its inputs in gVisor (the executor's
``timeout_per_candidate_s``): a looping candidate costs one budget, not one timeout per input;
the inputs it did not reach count as timeouts."""


class BenchError(Exception):
    """A problem the user can fix (printed as one ``ucoder:`` line)."""


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class (test modules import it)

    args: str
    """A tuple literal of the arguments."""
    expected: str = ""
    """The model's guessed output (a literal) or "" (none)."""
    kind: str = testsynth.TYPICAL


@dataclass(frozen=True)
class Program:
    code: str
    kind: str
    """model | canonical | variant | tail | broken"""
    logprob: float = 0.0
    tokens: int = 50

    @property
    def key(self) -> str:
        return code_key(self.code)


@dataclass
class ProblemData:
    """One problem: its test sets and candidate sets (what the cache holds)."""

    task_id: str
    model_tests: list[Test] = field(default_factory=list)
    hidden_tests: list[Test] = field(default_factory=list)
    fuzz_pool: list[Test] = field(default_factory=list)
    """Fuzzed candidate inputs (hidden inputs first); ``fuzzed_tests`` keeps the valid ones."""
    fuzzed_tests: list[Test] = field(default_factory=list)
    """The first MAX_TESTS of ``fuzz_pool`` on which the canonical solution returns (set by execute)."""
    mutated_tests: list[Test] = field(default_factory=list)
    """``model_tests`` topped up to MAX_TESTS with testsynth's mutations of their inputs (no
    expected outputs): what the testsynth service sends with ``mutation_fill`` on."""
    model: list[Program] = field(default_factory=list)
    """Model candidates in sampling order (a prefix is a smaller sample)."""
    known: list[Program] = field(default_factory=list)
    """The known-answer programs of the problem (distinct)."""
    draws: list[int] = field(default_factory=list)
    """Indices into ``known``: the known-answer pool's samples in draw order."""
    profile: str = ""

    def candidates(self, which: str) -> list[Program]:
        return self.model if which == "model" else [self.known[i] for i in self.draws]

    def tests(self, which: str) -> list[Test]:
        by_set = {
            "model tests": self.model_tests,
            "mutated tests": self.mutated_tests,
            "hidden inputs": self.hidden_tests,
            "fuzzed inputs": self.fuzzed_tests,
        }
        return by_set[which]

    @property
    def canonical(self) -> Program | None:
        return next((p for p in self.known if p.kind == "canonical"), None)


def code_key(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:20]


OutcomeRow = tuple[str, str, str]
"""(kind, value_digest, exception_type) of one execution."""


@dataclass
class Results:
    """Executions and hidden-test verdicts, by code key (what the execution cache holds)."""

    outcomes: dict[str, dict[str, OutcomeRow]] = field(default_factory=dict)
    """code key -> args literal -> outcome."""
    correct: dict[str, bool] = field(default_factory=dict)
    """code key -> passes HumanEval's hidden tests."""


# ---------------------------------------------------------------------------------------------
# Known-answer pools (bench.adaptive's programs and profile mix)


def known_pool(problem: HumanEvalProblem, seed: int) -> tuple[list[Program], list[int], str]:
    """The known-answer programs of a problem, DRAWS seeded draws over them, and the profile."""
    pool = AdaptivePool(problem, (), build_programs(problem, seed))
    assign_profile(pool, random.Random(f"consensus-profile:{seed}:{problem.task_id}"))
    programs = [Program(p.code, p.kind, p.logprob, 50) for p in pool.programs]
    rng = random.Random(f"consensus-draws:{seed}:{problem.task_id}")
    draws = rng.choices(range(len(programs)), pool.weights, k=DRAWS)
    return programs, draws, pool.profile


def usable_problems(limit: int) -> list[HumanEvalProblem]:
    out = [p for p in load_problems() if extract_inputs(p)]
    return out[:limit] if limit else out


# ---------------------------------------------------------------------------------------------
# The model arm (vLLM offline, in this process)


def generation_settings(model: Path, samples: int) -> dict[str, Any]:
    return {
        "model": model.name,
        "samples": samples,
        "temperature": TEMPERATURE,
        "candidate_max_tokens": CANDIDATE_MAX_TOKENS,
        "test_completions": TEST_COMPLETIONS,
        "test_max_tokens": TEST_MAX_TOKENS,
        "max_tests": MAX_TESTS,
        "boundary_ratio": BOUNDARY_RATIO,
    }


def settings_dir(cache: Path, settings: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    return cache / f"{settings['model']}-n{settings['samples']}-{digest}"


def tests_from_completions(problem: HumanEvalProblem, completions: dict[str, list[str]]) -> list[Test]:
    """testsynth's parse, dedupe and mix of a problem's test completions (kind -> texts)."""
    signature = testsynth.parse_signature(problem.prompt, problem.entry_point)
    arity = len(signature.params) if signature else 1
    pool, _ = testsynth.dedupe_tests(
        testsynth.docstring_tests(problem.prompt, problem.entry_point, arity, signature)
    )
    for kind, texts in completions.items():
        for text in texts:
            report = testsynth.parse_tests(
                text, problem.entry_point, arity, testsynth.calls_prefix(problem.entry_point), signature, kind
            )
            pool, _ = testsynth.dedupe_tests([*pool, *report.tests])
    kept = testsynth.mix_tests(pool, MAX_TESTS, BOUNDARY_RATIO)
    return [Test(t.args_literal, t.expected_literal, t.kind) for t in kept]


def mutated_tests(problem: HumanEvalProblem, model_tests: list[Test]) -> list[Test]:
    """``model_tests`` topped up to MAX_TESTS by testsynth's mutation fill (seeded by task id)."""
    if len(model_tests) >= MAX_TESTS:
        return list(model_tests)
    signature = testsynth.parse_signature(problem.prompt, problem.entry_point)
    arity = len(signature.params) if signature else 1
    pool = [testsynth.ParsedTest(t.args, t.expected, t.kind) for t in model_tests]
    extra = testsynth.mutation_tests(pool, MAX_TESTS - len(pool), arity, signature, problem.task_id)
    return [*model_tests, *(Test(t.args_literal, "", t.kind) for t in extra)]


def generate(problems: list[HumanEvalProblem], model: Path, samples: int, out_dir: Path) -> float:
    """Tests and candidates of every problem not yet in ``out_dir``; returns the seconds spent."""
    todo = [p for p in problems if not (out_dir / _file(p.task_id)).is_file()]
    if not todo:
        return 0.0
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    from vllm import LLM

    from services.sampler.app import SamplerConfig
    from services.sampler.engine import engine_args, prepare_environment, sampling_params

    t0 = time.perf_counter()
    prepare_environment()
    llm = LLM(**engine_args(SamplerConfig().engine_config(model)))
    out_dir.mkdir(parents=True, exist_ok=True)
    test_params = sampling_params(TEST_COMPLETIONS, TEMPERATURE, TEST_MAX_TOKENS, testsynth.TESTS_STOP)
    cand_params = sampling_params(samples, TEMPERATURE, CANDIDATE_MAX_TOKENS, CANDIDATE_STOP)
    # A few problems per generate call: the batch keeps the engine busy, and each finished chunk
    # is cached (an interrupted run loses at most one chunk).
    chunk = 4
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        test_prompts: list[str] = []
        for p in part:
            signature = testsynth.parse_signature(p.prompt, p.entry_point)
            arity = len(signature.params) if signature else 1
            for kind in testsynth.KINDS:
                test_prompts.append(
                    testsynth.build_tests_prompt(p.prompt, p.entry_point, arity, kind, signature)
                )
        test_out = llm.generate(test_prompts, test_params, use_tqdm=False)
        cand_out = llm.generate([candidate_prompt(p.prompt) for p in part], cand_params, use_tqdm=False)
        for i, p in enumerate(part):
            completions = {
                kind: [c.text for c in test_out[2 * i + k].outputs] for k, kind in enumerate(testsynth.KINDS)
            }
            model_programs = [
                Program(
                    assemble_candidate(p.prompt, c.text),
                    "model",
                    float(c.cumulative_logprob or 0.0),
                    len(c.token_ids),
                )
                for c in cand_out[i].outputs
            ]
            record = {
                "task_id": p.task_id,
                "test_completions": completions,
                "tests": [asdict(t) for t in tests_from_completions(p, completions)],
                "candidates": [asdict(c) for c in model_programs],
            }
            (out_dir / _file(p.task_id)).write_text(json.dumps(record))
        print(f"generated {start + len(part)}/{len(todo)} problems", file=sys.stderr, flush=True)
    del llm
    return time.perf_counter() - t0


def _file(task_id: str) -> str:
    return task_id.replace("/", "_") + ".json"


def load_model_arm(problem: HumanEvalProblem, out_dir: Path) -> tuple[list[Test], list[Program]]:
    record = json.loads((out_dir / _file(problem.task_id)).read_text())
    return [Test(**t) for t in record["tests"]], [Program(**c) for c in record["candidates"]]


# ---------------------------------------------------------------------------------------------
# Execution (every distinct (program, input) pair once; cached)


def load_results(path: Path) -> Results:
    if not path.is_file():
        return Results()
    raw = json.loads(path.read_text())
    return Results(
        {k: {a: (o[0], o[1], o[2]) for a, o in v.items()} for k, v in raw["outcomes"].items()},
        raw["correct"],
    )


def save_results(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"outcomes": results.outcomes, "correct": results.correct}))
    tmp.replace(path)


async def _run_many(
    pool: SandboxPool, codes: list[str], entry: str, inputs: list[str], timeout: float
) -> Any:
    for attempt in range(SANDBOX_ATTEMPTS):
        try:
            return await pool.run_many(codes, entry, inputs, timeout_s=timeout)
        except SandboxError:
            if attempt == SANDBOX_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _row(o: TestOutcome) -> OutcomeRow:
    return (o.kind, o.value_digest, o.exception_type)


async def execute(
    problems: dict[str, HumanEvalProblem],
    data: list[ProblemData],
    results: Results,
    sandboxed: bool,
    checkpoint: Callable[[], None] | None = None,
) -> int:
    """Runs what ``results`` lacks: programs on their problem's inputs, and hidden-test checks.

    Model code in gVisor (``sandboxed``; the process backend otherwise), dataset code in the
    process backend. ``checkpoint`` is called after every CHECKPOINT_EVERY problems that ran
    something (it saves the cache, so an interrupted run keeps most of its work). Returns how
    many executions ran.
    """
    size = os.cpu_count() or 1
    pools: dict[str, SandboxPool] = {}

    async def pool_for(kind: str) -> SandboxPool:
        backend = Backend.GVISOR if kind == "model" and sandboxed else Backend.PROCESS
        if backend.value not in pools:
            pools[backend.value] = SandboxPool(
                backend,
                size=size,
                default_timeout_s=TIMEOUT_S,
                default_memory_mb=MEMORY_MB,
                candidate_timeout_s=CANDIDATE_BUDGET_S if backend is Backend.GVISOR else 0.0,
            )
            await pools[backend.value].start()
        return pools[backend.value]

    ran = 0
    finished = 0

    async def one(d: ProblemData) -> None:
        nonlocal ran, finished
        ran_before = ran
        problem = problems[d.task_id]
        canonical = d.canonical
        if canonical is not None and d.fuzz_pool:
            # The canonical solution first: it decides which fuzzed inputs are valid tests.
            have = results.outcomes.get(canonical.key, {})
            missing_fuzz = [t.args for t in d.fuzz_pool if t.args not in have]
            if missing_fuzz:
                sandbox = await pool_for("dataset")
                out = await _run_many(sandbox, [canonical.code], problem.entry_point, missing_fuzz, TIMEOUT_S)
                results.outcomes.setdefault(canonical.key, {}).update(
                    {a: _row(o) for a, o in zip(missing_fuzz, out[0], strict=True)}
                )
                ran += len(missing_fuzz)
        d.fuzzed_tests = valid_fuzzed(d, results)
        base = list(dict.fromkeys(t.args for t in (*d.model_tests, *d.mutated_tests, *d.hidden_tests)))
        programs = {p.key: p for p in (*d.model, *d.known)}
        for origin in ("model", "dataset"):
            mine = [p for p in programs.values() if (p.kind == "model") == (origin == "model")]
            if not mine:
                continue
            inputs = list(dict.fromkeys((*base, *(t.args for t in d.fuzzed_tests))))
            sandbox = await pool_for("model" if origin == "model" else "dataset")
            # Missing inputs per program; programs missing the same ones run together.
            groups: dict[tuple[str, ...], list[Program]] = {}
            for p in mine:
                have = results.outcomes.get(p.key, {})
                missing = tuple(a for a in inputs if a not in have)
                if missing:
                    groups.setdefault(missing, []).append(p)
            for missing, group in groups.items():
                out = await _run_many(
                    sandbox, [p.code for p in group], problem.entry_point, list(missing), TIMEOUT_S
                )
                for p, outcomes in zip(group, out, strict=True):
                    results.outcomes.setdefault(p.key, {}).update(
                        {a: _row(o) for a, o in zip(missing, outcomes, strict=True)}
                    )
                ran += len(group) * len(missing)
            unchecked = [p for p in mine if p.key not in results.correct]
            if unchecked:
                codes = [check_program(problem, _completion(problem, p.code))[0] for p in unchecked]
                out = await _run_many(sandbox, codes, CHECK_ENTRY_POINT, [CHECK_INPUT], CHECK_TIMEOUT_S)
                for p, outcomes in zip(unchecked, out, strict=True):
                    o = outcomes[0]
                    results.correct[p.key] = o.kind == "returned" and o.value_digest == CHECK_PASSED_DIGEST
                ran += len(unchecked)
        if ran > ran_before:
            finished += 1
            print(f"executed {finished} problems ({ran} runs)", file=sys.stderr, flush=True)
            if checkpoint is not None and finished % CHECKPOINT_EVERY == 0:
                checkpoint()

    try:
        await asyncio.gather(*(one(d) for d in data))
    finally:
        for pool in pools.values():
            await pool.close()
    return ran


def valid_fuzzed(d: ProblemData, results: Results) -> list[Test]:
    """The first MAX_TESTS fuzzed inputs on which the canonical solution returned (no exception, no
    timeout): a mutation that breaks the problem's precondition is not a valid test."""
    canonical = d.canonical
    rows = results.outcomes.get(canonical.key, {}) if canonical else {}
    return [t for t in d.fuzz_pool if t.args in rows and rows[t.args][0] == "returned"][:MAX_TESTS]


def _completion(problem: HumanEvalProblem, code: str) -> str:
    """What follows the prompt in ``code``; a whole program when ``code`` does not start with it.

    Mutated programs are unparsed ASTs, so they do not: the prompt's function (a docstring
    only) is then simply redefined by ``code`` before the hidden tests run.
    """
    prompt = problem.prompt
    if code.startswith(prompt):
        return code[len(prompt) :]
    return "\n" + code


# ---------------------------------------------------------------------------------------------
# Selection over the outcome matrix (pure)


def _expected_digest(literal: str) -> str:
    try:
        return str(canonical_digest(ast.literal_eval(literal)))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return ""


@dataclass(frozen=True)
class Setting:
    rule: str = "paper-output"
    rho: float = RHO
    tau: int = TAU
    tests: int = 0
    """Test prefix (0 = all)."""
    samples: int = 0
    """Sample prefix (0 = all)."""
    near_constant: float = 0.0
    trivial: bool = False


@dataclass(frozen=True)
class Decision:
    """One rule's result on one problem (``confidence`` applies to ``picked``, not yet withheld)."""

    task_id: str
    picked: bool
    correct: bool
    confidence: float
    solvable: bool
    """The pool holds at least one correct candidate."""
    distinct: int = 0
    """Distinct programs in the picked cluster."""
    distinct_confidence: float = 0.0
    share: float = 0.0
    """The picked cluster's share of all candidates."""


class Matrix:
    """The outcome matrix of a run and the selections on it (pure, given data and results)."""

    def __init__(self, data: Sequence[ProblemData], results: Results) -> None:
        self.data = list(data)
        self.results = results
        self._expected: dict[tuple[str, str], list[str]] = {}
        self._scored: dict[tuple[str, str, str, int], list[ScoredCandidate]] = {}

    def expected(self, d: ProblemData, inputs: str) -> list[str]:
        """Expected digests per test: the model's guesses, or the canonical outputs (oracle)."""
        key = (d.task_id, inputs)
        if key not in self._expected:
            tests = d.tests(inputs)
            if inputs in ("model tests", "mutated tests"):
                self._expected[key] = [_expected_digest(t.expected) if t.expected else "" for t in tests]
            else:
                canonical = d.canonical
                rows = self.results.outcomes.get(canonical.key, {}) if canonical else {}
                self._expected[key] = [
                    rows[t.args][1] if t.args in rows and rows[t.args][0] == "returned" else "" for t in tests
                ]
        return self._expected[key]

    def scored(self, d: ProblemData, cands: str, inputs: str, tests: int) -> list[ScoredCandidate]:
        key = (d.task_id, cands, inputs, tests)
        if key not in self._scored:
            chosen = d.tests(inputs)[: tests or None]
            expected = self.expected(d, inputs)
            out = []
            for i, p in enumerate(d.candidates(cands)):
                rows = self.results.outcomes[p.key]
                outcomes = []
                for t, exp in zip(chosen, expected, strict=False):
                    kind, digest, exc = rows[t.args]
                    passed = kind == "returned" and exp != "" and digest == exp
                    outcomes.append(Outcome(kind, digest, exc, passed))
                out.append(ScoredCandidate(f"{i:04d}", p.code, tuple(outcomes), p.logprob, p.tokens))
            self._scored[key] = out
        return self._scored[key]

    def decide(self, cands: str, inputs: str, s: Setting) -> list[Decision]:
        """The rule's decision on every problem that has the pool (and at least one test)."""
        _, rule, mode = next(r for r in RULES if r[0] == s.rule)
        out: list[Decision] = []
        for d in self.data:
            programs = d.candidates(cands)[: s.samples or None]
            if not programs or not d.tests(inputs):
                continue
            scored = self.scored(d, cands, inputs, s.tests)[: len(programs)]
            result = select(
                scored,
                s.rho,
                s.tau,
                mode,
                rule=rule,
                near_constant=s.near_constant,
                reject_trivial=s.trivial,
                problem_id=d.task_id,
            )
            correct = False
            if result.selected:
                correct = self.results.correct[programs[int(result.candidate_id)].key]
            solvable = any(self.results.correct[p.key] for p in programs)
            out.append(
                Decision(
                    d.task_id,
                    result.selected,
                    correct,
                    result.confidence,
                    solvable,
                    result.distinct,
                    result.distinct_confidence,
                    result.share,
                )
            )
        return out


@dataclass(frozen=True)
class Score:
    problems: int
    selected: int
    correct: int
    solvable: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.selected if self.selected else None

    @property
    def coverage(self) -> float:
        return self.selected / self.problems if self.problems else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "selected": self.selected,
            "correct": self.correct,
            "solvable": self.solvable,
            "precision": None if self.precision is None else round(self.precision, 4),
            "coverage": round(self.coverage, 4),
        }


def _confidence(d: Decision, distinct: bool) -> float:
    return d.distinct_confidence if distinct else d.confidence


def score(
    decisions: Iterable[Decision],
    min_confidence: float = 0.0,
    min_distinct: int = 0,
    distinct: bool = False,
    min_share: float = 0.0,
) -> Score:
    """Precision inputs of ``decisions`` when picks below ``min_confidence`` (the distinct-program
    confidence when ``distinct``), with fewer than ``min_distinct`` programs or less than
    ``min_share`` of the candidates are withheld (as the clusterer's abstention rules would)."""
    ds = list(decisions)
    kept = [
        d
        for d in ds
        if d.picked
        and _confidence(d, distinct) >= min_confidence - 1e-9
        and d.distinct >= min_distinct
        and d.share >= min_share - 1e-9
    ]
    return Score(len(ds), len(kept), sum(d.correct for d in kept), sum(d.solvable for d in ds))


def best_threshold(
    decisions: Sequence[Decision],
    target: float,
    min_distinct: int = 0,
    distinct: bool = False,
    min_share: float = 0.0,
) -> tuple[float, Score] | None:
    """The lowest confidence threshold whose precision reaches ``target`` (most coverage), if any."""
    for threshold in sorted({0.0, *(_confidence(d, distinct) for d in decisions if d.picked)}):
        s = score(decisions, threshold, min_distinct, distinct, min_share)
        if s.selected and s.precision is not None and s.precision >= target:
            return threshold, s
    return None


MIN_SHARE = 0.3
ABSTENTIONS: tuple[tuple[str, bool, int, bool, float], ...] = (
    # name, near_constant + trivial_body, min_distinct, threshold on the distinct-program
    # confidence, min_share
    ("none", False, 0, False, 0.0),
    ("nc+trivial", True, 0, False, 0.0),
    ("nc+trivial+distinct>=2", True, 2, False, 0.0),
    ("nc+trivial, distinct conf", True, 0, True, 0.0),
    (f"nc+trivial+share>={MIN_SHARE:g}", True, 0, False, MIN_SHARE),
)


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    problems: int
    model_problems: int
    samples: int
    seed: int
    generate_s: float
    execute_s: float
    executions: int
    compute_s: float
    tests: dict[str, list[int]]
    """Tests per problem, by input set (see INPUT_SETS)."""
    correct_candidates: dict[str, list[int]]
    """Correct candidates per problem, by candidate set (model, known)."""
    tables: dict[str, list[dict[str, Any]]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pools_of(data: Sequence[ProblemData]) -> list[tuple[str, str]]:
    """(candidates, inputs) pairs that some problem has."""
    return [
        (c, i)
        for c in CANDIDATE_SETS
        for i in INPUT_SETS
        if any(d.candidates(c) and d.tests(i) for d in data)
    ]


def compute(matrix: Matrix) -> dict[str, list[dict[str, Any]]]:
    pools = pools_of(matrix.data)
    tables: dict[str, list[dict[str, Any]]] = {k: [] for k in ("main", "sweeps", "abstention", "calibration")}

    def row(cands: str, inputs: str, s: Setting, **extra: Any) -> dict[str, Any]:
        decisions = matrix.decide(cands, inputs, s)
        return {"pool": f"{cands} / {inputs}", **extra, **score(decisions).to_json()}

    for cands, inputs in pools:
        for name, _, _ in RULES:
            tables["main"].append(row(cands, inputs, Setting(rule=name), rule=name))
        for rule in ("paper-output", "paper-pass"):
            for rho in RHOS:
                tables["sweeps"].append(
                    row(cands, inputs, Setting(rule=rule, rho=rho), rule=rule, vary="rho", value=rho)
                )
            for tau in TAUS:
                tables["sweeps"].append(
                    row(cands, inputs, Setting(rule=rule, tau=tau), rule=rule, vary="tau", value=tau)
                )
            for tests in TESTS_GRID:
                tables["sweeps"].append(
                    row(cands, inputs, Setting(rule=rule, tests=tests), rule=rule, vary="tests", value=tests)
                )
            for samples in SAMPLES_GRID:
                if samples > max(len(d.candidates(cands)) for d in matrix.data):
                    continue
                tables["sweeps"].append(
                    row(
                        cands,
                        inputs,
                        Setting(rule=rule, samples=samples),
                        rule=rule,
                        vary="samples",
                        value=samples,
                    )
                )
            for abst, on, min_distinct, by_distinct, min_share in ABSTENTIONS:
                near = DEFAULT_NEAR_CONSTANT if on else 0.0
                decisions = matrix.decide(cands, inputs, Setting(rule=rule, near_constant=near, trivial=on))
                for threshold in THRESHOLDS:
                    tables["abstention"].append(
                        {
                            "pool": f"{cands} / {inputs}",
                            "rule": rule,
                            "abstain": abst,
                            "min_confidence": threshold,
                            **score(decisions, threshold, min_distinct, by_distinct, min_share).to_json(),
                        }
                    )
                best = best_threshold(decisions, TARGET_PRECISION, min_distinct, by_distinct, min_share)
                tables["calibration"].append(
                    {
                        "pool": f"{cands} / {inputs}",
                        "rule": rule,
                        "abstain": abst,
                        "threshold": None if best is None else round(best[0], 4),
                        **(best[1].to_json() if best else score([]).to_json()),
                    }
                )
    return tables


def build_data(problems: Sequence[HumanEvalProblem], seed: int) -> list[ProblemData]:
    """Each problem with its hidden inputs and known-answer pool (the model arm is added later)."""
    data = []
    for p in problems:
        programs, draws, profile = known_pool(p, seed)
        hidden = extract_inputs(p)
        fuzz = [Test(a) for a in fuzz_inputs(hidden, p.task_id, FUZZ_POOL)]
        data.append(
            ProblemData(
                p.task_id,
                hidden_tests=[Test(a) for a in hidden],
                fuzz_pool=fuzz,
                known=programs,
                draws=draws,
                profile=profile,
            )
        )
    return data


def run_bench(
    problems: int,
    samples: int,
    use_model: bool,
    from_cache: bool,
    cache: Path,
    model_dir: str,
    seed: int,
    sandboxed: bool = True,
) -> Report:
    """Generates (or loads), executes (or loads) and computes every table (``problems`` 0 = all)."""
    cache = cache.expanduser()
    selected_problems = usable_problems(problems)
    by_id = {p.task_id: p for p in selected_problems}
    data = build_data(selected_problems, seed)

    generate_s = 0.0
    model_problems = 0
    results_path = cache / f"executions-seed{seed}.json"
    if use_model:
        from ucoder_common import models

        if from_cache:
            if not cache.is_dir():
                raise BenchError(f"--from-cache: no cache at {cache} (run without --from-cache first)")
            # The settings directory holds the model name; any directory with these settings will do.
            name = Path(model_dir).expanduser().name if model_dir else models.DEFAULT_MODEL_NAME
            model_path = Path(name)
        else:
            model_path = models.resolve_model(model_dir)
        out_dir = settings_dir(cache, generation_settings(model_path, samples))
        results_path = out_dir / f"executions-seed{seed}.json"
        if from_cache:
            missing = [p.task_id for p in selected_problems if not (out_dir / _file(p.task_id)).is_file()]
            if missing:
                raise BenchError(
                    f"--from-cache: {len(missing)} of {len(selected_problems)} problems are not cached in "
                    f"{out_dir} (first: {missing[0]}); run without --from-cache first"
                )
        else:
            generate_s = generate(selected_problems, model_path, samples, out_dir)
        for d in data:
            d.model_tests, d.model = load_model_arm(by_id[d.task_id], out_dir)
            d.mutated_tests = mutated_tests(by_id[d.task_id], d.model_tests)
        model_problems = len(data)
    elif from_cache and not results_path.is_file():
        raise BenchError(f"--from-cache: no cache at {results_path} (run without --from-cache first)")

    results = load_results(results_path)
    t0 = time.perf_counter()
    executions = asyncio.run(
        execute(by_id, data, results, sandboxed, checkpoint=lambda: save_results(results, results_path))
    )
    execute_s = time.perf_counter() - t0
    if executions:
        save_results(results, results_path)

    t0 = time.perf_counter()
    tables = compute(Matrix(data, results))
    compute_s = time.perf_counter() - t0
    return Report(
        problems=len(data),
        model_problems=model_problems,
        samples=samples if use_model else 0,
        seed=seed,
        generate_s=round(generate_s, 1),
        execute_s=round(execute_s, 1),
        executions=executions,
        compute_s=round(compute_s, 1),
        tests={i: [len(d.tests(i)) for d in data if d.tests(i)] for i in INPUT_SETS},
        correct_candidates={
            c: [sum(results.correct[p.key] for p in d.candidates(c)) for d in data if d.candidates(c)]
            for c in CANDIDATE_SETS
        },
        tables=tables,
    )


# ---------------------------------------------------------------------------------------------
# Output


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _cell(r: dict[str, Any]) -> str:
    """precision / coverage (selected)"""
    return f"{_pct(r['precision'])} / {_pct(r['coverage'])} ({r['selected']})"


def render(report: Report, console: Console) -> None:
    t = report.tables
    console.print(
        f"problems: {report.problems} (model arm: {report.model_problems}, {report.samples} samples), "
        f"known-answer draws: {DRAWS}, seed {report.seed}; generation {report.generate_s:.0f} s, "
        f"execution {report.execute_s:.0f} s ({report.executions} runs), tables {report.compute_s:.0f} s"
    )
    for inputs, counts in report.tests.items():
        if counts:
            console.print(
                f"{inputs}: {sum(counts)} in all, per problem min {min(counts)}, "
                f"median {statistics.median(counts):g}, max {max(counts)}"
            )
    for cands, counts in report.correct_candidates.items():
        if counts:
            some, two = sum(1 for n in counts if n), sum(1 for n in counts if n >= 2)
            console.print(
                f"{cands} candidates: problems with a correct one {some}/{len(counts)}, "
                f"with >= 2 {two}/{len(counts)}"
            )
    console.print(
        "cells: precision / coverage (selections); "
        "pass mode on hidden and fuzzed inputs compares with the canonical outputs (oracle)"
    )
    pools = list(dict.fromkeys(r["pool"] for r in t["main"]))

    main = Table(title=f"rules at rho {RHO}, tau {TAU}, all tests and samples")
    main.add_column("rule", no_wrap=True)
    for p in pools:
        main.add_column(p, justify="right")
    for name, _, _ in RULES:
        main.add_row(
            name, *(_cell(next(r for r in t["main"] if r["pool"] == p and r["rule"] == name)) for p in pools)
        )
    solvable = [next(r for r in t["main"] if r["pool"] == p) for p in pools]
    main.add_row("(a correct candidate exists)", *(f"{r['solvable']}/{r['problems']}" for r in solvable))
    console.print(main)

    sweeps = Table(title="sweeps (one setting varied, the others at their defaults)")
    sweeps.add_column("rule", no_wrap=True)
    sweeps.add_column("setting", no_wrap=True)
    for p in pools:
        sweeps.add_column(p, justify="right")
    keys = list(dict.fromkeys((r["rule"], r["vary"], r["value"]) for r in t["sweeps"]))
    for rule, vary, value in keys:
        cells = []
        for p in pools:
            r = next(
                (
                    r
                    for r in t["sweeps"]
                    if (r["pool"], r["rule"], r["vary"], r["value"]) == (p, rule, vary, value)
                ),
                None,
            )
            cells.append("" if r is None else _cell(r))
        sweeps.add_row(rule, f"{vary} {value:g}", *cells)
    console.print(sweeps)

    abst = Table(title="abstention: min_confidence with other abstention rules (nc = near_constant 0.9)")
    abst.add_column("rule", no_wrap=True)
    abst.add_column("abstain", no_wrap=True)
    abst.add_column("min_conf", justify="right")
    for p in pools:
        abst.add_column(p, justify="right")
    keys2 = list(dict.fromkeys((r["rule"], r["abstain"], r["min_confidence"]) for r in t["abstention"]))
    for rule, a, th in keys2:
        cells = [
            _cell(
                next(
                    r
                    for r in t["abstention"]
                    if (r["pool"], r["rule"], r["abstain"], r["min_confidence"]) == (p, rule, a, th)
                )
            )
            for p in pools
        ]
        abst.add_row(rule, a, f"{th:g}", *cells)
    console.print(abst)

    cal = Table(title=f"calibration: least min_confidence reaching precision >= {TARGET_PRECISION:.0%}")
    cal.add_column("rule", no_wrap=True)
    cal.add_column("abstain", no_wrap=True)
    for p in pools:
        cal.add_column(p, justify="right")
    for rule, a in dict.fromkeys((r["rule"], r["abstain"]) for r in t["calibration"]):
        cells = []
        for p in pools:
            r = next(r for r in t["calibration"] if (r["pool"], r["rule"], r["abstain"]) == (p, rule, a))
            cells.append("unreachable" if r["threshold"] is None else f"{r['threshold']:.3g}: {_cell(r)}")
        cal.add_row(rule, a, *cells)
    console.print(cal)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.consensus", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--problems",
        type=int,
        default=None,
        help=f"first N usable problems (default {PROBLEMS}; with --no-model all, 0 = all)",
    )
    parser.add_argument("--samples", type=int, default=SAMPLES, help="model candidates per problem")
    parser.add_argument("--no-model", action="store_true", help="known-answer pools only (no model arm)")
    parser.add_argument("--from-cache", action="store_true", help="use cached generations only (no model)")
    parser.add_argument("--cache", default=str(DEFAULT_CACHE), help="cache directory")
    parser.add_argument("--model", default="", help="model directory (default: the default model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the known-answer pools")
    parser.add_argument("--json", metavar="PATH", help="also write the tables as JSON")
    args = parser.parse_args(argv)
    problems = args.problems if args.problems is not None else (0 if args.no_model else PROBLEMS)
    if problems < 0:
        parser.error("--problems must be >= 0")
    if args.samples < 1:
        parser.error("--samples must be >= 1")
    try:
        report = run_bench(
            args.problems,
            args.samples,
            not args.no_model,
            args.from_cache,
            Path(args.cache),
            args.model,
            args.seed,
        )
    except BenchError as exc:
        print(f"ucoder: {exc}", file=sys.stderr)
        return 2
    render(report, Console(width=max(Console().width, 180)))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
