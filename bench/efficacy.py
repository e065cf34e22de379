"""Efficacy experiment: does training on the loop's own selections make the model better?

    python -m bench.efficacy [--problems 24 --tests 16 --samples 32 --iterations 1]
                             [--arms consensus,random-successful,none] [--min-confidence F]
                             [--eval-problems 0 --eval-samples 10 --eval-temperature 0.8]
                             [--validation-problems 8] [--cache DIR] [--json PATH]

**Arms**, all starting from the same base model (version 0) with the same budget per iteration
(problems x tests x samples, the same temperature, epochs and trainer):

* ``consensus``: the service's selection (the paper's rule with the clusterer's abstention);
* ``random-successful``: the paper's ablation baseline: as many examples as ``consensus`` trained
  on at the same iteration, drawn at random among the problems' successful candidates (the
  clusterer's ``random`` rule: e(r) >= rho, constant-output clusters left out) of the same pool;
  the first iteration shares ``consensus``'s pool (same base model, so the comparison is paired),
  later ones sample their own from the arm's version;
* ``none``: no training: the base model measured the same way.

**The real stack.** The runner starts the local stack (nats-server and the seven services) in its
own ``UCODER_HOME`` under the cache, runs each pool as a real iteration (``skip_training``: the
orchestrator generates problems and tests, samples, executes in gVisor and selects) and trains
each arm through the trainer's ``Train`` RPC, so both arms train the same way. It sets the
registry's current version before each iteration (the version the arm has reached).

**Measurement** per version: HumanEval, all 164 problems by default, pass@1 estimated from
``--eval-samples`` completions at ``--eval-temperature`` (the unbiased estimator; c / n for k = 1)
and greedy; the delta against the base with a paired bootstrap 95% CI over problems
(:mod:`bench.stats`); and the *held-out consensus share*: the share of ``--validation-problems``
problems the version generates itself (never trained on) on which it reaches consensus, an
unsupervised signal (the paper's early-stopping idea) that needs no benchmark.

**Yield**: selected examples per core-hour of the pool iterations (wall time x cores: the machine
is the experiment's), with the selection precision expected at the settings: measured by
``bench.consensus`` on the model's own pools (``--precision-from`` its ``--json``), else the
README's figure of that benchmark, quoted with its source.

**Resumable.** Iterations, the registry and adapters live in the stack's NATS store under the
cache; the runner's record of what each arm did is ``state.json`` (written after every step);
every HumanEval problem of every version and decoding is one JSON file. A rerun with the same
settings continues where the last one stopped and does no generation for what is done. Results:
``--json`` (``bench/results/efficacy.json`` by convention, committed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.stats import bootstrap_ci, paired_bootstrap_ci, pass_rates
from services.clusterer import core as clusterer_core
from services.clusterer.app import MODE_NAMES, to_scored
from services.clusterer.core import DEFAULT_MIN_CONFIDENCE
from services.orchestrator import core as orchestrator_core
from ucoder_cli.main import Client, CliError, watch_iteration
from ucoder_common import registry
from ucoder_common.bus import Bus
from ucoder_common.eval_run import EvalSettings, evaluate_model, select_problems
from ucoder_common.humaneval import load_problems
from ucoder_common.localstack import StackInfo, StackPaths, read_stack, start_stack, stop_stack
from ucoder_common.models import cache_dir
from ucoder_common.pb import (
    clusterer_pb2,
    common_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from ucoder_common.phases import TERMINAL_PHASES

CONSENSUS = "consensus"
RANDOM_SUCCESSFUL = "random-successful"
NONE = "none"
ARMS = (CONSENSUS, RANDOM_SUCCESSFUL, NONE)
TRAINED_ARMS = (CONSENSUS, RANDOM_SUCCESSFUL)

DEFAULT_CACHE = cache_dir() / "bench-efficacy"
PLAIN_PROGRESS_S = 30.0
"""Without a terminal, evaluation progress is printed at most this often."""
ITERATION_TIMEOUT_S = 6 * 3600.0
TRAIN_TIMEOUT_S = 3 * 3600.0

# bench.consensus on the default model's own pools (36 problems, 32 samples, its own tests,
# paper-output with near_constant + trivial_body): precision and picks per min_confidence, as the
# README's "Consensus benchmark" table states it. Used when no --precision-from file is given.
QUOTED_PRECISION_SOURCE = (
    "README 'Consensus benchmark' (bench.consensus, default model, 36 problems x 32 samples, "
    "model / model tests, paper-output, nc+trivial)"
)
QUOTED_PRECISION: dict[float, tuple[float, int]] = {
    0.0: (0.14, 29),
    0.5: (0.14, 21),
    0.8: (0.23, 13),
    0.9: (0.50, 6),
    0.95: (1.00, 3),
}


class EfficacyError(RuntimeError):
    """The experiment cannot go on; the message says why."""


# ---------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Budget:
    """What every arm gets per iteration (the pool's size and how it is drawn and trained)."""

    problems: int = 24
    tests: int = 16
    samples: int = 32
    temperature: float = 0.8
    max_tokens: int = 256
    min_confidence: float | None = None
    """None = the clusterer's default."""
    epochs: int = 1
    iterations: int = 1
    seed: int = 0
    """Seeds the random-successful arm's draw."""

    def validate(self) -> None:
        for name in ("problems", "tests", "samples", "epochs", "iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.temperature <= 2.0:
            raise ValueError(f"temperature: must be in (0, 2], got {self.temperature}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence: must be in [0, 1], got {self.min_confidence}")

    def spec(self, num_problems: int | None = None) -> orchestrator_pb2.IterationSpec:
        """The pool iteration: generate, execute and select only (each arm trains itself)."""
        spec = orchestrator_pb2.IterationSpec(
            num_problems=num_problems or self.problems,
            tests_per_problem=self.tests,
            samples_per_problem=self.samples,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            skip_evaluation=True,
            skip_training=True,
        )
        if self.min_confidence is not None:
            spec.min_confidence = self.min_confidence
        return spec


@dataclass(frozen=True)
class Measure:
    """How each version is measured."""

    problems: int = 0
    """HumanEval problems, evenly spaced; 0 = all 164."""
    samples: int = 10
    temperature: float = 0.8
    max_tokens: int = 384
    greedy: bool = True
    validation_problems: int = 8
    """Held-out generated problems per version for the consensus share; 0 = not measured."""
    resamples: int = 10_000

    def decodings(self) -> dict[str, EvalSettings]:
        out = {
            "sampled": EvalSettings(
                samples=self.samples, temperature=self.temperature, max_tokens=self.max_tokens
            )
        }
        if self.greedy:
            out["greedy"] = EvalSettings(samples=1, temperature=0.0, max_tokens=self.max_tokens)
        for settings in out.values():
            settings.validate()
        return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def experiment_dir(cache: Path, budget: Budget, model: str) -> Path:
    """One directory per (budget, model): another budget is another experiment, not a resume."""
    return cache / f"run-{_digest({'budget': asdict(budget), 'model': model})}"


# ---------------------------------------------------------------------------------------------
# The record of what was done (state.json)


@dataclass
class IterationRecord:
    arm: str
    index: int
    """1-based iteration of the arm."""
    version_in: int
    pool_iteration_id: str = ""
    """The iteration whose candidates the arm selected from (shared by both arms at index 1)."""
    pool_done: bool = False
    problems: int = 0
    """Problems kept by the pool iteration (those with tests, candidates and a selection try)."""
    successful_problems: int = 0
    """Problems with at least one successful candidate (what random-successful can draw from)."""
    consensus_selected: int = 0
    """Problems on which the service's selection picked a solution."""
    examples: int = 0
    """Examples the arm trained on."""
    example_problems: list[str] = field(default_factory=list)
    pool_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage of the pool iteration, first start to last finish (stages overlap)."""
    tests_kept: int = 0
    tests_rejected: dict[str, int] = field(default_factory=dict)
    tests_repaired: dict[str, int] = field(default_factory=dict)
    """Of tests_kept, the lines only a repair made valid, by repair (Iteration.tests_repaired)."""
    candidates: int = 0
    version_out: int | None = None
    """The trained version; version_in when there was nothing to train on."""
    train_loss: float = 0.0
    train_seconds: float = 0.0


@dataclass
class State:
    iterations: list[IterationRecord] = field(default_factory=list)
    validation: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Version (as text) -> the held-out iteration's id, problems and selections."""
    work: dict[str, int] = field(default_factory=dict)
    """What this invocation did (not saved): iterations started, trainings, problems evaluated."""

    def record(self, arm: str, index: int) -> IterationRecord | None:
        return next((r for r in self.iterations if r.arm == arm and r.index == index), None)

    def count(self, what: str, amount: int = 1) -> None:
        self.work[what] = self.work.get(what, 0) + amount


def load_state(path: Path) -> State:
    if not path.exists():
        return State()
    raw = json.loads(path.read_text())
    return State(
        iterations=[IterationRecord(**r) for r in raw.get("iterations", [])],
        validation=dict(raw.get("validation", {})),
    )


def save_state(path: Path, state: State) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"iterations": [asdict(r) for r in state.iterations], "validation": state.validation}, indent=2
        )
    )
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Pure parts: which examples each arm trains on


def successful_picks(
    problems: Sequence[orchestrator_pb2.ProblemState], rho: float, mode: int
) -> dict[str, common_pb2.TrainExample]:
    """Per problem with a successful candidate, one drawn at random among them (the clusterer's
    ``random`` rule, seeded by the problem id), as a training example."""
    mode_name = MODE_NAMES[mode]
    picks: dict[str, common_pb2.TrainExample] = {}
    for ps in problems:
        if ps.error or not ps.candidates:
            continue
        scored = to_scored(clusterer_pb2.ClusterRequest(candidates=ps.candidates, results=ps.results))
        result = clusterer_core.select(
            scored,
            rho=rho,
            mode=mode_name,
            rule=clusterer_core.SelectionRule.RANDOM,
            min_confidence=0.0,
            near_constant=0.0,
            reject_trivial=False,
            problem_id=ps.problem.problem_id,
        )
        if not result.selected or not result.code.startswith(ps.problem.prompt):
            continue
        completion = result.code[len(ps.problem.prompt) :]
        if completion.strip():
            picks[ps.problem.problem_id] = common_pb2.TrainExample(
                problem_id=ps.problem.problem_id, prompt=ps.problem.prompt, completion=completion
            )
    return picks


def draw_examples(
    picks: Mapping[str, common_pb2.TrainExample], count: int, seed: int, salt: str
) -> list[common_pb2.TrainExample]:
    """``count`` of the per-problem picks (all when fewer), problems drawn without replacement."""
    problems = sorted(picks)
    chosen = random.Random(f"{seed}:{salt}").sample(problems, min(count, len(problems)))
    return [picks[p] for p in sorted(chosen)]


def expected_precision(
    min_confidence: float, signature_mode: str, precision_file: Path | None
) -> dict[str, Any]:
    """Selection precision bench.consensus measured on the model's own pools at this threshold."""
    if precision_file is not None:
        tables = json.loads(precision_file.read_text())["tables"]
        rule = f"paper-{signature_mode}"
        for row in tables["abstention"]:
            if (
                row["pool"] == "model / model tests"
                and row["rule"] == rule
                and row["abstain"] == "nc+trivial"
                and abs(row["min_confidence"] - min_confidence) < 1e-9
            ):
                return {
                    "precision": row["precision"],
                    "selections": row["selected"],
                    "source": f"{precision_file} (model / model tests, {rule}, nc+trivial)",
                }
        return {
            "precision": None,
            "selections": 0,
            "source": f"{precision_file}: no row for {min_confidence:g}",
        }
    quoted = QUOTED_PRECISION.get(round(min_confidence, 4))
    if quoted is None or signature_mode != "output":
        return {"precision": None, "selections": 0, "source": "not measured at these settings"}
    return {"precision": quoted[0], "selections": quoted[1], "source": QUOTED_PRECISION_SOURCE}


# ---------------------------------------------------------------------------------------------
# The evaluation cache: one file per (version, decoding, problem)


def eval_dir(root: Path, version: int, settings: EvalSettings) -> Path:
    key = {
        "samples": settings.samples,
        "temperature": settings.temperature,
        "max_tokens": settings.max_tokens,
    }
    return (
        root
        / "eval"
        / f"v{version}"
        / f"{'greedy' if settings.temperature == 0 else 'sampled'}-{_digest(key)}"
    )


def _task_file(task_id: str) -> str:
    return task_id.replace("/", "_") + ".json"


def eval_seconds(directory: Path) -> float:
    """Wall time spent measuring into ``directory``, over every invocation."""
    path = directory / "seconds.json"
    return float(json.loads(path.read_text())["seconds"]) if path.exists() else 0.0


def add_eval_seconds(directory: Path, seconds: float) -> None:
    tmp = directory / "seconds.json.tmp"
    tmp.write_text(json.dumps({"seconds": eval_seconds(directory) + seconds}))
    os.replace(tmp, directory / "seconds.json")


def cached_verdicts(directory: Path, task_ids: Sequence[str]) -> dict[str, list[bool]]:
    out = {}
    for task in task_ids:
        path = directory / _task_file(task)
        if path.exists():
            out[task] = json.loads(path.read_text())["verdicts"]
    return out


# ---------------------------------------------------------------------------------------------
# The experiment against the running stack


class Experiment:
    def __init__(
        self,
        root: Path,
        info: StackInfo | None,
        budget: Budget,
        measure: Measure,
        arms: Sequence[str],
        console: Console,
        precision_file: Path | None = None,
        on_results: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> None:
        """``info`` is the running stack (None: only :meth:`from_cache` can be used); ``on_results`` is
        given the results so far after each measurement (a stopped run keeps what it measured)."""
        self.precision_file = precision_file
        self.on_results = on_results
        self.root = root
        self.info = info
        self.budget = budget
        self.measure = measure
        self.arms = list(arms)
        self.console = console
        self.state_path = root / "state.json"
        self.state = load_state(self.state_path)
        self.bus: Bus | None = None
        if info is not None:
            self.channel = info.channel("orchestrator")
            self.orchestrator = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)
            self.trainer_channel = info.channel("trainer")
            self.trainer = trainer_pb2_grpc.TrainerServiceStub(self.trainer_channel)

    def save(self) -> None:
        save_state(self.state_path, self.state)

    # --- pools ---------------------------------------------------------------------------------

    async def run_pool(
        self,
        version: int,
        spec: orchestrator_pb2.IterationSpec,
        iteration_id: str,
        on_started: Callable[[str], None],
    ) -> orchestrator_pb2.Iteration:
        """The completed iteration ``iteration_id`` (watched to its end when still running), or a
        new one sampled from ``version`` when it is empty, failed or cancelled; ``on_started``
        records a new one's id before it is watched, so that a rerun resumes it."""
        assert self.bus is not None
        if iteration_id:
            it = await asyncio.to_thread(self._get, iteration_id, False)
            if it is not None and it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED:
                return it
            if it is not None and it.phase not in TERMINAL_PHASES:
                return await asyncio.to_thread(self._watch, iteration_id)
            self.console.print(f"iteration {iteration_id} did not complete; starting another")
        await registry.set_current(self.bus, version)
        started = await asyncio.to_thread(
            self.orchestrator.StartIteration, orchestrator_pb2.StartIterationRequest(spec=spec), timeout=60
        )
        self.state.count("iterations_started")
        on_started(started.iteration_id)
        return await asyncio.to_thread(self._watch, started.iteration_id)

    def _get(self, iteration_id: str, include_problems: bool) -> orchestrator_pb2.Iteration | None:
        try:
            return self.orchestrator.GetIteration(
                orchestrator_pb2.GetIterationRequest(
                    iteration_id=iteration_id, include_problems=include_problems
                ),
                timeout=120,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def _watch(self, iteration_id: str) -> orchestrator_pb2.Iteration:
        assert self.info is not None
        with Client(self.info.orchestrator_address, self.info.channel("orchestrator")) as client:
            watch_iteration(client, iteration_id, self.console)
        it = self._get(iteration_id, False)
        assert it is not None
        if it.phase != orchestrator_pb2.ITERATION_PHASE_COMPLETED:
            raise EfficacyError(
                f"iteration {iteration_id} ended {orchestrator_core.phase_name(it.phase)}: {it.error}"
            )
        return it

    # --- training ------------------------------------------------------------------------------

    async def train(self, record: IterationRecord, examples: Sequence[common_pb2.TrainExample]) -> None:
        """Train the arm's examples into a new version (or find the one an interrupted run trained)."""
        assert self.bus is not None
        record.examples = len(examples)
        record.example_problems = [e.problem_id for e in examples]
        if not examples:
            record.version_out = record.version_in
            return
        train_id = f"{record.pool_iteration_id}-{record.arm}"  # an id: ASCII letters, digits, - and _
        found = await self._version_trained_by(train_id)
        if found is None:
            started = time.monotonic()
            response = await asyncio.to_thread(
                self.trainer.Train,
                trainer_pb2.TrainRequest(
                    iteration_id=train_id,
                    examples=list(examples),
                    base_version=record.version_in,
                    epochs=self.budget.epochs,
                ),
                timeout=TRAIN_TIMEOUT_S,
            )
            self.state.count("trainings")
            found = response.model_version
            record.train_seconds = time.monotonic() - started
        record.version_out = found.version
        record.train_loss = found.train_loss

    async def _version_trained_by(self, train_id: str) -> common_pb2.ModelVersion | None:
        assert self.bus is not None
        for version in range(1, await registry.latest_version_number(self.bus) + 1):
            entry = await registry.get_version(self.bus, version)
            if entry is not None and entry.iteration_id == train_id:
                return entry
        return None

    # --- the arms ------------------------------------------------------------------------------

    async def run_arm(self, arm: str) -> None:
        version = 0
        for index in range(1, self.budget.iterations + 1):
            record = self.state.record(arm, index)
            if record is None:
                record = IterationRecord(arm=arm, index=index, version_in=version)
                self.state.iterations.append(record)
            if record.version_out is not None:
                version = record.version_out
                continue
            shared = self.state.record(CONSENSUS, 1) if arm == RANDOM_SUCCESSFUL and index == 1 else None
            if shared is not None and shared.pool_done:
                record.pool_iteration_id = shared.pool_iteration_id
            self.console.rule(f"{arm}: iteration {index}/{self.budget.iterations} from v{version}")

            def remember(iteration_id: str, record: IterationRecord = record) -> None:
                record.pool_iteration_id = iteration_id
                self.save()

            pool = await self.run_pool(version, self.budget.spec(), record.pool_iteration_id, remember)
            record.pool_iteration_id = pool.iteration_id
            record.pool_done = True
            record.pool_seconds = (pool.finished_unix_ms - pool.created_unix_ms) / 1000
            record.stage_seconds = {
                orchestrator_core.stage_name(stage): seconds
                for stage in orchestrator_core.STAGES
                if (seconds := orchestrator_core.stage_seconds(pool, stage)) is not None
            }
            record.tests_kept = pool.tests_kept
            record.tests_rejected = dict(pool.tests_rejected)
            record.tests_repaired = dict(pool.tests_repaired)
            record.candidates = pool.candidates
            full = await asyncio.to_thread(self._get, pool.iteration_id, True)
            assert full is not None
            problems = list(full.problems)
            picks = successful_picks(problems, full.spec.rho, full.spec.signature_mode)
            consensus = orchestrator_core.training_examples(problems)
            record.problems = len(problems)
            record.successful_problems = len(picks)
            record.consensus_selected = len(consensus)
            if arm == CONSENSUS:
                examples = consensus
            else:
                matched = self.state.record(CONSENSUS, index)
                if matched is None or matched.version_out is None:
                    raise EfficacyError(
                        f"{arm} iteration {index} needs the consensus arm's count: run it first"
                    )
                examples = draw_examples(
                    picks, matched.examples, self.budget.seed, f"{pool.iteration_id}:{arm}"
                )
            self.save()
            await self.train(record, examples)
            self.save()
            self.console.print(
                f"{arm} iteration {index}: {record.consensus_selected} of {record.problems} problems "
                f"selected by consensus, {record.successful_problems} with a successful candidate; "
                f"trained on {record.examples} -> v{record.version_out}"
            )
            version = record.version_in if record.version_out is None else record.version_out

    def final_version(self, arm: str) -> int:
        if arm == NONE:
            return 0
        record = self.state.record(arm, self.budget.iterations)
        if record is None or record.version_out is None:
            raise EfficacyError(f"{arm} has not finished its iterations")
        return record.version_out

    def versions(self) -> list[int]:
        """Every version the arms reached, base first."""
        out = [0]
        for r in self.state.iterations:
            if r.arm in self.arms and r.version_out is not None and r.version_out not in out:
                out.append(r.version_out)
        return out

    # --- measurement ---------------------------------------------------------------------------

    async def validate(self, version: int) -> None:
        """The share of the version's own new problems (never trained on) it reaches consensus on."""
        if self.measure.validation_problems < 1:
            return
        key = str(version)
        entry = self.state.validation.get(key, {})
        if entry.get("done"):
            return
        self.console.rule(f"held-out consensus share of v{version}")

        def remember(iteration_id: str) -> None:
            self.state.validation[key] = {"iteration_id": iteration_id, "done": False}
            self.save()

        pool = await self.run_pool(
            version,
            self.budget.spec(self.measure.validation_problems),
            entry.get("iteration_id", ""),
            remember,
        )
        full = await asyncio.to_thread(self._get, pool.iteration_id, True)
        assert full is not None
        problems = len(full.problems)
        selected = len(orchestrator_core.training_examples(list(full.problems)))
        self.state.validation[key] = {
            "iteration_id": pool.iteration_id,
            "done": True,
            "problems": problems,
            "selected": selected,
            "share": selected / problems if problems else 0.0,
            "seconds": (pool.finished_unix_ms - pool.created_unix_ms) / 1000,
        }
        self.save()

    async def evaluate(
        self, version: int, name: str, settings: EvalSettings, task_ids: Sequence[str]
    ) -> dict[str, list[bool]]:
        """Per-problem verdicts of ``version`` on ``task_ids``, measuring only what is not cached."""
        assert self.bus is not None
        directory = eval_dir(self.root, version, settings)
        directory.mkdir(parents=True, exist_ok=True)
        have = cached_verdicts(directory, task_ids)
        missing = [t for t in task_ids if t not in have]
        if not missing:
            return have
        progress = Progress(
            TextColumn(f"HumanEval v{version} {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        started = time.monotonic()
        printed = 0.0

        async def store(task: str, completions: list[str], outcomes: list[str]) -> None:
            nonlocal printed
            record = {
                "verdicts": [o == "passed" for o in outcomes],
                "outcomes": outcomes,
                "completions": completions,
            }
            tmp = directory / (_task_file(task) + ".tmp")
            tmp.write_text(json.dumps(record))
            os.replace(tmp, directory / _task_file(task))
            have[task] = record["verdicts"]
            self.state.count("eval_problems_generated")
            progress.update(bar, completed=len(have))
            if not self.console.is_terminal and time.monotonic() - printed >= PLAIN_PROGRESS_S:
                printed = time.monotonic()
                self.console.print(f"HumanEval v{version} {name}: {len(have)}/{len(task_ids)}")

        with progress if self.console.is_terminal else contextlib.nullcontext():
            bar = progress.add_task("eval", total=len(task_ids), completed=len(have))
            # All missing problems in one call (16 in flight, each stored as it is checked), so
            # the engine never waits for the slowest of a chunk.
            await evaluate_model(self.bus.nc, version, settings, task_ids=missing, on_problem=store)
        add_eval_seconds(directory, time.monotonic() - started)
        return have

    def task_ids(self) -> list[str]:
        humaneval = {p.task_id: p for p in load_problems()}
        return [p.task_id for p in select_problems(humaneval, self.measure.problems)]

    def from_cache(self) -> dict[str, Any]:
        """The results of what is cached (nothing is run; what was not measured shows as such)."""
        unfinished = [
            arm
            for arm in TRAINED_ARMS
            if arm in self.arms
            and getattr(self.state.record(arm, self.budget.iterations), "version_out", None) is None
        ]
        if unfinished:
            raise EfficacyError(f"--from-cache: {', '.join(unfinished)} not finished in {self.root}")
        task_ids = self.task_ids()
        verdicts = {
            version: {
                name: cached_verdicts(eval_dir(self.root, version, settings), task_ids)
                for name, settings in self.measure.decodings().items()
            }
            for version in self.versions()
        }
        return self.results(verdicts, task_ids)

    async def run(self) -> dict[str, Any]:
        assert self.info is not None, "run() needs the stack"
        self.bus = await Bus.connect(self.info.nats_url, name="bench-efficacy")
        current = await registry.current_version(self.bus)
        try:
            for arm in (a for a in TRAINED_ARMS if a in self.arms):
                await self.run_arm(arm)
            task_ids = await asyncio.to_thread(self.task_ids)
            verdicts: dict[int, dict[str, dict[str, list[bool]]]] = {}
            for version in self.versions():
                for name, settings in self.measure.decodings().items():
                    verdicts.setdefault(version, {})[name] = await self.evaluate(
                        version, name, settings, task_ids
                    )
                    self.publish(verdicts, task_ids)
            # Last: the held-out share is the cheaper, secondary signal.
            for version in self.versions():
                await self.validate(version)
                self.publish(verdicts, task_ids)
            return self.results(verdicts, task_ids)
        finally:
            # Leave the registry as it was found: the experiment's arms are not anyone's current model.
            with contextlib.suppress(Exception):
                await registry.set_current(self.bus, current.version if current else 0)
            await self.bus.close()
            self.channel.close()
            self.trainer_channel.close()

    # --- results -------------------------------------------------------------------------------

    def publish(
        self, verdicts: Mapping[int, Mapping[str, Mapping[str, list[bool]]]], task_ids: Sequence[str]
    ) -> None:
        if self.on_results is not None:
            self.on_results(self.results(verdicts, task_ids))

    def results(
        self, verdicts: Mapping[int, Mapping[str, Mapping[str, list[bool]]]], task_ids: Sequence[str]
    ) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        rows = []
        for arm in self.arms:
            version = self.final_version(arm)
            records = [r for r in self.state.iterations if r.arm == arm]
            row: dict[str, Any] = {
                "arm": arm,
                "iterations": len(records) if arm != NONE else 0,
                "version": version,
                "examples_trained": sum(r.examples for r in records),
                "pool_iterations": [asdict(r) for r in records],
                # The cost of the arm alone: its pools (the first shared with consensus), its
                # training and the measurement of its version, in core-hours (wall x cores).
                "core_hours": {
                    "pools": sum(r.pool_seconds for r in records) * cores / 3600,
                    "training": sum(r.train_seconds for r in records) * cores / 3600,
                    "evaluation": sum(
                        eval_seconds(eval_dir(self.root, version, settings))
                        for settings in self.measure.decodings().values()
                    )
                    * cores
                    / 3600,
                },
            }
            for name in self.measure.decodings():
                # None until the version (and the base) are measured on every problem.
                mine = verdicts.get(version, {}).get(name, {})
                base_verdicts = verdicts.get(0, {}).get(name, {})
                row.setdefault("problems_measured", {})[name] = len(mine)
                if len(mine) < len(task_ids) or len(base_verdicts) < len(task_ids):
                    row[name] = None
                    continue
                rates = pass_rates(mine)
                base = pass_rates(base_verdicts)
                row[name] = {
                    "pass_at_1": bootstrap_ci(list(rates.values()), self.measure.resamples).to_json(),
                    "delta_vs_base": paired_bootstrap_ci(rates, base, self.measure.resamples).to_json(),
                }
            row["held_out_consensus_share"] = self.state.validation.get(str(version))
            rows.append(row)
        consensus_records = [r for r in self.state.iterations if r.arm == CONSENSUS]
        pool_hours = sum(r.pool_seconds for r in consensus_records) * cores / 3600
        selected = sum(r.consensus_selected for r in consensus_records)
        min_conf = self.budget.min_confidence
        threshold = DEFAULT_MIN_CONFIDENCE if min_conf is None else min_conf
        return {
            "schema": 1,
            "complete": all(row[name] is not None for row in rows for name in self.measure.decodings()),
            "budget": asdict(self.budget),
            "measure": asdict(self.measure),
            "humaneval_problems": len(task_ids),
            "cores": cores,
            "arms": rows,
            # Per version and decoding, per problem: [passed, completions]; every interval above can
            # be recomputed from these (bench.stats).
            "per_problem": {
                str(version): {
                    name: {task: [sum(v), len(v)] for task, v in by_task.items()}
                    for name, by_task in decodings.items()
                }
                for version, decodings in sorted(verdicts.items())
            },
            "yield": {
                "pool_iterations": len(consensus_records),
                "problems": sum(r.problems for r in consensus_records),
                "selected": selected,
                "pool_core_hours": pool_hours,
                "selected_per_core_hour": selected / pool_hours if pool_hours else 0.0,
                "min_confidence": min_conf,
            },
            "expected_precision": expected_precision(threshold, "output", self.precision_file),
            "work_this_run": dict(self.state.work),
        }


# ---------------------------------------------------------------------------------------------
# Output


def _pct(interval: Mapping[str, float] | None) -> str:
    if interval is None:
        return "not measured"
    return f"{100 * interval['estimate']:.1f}% [{100 * interval['low']:.1f}, {100 * interval['high']:.1f}]"


def _delta(interval: Mapping[str, float] | None) -> str:
    if interval is None:
        return "-"
    return f"{100 * interval['estimate']:+.1f} [{100 * interval['low']:+.1f}, {100 * interval['high']:+.1f}]"


def _cells(row: Mapping[str, Any], name: str, total: int) -> list[str]:
    measured = row[name]
    if measured is None:
        return [f"{row['problems_measured'][name]}/{total} measured", "-"]
    return [_pct(measured["pass_at_1"]), _delta(measured["delta_vs_base"])]


def render(results: Mapping[str, Any], console: Console) -> None:
    measure = results["measure"]
    table = Table(
        title=f"efficacy: HumanEval pass@1 on {results['humaneval_problems']} problems "
        "(95% bootstrap CIs; deltas in points)"
    )
    for column in (
        "arm",
        "iters",
        "examples",
        "expected precision",
        f"pass@1 T={measure['temperature']:g} n={measure['samples']}",
        "delta vs base",
    ):
        table.add_column(column, justify="right" if column not in ("arm",) else "left")
    if measure["greedy"]:
        table.add_column("greedy pass@1", justify="right")
        table.add_column("greedy delta", justify="right")
    table.add_column("held-out consensus", justify="right")
    precision = results["expected_precision"]
    for row in results["arms"]:
        expected = "-"
        if row["arm"] == CONSENSUS and precision["precision"] is not None:
            expected = f"{precision['precision']:.0%} ({precision['selections']} picks)"
        elif row["arm"] == RANDOM_SUCCESSFUL:
            expected = "random"
        held = row["held_out_consensus_share"]
        cells = [
            row["arm"],
            str(row["iterations"]),
            str(row["examples_trained"]),
            expected,
            *_cells(row, "sampled", results["humaneval_problems"]),
        ]
        if measure["greedy"]:
            cells += _cells(row, "greedy", results["humaneval_problems"])
        cells.append(f"{held['selected']}/{held['problems']}" if held and held.get("done") else "-")
        table.add_row(*cells)
    console.print(table)
    y = results["yield"]
    expected = "-" if precision["precision"] is None else f"{precision['precision']:.0%}"
    console.print(
        f"yield: {y['selected']} selected of {y['problems']} problems in {y['pool_core_hours']:.2f} "
        f"core-hours = {y['selected_per_core_hour']:.1f} per core-hour at expected precision {expected} "
        f"({precision['source']})"
    )


# ---------------------------------------------------------------------------------------------
# CLI


@contextlib.contextmanager
def running_stack(home: Path, model: str, console: Console) -> Iterator[StackInfo]:
    """The stack of ``home``: the one running there, else one started now (and stopped after)."""
    paths = StackPaths(home)
    existing = read_stack(paths)
    if existing is not None and existing.any_alive():
        yield existing
        return
    console.print(f"starting the local stack in {home} (logs in {paths.logs})")
    info = start_stack(paths, model=model, timeout_s=1800)
    try:
        yield info
    finally:
        stop_stack(paths)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.efficacy", description=__doc__.split("\n\n")[0])
    b, m = Budget(), Measure()
    parser.add_argument("--problems", type=int, default=b.problems, help="problems per pool iteration")
    parser.add_argument("--tests", type=int, default=b.tests, help="test inputs per problem")
    parser.add_argument("--samples", type=int, default=b.samples, help="candidate budget per problem")
    parser.add_argument(
        "--temperature", type=float, default=b.temperature, help="candidate sampling temperature"
    )
    parser.add_argument("--max-tokens", type=int, default=b.max_tokens, help="token budget of a candidate")
    parser.add_argument(
        "--min-confidence", type=float, default=None, help="abstention threshold (default: the clusterer's)"
    )
    parser.add_argument("--epochs", type=int, default=b.epochs, help="training epochs per iteration")
    parser.add_argument("--iterations", type=int, default=b.iterations, help="iterations per trained arm")
    parser.add_argument("--seed", type=int, default=b.seed, help="seed of the random-successful draw")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument(
        "--eval-problems", type=int, default=m.problems, help="HumanEval problems (0 = all 164)"
    )
    parser.add_argument(
        "--eval-samples", type=int, default=m.samples, help="completions per problem for pass@1"
    )
    parser.add_argument("--eval-temperature", type=float, default=m.temperature, help="their temperature")
    parser.add_argument(
        "--eval-max-tokens", type=int, default=m.max_tokens, help="token budget of a completion"
    )
    parser.add_argument("--no-greedy", action="store_true", help="skip the greedy measurement")
    parser.add_argument(
        "--validation-problems",
        type=int,
        default=m.validation_problems,
        help="held-out problems per version (0 = none)",
    )
    parser.add_argument("--resamples", type=int, default=m.resamples, help="bootstrap resamples")
    parser.add_argument(
        "--precision-from", metavar="JSON", help="bench.consensus --json output for the expected precision"
    )
    parser.add_argument("--model", default="", help="model directory (default: the default model)")
    parser.add_argument(
        "--cache", default=str(DEFAULT_CACHE), help="cache directory (one experiment per budget)"
    )
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="the stack's UCODER_HOME: its running stack is used, else one is started there "
        "(default: the experiment's own, under the cache)",
    )
    parser.add_argument(
        "--from-cache",
        action="store_true",
        help="print and write the results of what is cached; run nothing (no stack needed)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the results as JSON (e.g. bench/results/efficacy.json)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=max(Console().width, 160))
    try:
        arms = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = [a for a in arms if a not in ARMS]
        if unknown or not arms:
            raise ValueError(
                f"--arms: must be a comma-separated list of {', '.join(ARMS)}, got {args.arms!r}"
            )
        if RANDOM_SUCCESSFUL in arms and CONSENSUS not in arms:
            raise ValueError(
                "--arms: random-successful draws as many examples as consensus: include consensus"
            )
        if NONE not in arms:
            arms.append(NONE)  # the base is what every delta is against
        budget = Budget(
            problems=args.problems,
            tests=args.tests,
            samples=args.samples,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            min_confidence=args.min_confidence,
            epochs=args.epochs,
            iterations=args.iterations,
            seed=args.seed,
        )
        budget.validate()
        measure = Measure(
            problems=args.eval_problems,
            samples=args.eval_samples,
            temperature=args.eval_temperature,
            max_tokens=args.eval_max_tokens,
            greedy=not args.no_greedy,
            validation_problems=args.validation_problems,
            resamples=args.resamples,
        )
        measure.decodings()
        if args.validation_problems < 0:
            raise ValueError(f"--validation-problems: must be >= 0, got {args.validation_problems}")
        precision_file = Path(args.precision_from) if args.precision_from else None
        if precision_file is not None and not precision_file.is_file():
            raise ValueError(f"--precision-from: no file {precision_file}")
    except ValueError as exc:
        print(f"bench.efficacy: {exc}", file=sys.stderr)
        return 2

    def write_results(results: Mapping[str, Any]) -> None:
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=2) + "\n")
            os.replace(tmp, out)

    root = experiment_dir(Path(args.cache).expanduser(), budget, args.model)
    if args.from_cache and not (root / "state.json").exists():
        print(f"bench.efficacy: --from-cache: no experiment with these settings in {root}", file=sys.stderr)
        return 2
    root.mkdir(parents=True, exist_ok=True)
    console.print(f"experiment cache: {root}")
    started = time.monotonic()
    try:
        if args.from_cache:
            results = Experiment(root, None, budget, measure, arms, console, precision_file).from_cache()
        else:
            home = Path(args.home).expanduser() if args.home else root / "home"
            with running_stack(home, args.model, console) as info:
                experiment = Experiment(
                    root, info, budget, measure, arms, console, precision_file, write_results
                )
                results = asyncio.run(experiment.run())
    except (EfficacyError, CliError, grpc.RpcError) as exc:
        print(f"bench.efficacy: {exc}", file=sys.stderr)
        return 1
    results["wall_seconds_this_run"] = time.monotonic() - started
    render(results, console)
    write_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
