"""Orchestrator service: the iteration state machine, persisted in the JetStream KV bucket.

An iteration moves through the stages by jobs on the work streams; every answer comes
back on `ucoder.results.<stage>`, handled here one at a time: the state is updated and
saved to KV, the next job of that problem is published (with a Nats-Msg-Id derived from
iteration, stage and problem, so a job published twice is done once), and a progress
event is published. Handling an answer again (after a crash before its ack) only
re-publishes jobs, which the stream deduplicates; on start-up every running iteration
is re-dispatched from its saved state the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import ObjectNotFoundError
from prometheus_client import Counter, Gauge, Histogram

from services.orchestrator import core
from ucoder_common import diversity, eval_run, registry, report, subjects
from ucoder_common.bus import BACKLOG_POLL_S, Bus, JetStreamWorker, Reject, kv_get
from ucoder_common.config import ServiceConfig, setting
from ucoder_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable, rpc
from ucoder_common.executor_client import ExecutorUnavailable
from ucoder_common.pb import (
    clusterer_pb2,
    executor_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    problemgen_pb2,
    sampler_pb2,
    testsynth_pb2,
    trainer_pb2,
)
from ucoder_common.phases import TERMINAL_PHASES
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import check_id, id_problem, shown

log = logging.getLogger(__name__)

ITERATIONS = Counter("ucoder_orchestrator_iterations", "Iterations by final phase.", ["phase"])
RUNNING = Gauge("ucoder_orchestrator_running_iterations", "Iterations running now.")
PROBLEMS = Counter(
    "ucoder_orchestrator_problems", "Problems that finished all stages, by outcome.", ["outcome"]
)
TESTS = Counter("ucoder_orchestrator_tests", "Test inputs kept for problems.")
CANDIDATES = Counter("ucoder_orchestrator_candidates", "Candidates sampled for problems.")
EXECUTIONS = Counter("ucoder_orchestrator_executions", "Test executions (candidate x test) recorded.")
SELECTED = Counter("ucoder_orchestrator_selected", "Problems whose consensus solution was selected.")
EVAL_PASS_AT_1 = Gauge(
    "ucoder_eval_pass_at_1", "HumanEval pass@1 of a model version, as last measured.", ["model_version"]
)
EVALUATIONS = Counter(
    "ucoder_evaluations", "HumanEval evaluations of model versions, by outcome.", ["outcome"]
)
STAGE_SECONDS = Histogram(
    "ucoder_orchestrator_stage_duration_seconds",
    "Wall time of a stage of an iteration, from when its first problem reached it to when its last "
    "one left it (observed when the stage completes with some work done).",
    ["stage"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400),
)
# Per model version (bounded by the number of versions, like ucoder_eval_pass_at_1): the version an
# iteration sampled from identifies the iteration within a run, and no series exists before a value.
CONSENSUS = Gauge(
    "ucoder_orchestrator_consensus_ratio",
    "Share of the problems of the latest iteration sampling from a model version whose consensus "
    "solution was selected (0..1); set when the iteration's clustering stage completes.",
    ["model_version"],
)
PROBLEM_ENTROPY = Gauge(
    "ucoder_orchestrator_problem_lexical_entropy",
    "Mean lexical entropy (Shannon entropy of the word tokens, in bits) of the problem descriptions of "
    "the latest iteration sampling from a model version; set when its problems stage completes.",
    ["model_version"],
)
BACKLOG = Gauge(
    "ucoder_orchestrator_backlog_messages",
    "Jobs of a stage's work queue not done yet: waiting plus delivered and unacknowledged (all replicas).",
    ["stage"],
)
REPORT_WARNINGS = Counter(
    "ucoder_orchestrator_report_warnings",
    "Failure signatures the iteration reports raised, by code (counted once, in the report of the "
    "iteration they were seen in).",
    ["code"],
)
REPORTS = Counter(
    "ucoder_orchestrator_reports",
    "Iteration reports built when an iteration ended, by outcome (stored, failed).",
    ["outcome"],
)
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _outcome in ("selected", "no_consensus", "failed"):
    PROBLEMS.labels(outcome=_outcome)
for _code in report.WARNING_CODES:
    REPORT_WARNINGS.labels(code=_code)
for _outcome in ("stored", "failed"):
    REPORTS.labels(outcome=_outcome)
for _stage in core.STAGES:
    STAGE_SECONDS.labels(stage=core.stage_name(_stage))

EVAL_RETRY_S = 10.0  # between tries of an evaluation whose services are unavailable
REPORT_STORE_TIMEOUT_S = 10.0  # per Object Store call of an iteration report
REPORT_FORMATS = ("json", "md", "html")

RESULT_TYPES: dict[str, type[Message]] = {
    "problemgen": problemgen_pb2.GenerateProblemsResponse,
    "testsynth": testsynth_pb2.SynthesizeTestsResponse,
    "sampler": sampler_pb2.SampleCandidatesResponse,
    "executor": executor_pb2.ExecuteResponse,
    "clusterer": clusterer_pb2.ClusterResponse,
    "trainer": trainer_pb2.TrainResponse,
}
STAGE_OF_SERVICE = {
    "testsynth": orchestrator_pb2.STAGE_TESTS,
    "sampler": orchestrator_pb2.STAGE_SAMPLING,
    "executor": orchestrator_pb2.STAGE_EXECUTION,
    "clusterer": orchestrator_pb2.STAGE_CLUSTERING,
}
SERVICE_OF_STAGE = {stage: service for service, stage in STAGE_OF_SERVICE.items()}


@dataclass
class OrchestratorConfig(ServiceConfig):
    """Runs UCoder iterations: fans work out per problem and collects the results."""

    model: str = setting("", "The base model directory the sampler serves (empty = the default model).")
    timeout_per_test_s: float = setting(2.0, "Wall-clock limit per test execution.")
    memory_limit_mb: int = setting(512, "Memory limit per candidate process.")
    eval_concurrency: int = setting(16, "HumanEval problems generated and checked at once in an evaluation.")
    eval_generate_timeout_s: float = setting(900.0, "Longest wait for one HumanEval generation.")


# Testing only: the orchestrator SIGKILLs itself after this many answers' problem writes, between
# a problem's KV write and its iteration's (0 or unset = never). Not a setting: no deployment wants it.
FAULT_KILL_ENV = "UCODER_FAULT_KILL_AFTER_PROBLEM_WRITES"


def problem_key(iteration_id: str, problem_id: str) -> str:
    return f"pr.{iteration_id}.{problem_id}"


def report_object(iteration_id: str, fmt: str) -> str:
    """Object Store name of an iteration's report in one format (json, md, html)."""
    return f"reports/{iteration_id}.{fmt}"


def report_message(
    built: dict[str, Any], markdown: str, page: str, objects: list[str], stored: bool
) -> orchestrator_pb2.IterationReport:
    return orchestrator_pb2.IterationReport(
        iteration_id=str(built["iteration_id"]),
        json=json.dumps(built, indent=2),
        markdown=markdown,
        html=page,
        objects=objects,
        stored=stored,
        warnings=[
            orchestrator_pb2.ReportWarning(
                code=w["code"],
                iteration_id=w["iteration_id"],
                iteration_ids=w["iteration_ids"],
                message=w["message"],
                value=w["value"],
                threshold=w["threshold"],
            )
            for w in built["warnings"]
        ],
    )


class Orchestrator:
    def __init__(self, cfg: OrchestratorConfig, bus: Bus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.kv = bus.kv(subjects.ITERATIONS_BUCKET)
        self.lock = asyncio.Lock()  # state changes happen one at a time
        self._evaluations: dict[str, asyncio.Task[None]] = {}  # iteration id -> its evaluation stage
        # Running iteration id -> its stages already measured (stage metrics are recorded once).
        self._measured: dict[str, set[int]] = {}
        # A fault point for the fault tests (tests/integration/test_orchestrator_faults.py).
        self._kill_after_problem_writes = int(os.environ.get(FAULT_KILL_ENV, "0") or 0)
        self._problem_writes = 0

    def _after_problem_write(self) -> None:
        """SIGKILL this process after the Nth answer's problem write, before the iteration's
        (when FAULT_KILL_ENV says so): the moment at which two KV writes are half done."""
        self._problem_writes += 1
        if self._problem_writes == self._kill_after_problem_writes:
            os.kill(os.getpid(), signal.SIGKILL)

    # --- persistence -------------------------------------------------------------------------

    async def load(self, iteration_id: str) -> orchestrator_pb2.Iteration | None:
        raw = await kv_get(self.kv, subjects.iteration_key(iteration_id))
        return None if raw is None else orchestrator_pb2.Iteration.FromString(raw)

    async def save(self, it: orchestrator_pb2.Iteration) -> None:
        it.stage = (
            core.current_stage(it) if it.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING else it.stage
        )
        await self.kv.put(subjects.iteration_key(it.iteration_id), it.SerializeToString())
        self.record_stage_metrics(it)

    def record_stage_metrics(self, it: orchestrator_pb2.Iteration) -> None:
        """Stage latency and consensus rate, once per stage of an iteration as the saved state shows it
        finished."""
        measured = self._measured.setdefault(it.iteration_id, set())
        for stage in core.finished_stages(it):
            if stage in measured:
                continue
            measured.add(stage)
            seconds = core.stage_seconds(it, stage)
            if seconds is not None:
                STAGE_SECONDS.labels(stage=core.stage_name(stage)).observe(seconds)
            if stage == orchestrator_pb2.STAGE_CLUSTERING:
                CONSENSUS.labels(model_version=str(it.model_version_in)).set(core.consensus_rate(it))
        if it.phase in TERMINAL_PHASES:
            del self._measured[it.iteration_id]

    async def load_problem(self, iteration_id: str, problem_id: str) -> orchestrator_pb2.ProblemState | None:
        raw = await kv_get(self.kv, problem_key(iteration_id, problem_id))
        return None if raw is None else orchestrator_pb2.ProblemState.FromString(raw)

    async def save_problem(self, iteration_id: str, ps: orchestrator_pb2.ProblemState) -> None:
        await self.kv.put(problem_key(iteration_id, ps.problem.problem_id), ps.SerializeToString())

    async def problems(self, it: orchestrator_pb2.Iteration) -> list[orchestrator_pb2.ProblemState]:
        out = []
        for problem_id in sorted(it.problem_ids):
            ps = await self.load_problem(it.iteration_id, problem_id)
            if ps is not None:
                out.append(ps)
        return out

    async def list_iterations(self) -> list[orchestrator_pb2.Iteration]:
        out = []
        for key in await self.bus.kv_keys(subjects.ITERATIONS_BUCKET, "it."):
            raw = await kv_get(self.kv, key)
            if raw is not None:
                out.append(orchestrator_pb2.Iteration.FromString(raw))
        return out

    async def emit(self, it: orchestrator_pb2.Iteration, stage: int, message: str = "") -> None:
        await self.bus.js.publish(
            subjects.event_subject(it.iteration_id), core.event(it, stage, message).SerializeToString()
        )

    # --- jobs --------------------------------------------------------------------------------

    async def _job(self, service: str, it: orchestrator_pb2.Iteration, key: str, request: Message) -> None:
        await self.bus.publish(
            subjects.work_subject(service), request, msg_id=f"{it.iteration_id}:{service}:{key}"
        )

    async def dispatch_problem(
        self, it: orchestrator_pb2.Iteration, ps: orchestrator_pb2.ProblemState
    ) -> None:
        """Publish the job of the stage this problem needs next (deduplicated)."""
        if ps.error:
            return
        stage = core.next_problem_stage(ps.stage_done)
        if stage is None:
            return
        spec, pid = it.spec, ps.problem.problem_id
        key = core.job_key(ps)
        request: Message
        if stage == orchestrator_pb2.STAGE_TESTS:
            request = testsynth_pb2.SynthesizeTestsRequest(
                iteration_id=it.iteration_id,
                problem=ps.problem,
                count=spec.tests_per_problem,
                model_version=it.model_version_in,
            )
        elif stage == orchestrator_pb2.STAGE_SAMPLING:
            request = sampler_pb2.SampleCandidatesRequest(
                iteration_id=it.iteration_id,
                problem=ps.problem,
                n=core.sampling_round_size(spec, ps),
                first_index=len(ps.candidates),
                temperature=spec.temperature,
                max_tokens=spec.max_tokens,
                model_version=it.model_version_in,
            )
        elif stage == orchestrator_pb2.STAGE_EXECUTION:
            request = executor_pb2.ExecuteRequest(
                iteration_id=it.iteration_id,
                problem_id=pid,
                entry_point=ps.problem.entry_point,
                candidates=core.unexecuted(ps),
                tests=ps.tests,
                timeout_per_test_s=self.cfg.timeout_per_test_s,
                memory_limit_mb=self.cfg.memory_limit_mb,
            )
        else:
            request = clusterer_pb2.ClusterRequest(
                iteration_id=it.iteration_id,
                problem_id=pid,
                candidates=ps.candidates,
                results=ps.results,
                rho=spec.rho,
                tau=spec.tau,
                signature_mode=spec.signature_mode,
                selection_rule=spec.selection_rule,
                min_confidence=spec.min_confidence if spec.HasField("min_confidence") else None,
                sampling=spec.sampling,
                budget=spec.samples_per_problem,
                round=ps.rounds,
            )
        await self._job(SERVICE_OF_STAGE[stage], it, key, request)

    async def dispatch(self, it: orchestrator_pb2.Iteration) -> None:
        """Publish whatever jobs a running iteration needs, from its saved state (idempotent)."""
        if it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
            return
        if core.stats(it, orchestrator_pb2.STAGE_PROBLEMS).done == 0:
            await self._job(
                "problemgen",
                it,
                "all",
                problemgen_pb2.GenerateProblemsRequest(
                    iteration_id=it.iteration_id,
                    count=it.spec.num_problems,
                    model_version=it.model_version_in,
                ),
            )
            return
        if core.evaluation_pending(it):
            self._start_evaluation(it.iteration_id)
            return
        problems = await self.problems(it)
        for ps in problems:
            await self.dispatch_problem(it, ps)
        await self.maybe_train(it, problems)

    async def maybe_train(
        self, it: orchestrator_pb2.Iteration, problems: list[orchestrator_pb2.ProblemState]
    ) -> None:
        """After the last problem is clustered: train on the selections, or finish when there are none."""
        if it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING or not all(
            core.problem_finished(p) for p in problems
        ):
            return
        training = core.stats(it, orchestrator_pb2.STAGE_TRAINING)
        examples = core.training_examples(problems)
        if it.spec.skip_training:
            # The selections are the result (a dataset); whoever asked trains on them, or not.
            await self.after_training(it, f"{len(examples)} selected; training skipped (spec.skip_training)")
            return
        if not examples:
            # Nothing to train on is a result, not a failure: the training stage stays empty.
            await self.after_training(it, "no problem reached consensus: nothing to train on")
            return
        if training.total == 0:
            training.total = 1
            training.started_unix_ms = core.now_ms()
            await self.save(it)
            await self.emit(
                it, orchestrator_pb2.STAGE_TRAINING, f"training on {len(examples)} selected solutions"
            )
        await self._job("trainer", it, "all", core.train_request(it, examples))

    async def finish(self, it: orchestrator_pb2.Iteration, phase: int, message: str = "") -> None:
        it.phase = phase  # type: ignore[assignment]
        it.finished_unix_ms = core.now_ms()
        if phase != orchestrator_pb2.ITERATION_PHASE_COMPLETED:
            it.error = message
        await self.save(it)
        ITERATIONS.labels(phase=core.phase_name(phase)).inc()
        RUNNING.dec()
        # Before the end event, so a watcher that saw the end finds the report stored.
        await self.store_report(it)
        await self.emit(it, it.stage, message or core.phase_name(phase))
        log.info(
            "iteration finished",
            extra={"iteration_id": it.iteration_id, "phase": core.phase_name(phase), "info": message},
        )

    # --- reports -----------------------------------------------------------------------------

    async def build_report(self, it: orchestrator_pb2.Iteration) -> dict[str, Any]:
        """The report of `it`'s run up to `it`, from the saved state (problems included)."""
        members = []
        for member in report.run_iterations(await self.list_iterations(), it):
            loaded = orchestrator_pb2.Iteration()
            loaded.CopyFrom(member)  # never grow the caller's message with the problems
            loaded.ClearField("problems")
            loaded.problems.extend(await self.problems(loaded))
            members.append(loaded)
        return report.build_report(members, generated_unix_ms=core.now_ms())

    async def store_report(self, it: orchestrator_pb2.Iteration) -> None:
        """Build the ended iteration's report and store it as reports/<id>.{json,md,html}; a failure
        is logged and counted, never fatal (the iteration's result does not depend on it)."""
        try:
            built = await self.build_report(it)
            for warning in built["warnings"]:
                if warning["iteration_id"] == it.iteration_id:  # earlier ones were counted already
                    REPORT_WARNINGS.labels(code=warning["code"]).inc()
            texts = {
                "json": json.dumps(built, indent=2),
                "md": report.render_markdown(built),
                "html": report.render_html(built),
            }
            for fmt in REPORT_FORMATS:
                await asyncio.wait_for(
                    self.bus.objects.put(report_object(it.iteration_id, fmt), texts[fmt].encode()),
                    REPORT_STORE_TIMEOUT_S,
                )
        except Exception:
            REPORTS.labels(outcome="failed").inc()
            log.exception("iteration report not stored", extra={"iteration_id": it.iteration_id})
            return
        REPORTS.labels(outcome="stored").inc()
        log.info(
            "iteration report stored",
            extra={"iteration_id": it.iteration_id, "warnings": len(built["warnings"])},
        )

    async def _stored_report(self, iteration_id: str) -> orchestrator_pb2.IterationReport | None:
        """The report stored when the iteration ended; None when there is none (or it is unreadable)."""
        texts = {}
        try:
            for fmt in REPORT_FORMATS:
                result = await asyncio.wait_for(
                    self.bus.objects.get(report_object(iteration_id, fmt)), REPORT_STORE_TIMEOUT_S
                )
                texts[fmt] = bytes(result.data or b"").decode()
            built = json.loads(texts["json"])
        except ObjectNotFoundError:
            return None
        except Exception:
            log.exception("stored iteration report unreadable", extra={"iteration_id": iteration_id})
            return None
        objects = [report_object(iteration_id, fmt) for fmt in REPORT_FORMATS]
        return report_message(built, texts["md"], texts["html"], objects, stored=True)

    async def get_report(self, iteration_id: str) -> orchestrator_pb2.IterationReport:
        """GetReport: the stored report, else one built now (a running iteration's says so)."""
        it = await self.get(iteration_id, include_problems=False)
        if it.phase in TERMINAL_PHASES:
            stored = await self._stored_report(iteration_id)
            if stored is not None:
                return stored
        built = await self.build_report(it)
        return report_message(
            built, report.render_markdown(built), report.render_html(built), [], stored=False
        )

    # --- API ---------------------------------------------------------------------------------

    async def start_iteration(self, spec: orchestrator_pb2.IterationSpec) -> orchestrator_pb2.Iteration:
        filled = core.validate_spec(spec, self.cfg.model)
        async with self.lock:
            running = [
                i.iteration_id
                for i in await self.list_iterations()
                if i.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING
            ]
            if running:
                raise FailedPrecondition(f"iteration {running[0]} is still running; wait for it or cancel it")
            current = await registry.current_version(self.bus)
            it = core.new_iteration(core.new_iteration_id(), filled, current.version if current else 0)
            await self.save(it)
            RUNNING.inc()
            await self.emit(it, orchestrator_pb2.STAGE_PROBLEMS, "iteration started")
            await self.dispatch(it)
        log.info(
            "iteration started", extra={"iteration_id": it.iteration_id, "model_version": it.model_version_in}
        )
        return it

    async def get(self, iteration_id: str, include_problems: bool) -> orchestrator_pb2.Iteration:
        it = await self.load(check_id("iteration_id", iteration_id))
        if it is None:
            raise NotFound(f"iteration_id: no iteration {shown(iteration_id)}")
        if include_problems:
            it.problems.extend(await self.problems(it))
        return it

    async def cancel(self, iteration_id: str) -> orchestrator_pb2.Iteration:
        async with self.lock:
            it = await self.get(iteration_id, include_problems=False)
            if it.phase in TERMINAL_PHASES:
                raise FailedPrecondition(
                    f"iteration {iteration_id} already ended ({core.phase_name(it.phase)})"
                )
            await self.finish(it, orchestrator_pb2.ITERATION_PHASE_CANCELLED, "cancelled by request")
            task = self._evaluations.pop(iteration_id, None)
            if task is not None:
                task.cancel()
            return it

    async def watch(self, iteration_id: str) -> AsyncIterator[orchestrator_pb2.ProgressEvent]:
        await self.get(iteration_id, include_problems=False)  # NOT_FOUND before streaming
        sub = await self.bus.js.subscribe(
            subjects.event_subject(iteration_id),
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=2.0)
                except nats.errors.TimeoutError:
                    it = await self.load(iteration_id)
                    if it is None or it.phase in TERMINAL_PHASES:
                        # Ended while no event was pending (e.g. events expired): close the stream.
                        if it is not None:
                            yield core.event(it, it.stage, core.phase_name(it.phase))
                        return
                    continue
                event = orchestrator_pb2.ProgressEvent.FromString(msg.data)
                yield event
                if event.phase in TERMINAL_PHASES:
                    return
        finally:
            await sub.unsubscribe()

    # --- results -----------------------------------------------------------------------------

    async def on_result(self, service: str, payload: bytes) -> None:
        response_type = RESULT_TYPES.get(service)
        if response_type is None:
            raise Reject(f"results from an unknown stage {service!r}")
        try:
            response = response_type.FromString(payload)
        except DecodeError as exc:
            raise Reject(f"{service} result is not a {response_type.DESCRIPTOR.full_name}: {exc}") from exc
        # Garbage can never become a valid answer: dead-lettered at once, not retried for minutes.
        iteration_id = getattr(response, "iteration_id", "")
        ids = {"iteration_id": iteration_id, "problem_id": getattr(response, "problem_id", None)}
        for field, value in ids.items():
            problem = None if value is None else id_problem(value)
            if problem is not None:
                raise Reject(f"{service} result's {field}: {problem}")
        async with self.lock:
            it = await self.load(iteration_id)
            if it is None:
                raise Reject(f"result for an unknown iteration {iteration_id!r}")
            if it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                return  # cancelled or ended: late answers are dropped on purpose
            if service == "problemgen":
                assert isinstance(response, problemgen_pb2.GenerateProblemsResponse)
                await self._on_problems(it, response)
            elif service == "trainer":
                assert isinstance(response, trainer_pb2.TrainResponse)
                await self._on_trained(it, response)
            else:
                await self._on_problem_result(it, service, response)

    async def _on_problems(
        self, it: orchestrator_pb2.Iteration, response: problemgen_pb2.GenerateProblemsResponse
    ) -> None:
        if core.stats(it, orchestrator_pb2.STAGE_PROBLEMS).done:
            await self.dispatch(it)  # already applied: only re-publish (deduplicated)
            return
        it.problems_generated = response.generated
        it.problems_rejected = (
            response.rejected_parse
            + response.rejected_compile
            + response.duplicates
            + response.near_duplicates
            + response.rejected_quality
        )
        it.problem_diversity.CopyFrom(response.diversity)
        if response.error or not response.problems:
            core.mark_progress(it, orchestrator_pb2.STAGE_PROBLEMS, failed=1)
            reason = response.error or f"none of {response.generated} generated problems was valid"
            await self.finish(it, orchestrator_pb2.ITERATION_PHASE_FAILED, f"problem generation: {reason}")
            return
        for problem in response.problems:
            ps = orchestrator_pb2.ProblemState(problem=problem, stage_done=orchestrator_pb2.STAGE_PROBLEMS)
            await self.save_problem(it.iteration_id, ps)
            it.problem_ids.append(problem.problem_id)
        core.mark_progress(it, orchestrator_pb2.STAGE_PROBLEMS, done=1)
        PROBLEM_ENTROPY.labels(model_version=str(it.model_version_in)).set(
            diversity.mean_lexical_entropy([p.description or p.docstring for p in response.problems])
        )
        for stage in core.PROBLEM_STAGES:
            core.stats(it, stage).total = len(response.problems)
        core.mark_started(it, orchestrator_pb2.STAGE_TESTS)
        await self.save(it)
        await self.emit(
            it,
            orchestrator_pb2.STAGE_PROBLEMS,
            f"{len(response.problems)} problems kept of {response.generated}",
        )
        await self.dispatch(it)

    async def _on_problem_result(
        self, it: orchestrator_pb2.Iteration, service: str, response: Message
    ) -> None:
        stage = STAGE_OF_SERVICE[service]
        problem_id = getattr(response, "problem_id", "")
        ps = await self.load_problem(it.iteration_id, problem_id)
        if ps is None:
            raise Reject(f"{service} result for an unknown problem {problem_id!r}")
        if ps.error or ps.stage_done >= stage or core.stale_answer(ps, response):
            # Already applied: a redelivery. If the orchestrator stopped between this problem's
            # write and the iteration's, the summary missed it; the problems' state is the truth.
            problems = await self.problems(it)
            if core.derive_totals(it, problems):
                log.warning("iteration totals re-derived", extra={"iteration_id": it.iteration_id})
                await self.save(it)
                await self.emit(it, stage)
            await self.dispatch_problem(it, ps)
            if not core.stats(it, orchestrator_pb2.STAGE_TRAINING).total:
                # The last problem's answer may be the one whose summary was lost; once training
                # has started, its job is out and must not be sent again.
                await self.maybe_train(it, problems)
            return
        error = getattr(response, "error", "")
        if not error:
            error = self._apply(it, ps, response)
        if error:
            ps.error = f"{core.stage_name(stage)}: {error}"
            # After the first round, sampling and execution were counted done already.
            ps.failed_from = stage if ps.rounds == 0 else orchestrator_pb2.STAGE_CLUSTERING  # type: ignore[assignment]
            core.fail_problem_from(it, ps.failed_from)
            PROBLEMS.labels(outcome="failed").inc()
            log.warning(
                "problem failed",
                extra={"iteration_id": it.iteration_id, "problem_id": problem_id, "error": ps.error},
            )
        elif isinstance(response, clusterer_pb2.ClusterResponse) and response.sample_more:
            # Adaptive sampling: another round before the decision is final.
            ps.rounds += 1
            ps.round_size = response.next_round
            ps.stage_done = orchestrator_pb2.STAGE_TESTS
        else:
            counted = ps.rounds == 0 or stage == orchestrator_pb2.STAGE_CLUSTERING
            ps.stage_done = stage  # type: ignore[assignment]
            if counted:
                core.mark_progress(it, stage, done=1)
                core.mark_started(it, core.next_problem_stage(stage))
        await self.save_problem(it.iteration_id, ps)
        self._after_problem_write()
        await self.save(it)
        await self.emit(it, stage)
        await self.dispatch_problem(it, ps)
        if core.problem_finished(ps):
            await self.maybe_train(it, await self.problems(it))

    def _apply(
        self, it: orchestrator_pb2.Iteration, ps: orchestrator_pb2.ProblemState, response: Message
    ) -> str:
        """Copy a stage's answer into the problem state; returns an error text when it is unusable."""
        if isinstance(response, testsynth_pb2.SynthesizeTestsResponse):
            for reason, rejected in response.rejected_by_reason.items():
                it.tests_rejected[reason] += rejected
                ps.tests_rejected[reason] += rejected
            for repair, repaired in response.repaired.items():
                it.tests_repaired[repair] += repaired
                ps.tests_repaired[repair] += repaired
            if not response.tests:
                return f"no valid test input among {response.generated} written"
            ps.tests.extend(response.tests)
            it.tests_kept += len(response.tests)
            it.tests_mutated += response.mutated
            ps.tests_mutated += response.mutated
            TESTS.inc(len(response.tests))
        elif isinstance(response, sampler_pb2.SampleCandidatesResponse):
            if not response.candidates:
                return "the sampler returned no candidates"
            ps.candidates.extend(response.candidates)
            ps.sampler_adapter = response.adapter_name
            it.candidates += len(response.candidates)
            CANDIDATES.inc(len(response.candidates))
        elif isinstance(response, executor_pb2.ExecuteResponse):
            waiting = len(core.unexecuted(ps))
            if len(response.results) != waiting:
                return f"{len(response.results)} results for {waiting} candidates"
            ps.results.extend(response.results)
            # Recomputed over all rounds' results: a later round can clear a test.
            invalid = core.likely_invalid_test_ids(ps)
            it.tests_likely_invalid += len(invalid) - len(ps.likely_invalid_tests)
            ps.ClearField("likely_invalid_tests")
            ps.likely_invalid_tests.extend(invalid)
            executions = sum(len(r.outcomes) for r in response.results)
            it.executions += executions
            EXECUTIONS.inc(executions)
        elif isinstance(response, clusterer_pb2.ClusterResponse):
            ps.selection.CopyFrom(response.selection)
            ps.sampling_reason = response.sampling_reason
            ps.p_change = response.p_change
            if response.sample_more:
                return ""  # not final: counted when sampling stops
            if response.selection.selected:
                it.selected += 1
                SELECTED.inc()
            PROBLEMS.labels(outcome="selected" if response.selection.selected else "no_consensus").inc()
        return ""

    async def _on_trained(self, it: orchestrator_pb2.Iteration, response: trainer_pb2.TrainResponse) -> None:
        if response.error:
            core.mark_progress(it, orchestrator_pb2.STAGE_TRAINING, failed=1)
            await self.finish(it, orchestrator_pb2.ITERATION_PHASE_FAILED, f"training: {response.error}")
            return
        if core.stats(it, orchestrator_pb2.STAGE_TRAINING).done:
            return  # already applied (a redelivered answer)
        it.model_version_out.CopyFrom(response.model_version)
        core.mark_progress(it, orchestrator_pb2.STAGE_TRAINING, done=1)
        await self.after_training(
            it, f"adapter v{response.model_version.version} trained (loss {response.final_loss:.3f})"
        )

    # --- evaluation and runs -----------------------------------------------------------------

    async def after_training(self, it: orchestrator_pb2.Iteration, message: str) -> None:
        """Evaluate what needs measuring, then conclude the iteration (called under the lock)."""
        todo = core.versions_to_evaluate(it)
        if not todo:
            await self.save(it)
            await self.conclude(it, message)
            return
        entry = core.stats(it, orchestrator_pb2.STAGE_EVALUATION)
        entry.total = len(todo) * it.spec.evaluation.problems
        entry.started_unix_ms = core.now_ms()
        await self.save(it)
        versions = ", ".join(f"v{version}" for _, version in todo)
        await self.emit(
            it, orchestrator_pb2.STAGE_EVALUATION, f"{message}; evaluating {versions} on HumanEval"
        )
        self._start_evaluation(it.iteration_id)

    def _start_evaluation(self, iteration_id: str) -> None:
        task = self._evaluations.get(iteration_id)
        if task is not None and not task.done():
            return
        task = asyncio.create_task(self._evaluate(iteration_id))
        self._evaluations[iteration_id] = task
        task.add_done_callback(lambda _: self._evaluations.pop(iteration_id, None))

    async def _evaluate(self, iteration_id: str) -> None:
        """The evaluation stage of an iteration: measure each version, then conclude.

        Runs outside the lock (minutes); every result is saved as it arrives, so a restarted
        orchestrator re-measures at most the version it was busy with.
        """
        try:
            while True:
                it = await self.load(iteration_id)
                if it is None or it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                    return
                todo = core.versions_to_evaluate(it)
                if not todo:
                    break
                field, version = todo[0]
                measured_before = core.stats(it, orchestrator_pb2.STAGE_EVALUATION).done

                async def progress(done: int, total: int, base: int = measured_before) -> None:
                    async with self.lock:
                        current = await self.load(iteration_id)
                        if current is None or current.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                            return
                        core.stats(current, orchestrator_pb2.STAGE_EVALUATION).done = base + done
                        await self.save(current)
                        await self.emit(current, orchestrator_pb2.STAGE_EVALUATION)

                result = await self._evaluate_patiently(version, it.spec.evaluation, progress)
                async with self.lock:
                    it = await self.load(iteration_id)
                    if it is None or it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                        return
                    getattr(it, field).CopyFrom(result)
                    await self.save(it)
                    await self.emit(
                        it, orchestrator_pb2.STAGE_EVALUATION, f"v{version}: pass@1 {result.pass_at_1:.1%}"
                    )
            async with self.lock:
                it = await self.load(iteration_id)
                if it is None or it.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
                    return
                entry = core.stats(it, orchestrator_pb2.STAGE_EVALUATION)
                entry.done = entry.total
                entry.finished_unix_ms = entry.finished_unix_ms or core.now_ms()
                await self.conclude(it, "evaluated")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("evaluation failed", extra={"iteration_id": iteration_id})
            async with self.lock:
                it = await self.load(iteration_id)
                if it is not None and it.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING:
                    core.mark_progress(it, orchestrator_pb2.STAGE_EVALUATION, failed=1)
                    await self.finish(
                        it,
                        orchestrator_pb2.ITERATION_PHASE_FAILED,
                        f"evaluation: {type(exc).__name__}: {exc}",
                    )

    async def _evaluate_patiently(
        self,
        version: int,
        spec: orchestrator_pb2.EvalSpec,
        on_progress: eval_run.ProgressCallback,
    ) -> orchestrator_pb2.EvalResult:
        """evaluate_version, waiting out a sampler or executor that is (re)starting, up to
        eval_generate_timeout_s; an iteration should survive a service restart."""
        deadline = asyncio.get_running_loop().time() + self.cfg.eval_generate_timeout_s
        while True:
            try:
                return await self.evaluate_version(version, spec, on_progress)
            except Unavailable as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("evaluation waits for the services", extra={"error": str(exc)})
                await asyncio.sleep(EVAL_RETRY_S)

    async def evaluate_version(
        self,
        version: int,
        spec: orchestrator_pb2.EvalSpec,
        on_progress: eval_run.ProgressCallback | None = None,
    ) -> orchestrator_pb2.EvalResult:
        """HumanEval pass@k of one version (``spec`` already validated), through sampler and executor."""
        settings = eval_run.EvalSettings(
            problems=spec.problems,
            samples=spec.samples,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            ks=tuple(spec.ks),
            concurrency=self.cfg.eval_concurrency,
        )
        try:
            measured = await eval_run.evaluate_model(
                self.bus.nc,
                version,
                settings,
                on_progress=on_progress,
                generate_timeout_s=self.cfg.eval_generate_timeout_s,
            )
        except (eval_run.SamplerUnavailable, ExecutorUnavailable) as exc:
            EVALUATIONS.labels(outcome="unavailable").inc()
            raise Unavailable(f"evaluation of v{version}: {exc}") from exc
        except Exception:
            EVALUATIONS.labels(outcome="error").inc()
            raise
        EVALUATIONS.labels(outcome="ok").inc()
        report = measured.report
        result = core.eval_result(
            version, spec, dict(report.pass_at_k), report.num_problems, report.num_samples, measured.seconds
        )
        EVAL_PASS_AT_1.labels(model_version=str(version)).set(result.pass_at_1)
        log.info(
            "evaluated",
            extra={
                "model_version": version,
                "pass_at_1": result.pass_at_1,
                "seconds": round(measured.seconds, 1),
            },
        )
        return result

    async def conclude(self, it: orchestrator_pb2.Iteration, message: str) -> None:
        """End a trained (or untrained) and measured iteration: early stopping decides what follows."""
        decision = core.run_decision(it)
        it.best_version = decision.best_version
        it.best_pass_at_1 = decision.best_pass_at_1
        it.stale_iterations = decision.stale_iterations
        it.run_decision = decision.message
        if decision.continue_run:
            # Recorded before the end event, so a watcher following the run never misses the next one.
            it.next_iteration_id = core.new_iteration_id()
        else:
            await self._keep_best(it, decision.best_version)
        await self.finish(it, orchestrator_pb2.ITERATION_PHASE_COMPLETED, f"{message}; {decision.message}")
        if decision.continue_run:
            await self._start_next(it)

    async def _keep_best(self, it: orchestrator_pb2.Iteration, best: int) -> None:
        """Make the run's best version current (without evaluation the trainer's newest already is)."""
        if not core.evaluates(it):
            return
        current = await registry.current_version(self.bus)
        if (current.version if current else 0) == best:
            return
        try:
            await registry.set_current(self.bus, best, base_model=it.spec.model)
        except KeyError:
            log.error("the run's best version is not registered", extra={"version": best})
            return
        log.info("kept the run's best version", extra={"iteration_id": it.iteration_id, "version": best})

    async def _start_next(self, previous: orchestrator_pb2.Iteration) -> None:
        """Start the run's next iteration (idempotent: does nothing when it exists)."""
        if await self.load(previous.next_iteration_id) is not None:
            return
        current = await registry.current_version(self.bus)
        it = core.new_iteration(
            previous.next_iteration_id, previous.spec, current.version if current else 0, previous
        )
        await self.save(it)
        RUNNING.inc()
        await self.emit(
            it,
            orchestrator_pb2.STAGE_PROBLEMS,
            f"iteration {it.run_index} of {it.spec.iterations} started (run {it.run_id})",
        )
        log.info("run continues", extra={"iteration_id": it.iteration_id, "run_id": it.run_id})
        await self.dispatch(it)

    async def evaluate(
        self, request: orchestrator_pb2.EvaluateRequest
    ) -> AsyncIterator[orchestrator_pb2.EvaluateProgress]:
        """The Evaluate RPC: progress messages, then the result (nothing is persisted)."""
        spec = core.validate_eval_spec(request.spec, "spec")
        if request.HasField("model_version"):
            version = request.model_version
            if version < 0:
                raise InvalidArgument(f"model_version: must be >= 0, got {version}")
            if version > 0 and await registry.get_version(self.bus, version) is None:
                raise NotFound(f"model_version: version {version} is not registered")
        else:
            current = await registry.current_version(self.bus)
            version = current.version if current else 0
        updates: asyncio.Queue[orchestrator_pb2.EvaluateProgress] = asyncio.Queue()

        async def progress(done: int, total: int) -> None:
            updates.put_nowait(
                orchestrator_pb2.EvaluateProgress(model_version=version, done=done, total=total)
            )

        task = asyncio.create_task(self.evaluate_version(version, spec, progress))
        try:
            yield orchestrator_pb2.EvaluateProgress(model_version=version, done=0, total=spec.problems)
            while not task.done() or not updates.empty():
                getter = asyncio.ensure_future(updates.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            result = task.result()
            yield orchestrator_pb2.EvaluateProgress(
                model_version=version, done=result.num_problems, total=result.num_problems, result=result
            )
        finally:
            if not task.done():
                task.cancel()

    async def recover(self) -> None:
        """Re-dispatch every running iteration from its saved state (after a restart)."""
        iterations = await self.list_iterations()
        running = [it for it in iterations if it.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING]
        RUNNING.set(len(running))
        known = {it.iteration_id for it in iterations}
        for it in iterations:
            if (
                it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED
                and it.next_iteration_id not in known | {""}
            ):
                # Ended, but the orchestrator stopped before starting the run's next iteration.
                log.info(
                    "continuing a run", extra={"iteration_id": it.next_iteration_id, "run_id": it.run_id}
                )
                async with self.lock:
                    await self._start_next(it)
        for it in running:
            # Stages that finished before the restart were measured by the previous process.
            self._measured[it.iteration_id] = set(core.finished_stages(it))
            log.info("resuming iteration", extra={"iteration_id": it.iteration_id})
            async with self.lock:
                # The previous process may have stopped between a problem's write and the summary's.
                if it.problem_ids and core.derive_totals(it, await self.problems(it)):
                    log.warning("iteration totals re-derived", extra={"iteration_id": it.iteration_id})
                    await self.save(it)
                await self.dispatch(it)


async def watch_backlog(bus: Bus) -> None:
    """Export every stage's work-queue backlog, read from its durable consumer, until cancelled.

    The stages' workers export their own queue gauges too; reading them here as well keeps the
    backlog visible while a stage has no replica (an autoscaled executor at zero).
    """
    while True:
        for stage in RESULT_TYPES:
            try:
                info = await bus.js.consumer_info(subjects.WORK_STREAM, stage)
            except Exception:
                continue  # no consumer before the stage's service first started, or NATS is away
            BACKLOG.labels(stage=stage).set((info.num_pending or 0) + (info.num_ack_pending or 0))
        await asyncio.sleep(BACKLOG_POLL_S)


class ResultsWorker(JetStreamWorker):
    """Consumes every stage's answers (one at a time: state changes are serialised)."""

    def __init__(self, bus: Bus, orchestrator: Orchestrator) -> None:
        super().__init__(
            bus,
            "orchestrator",
            subject="ucoder.results.>",
            stream=subjects.RESULTS_STREAM,
            durable="orchestrator",
            concurrency=1,
            ack_wait_s=30.0,
            max_deliver=10,
        )
        self.orchestrator = orchestrator

    async def handle(self, msg: Msg) -> None:
        await self.orchestrator.on_result(msg.subject.rsplit(".", 1)[-1], msg.data)


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    @rpc
    async def StartIteration(
        self, request: orchestrator_pb2.StartIterationRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Iteration:
        return await self.orchestrator.start_iteration(request.spec)

    @rpc
    async def GetIteration(
        self, request: orchestrator_pb2.GetIterationRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Iteration:
        return await self.orchestrator.get(request.iteration_id, request.include_problems)

    @rpc
    async def ListIterations(
        self, request: orchestrator_pb2.ListIterationsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListIterationsResponse:
        return orchestrator_pb2.ListIterationsResponse(iterations=await self.orchestrator.list_iterations())

    @rpc
    async def WatchIteration(
        self, request: orchestrator_pb2.WatchIterationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.ProgressEvent]:
        async for event in self.orchestrator.watch(request.iteration_id):
            yield event

    @rpc
    async def Evaluate(
        self, request: orchestrator_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.EvaluateProgress]:
        async for progress in self.orchestrator.evaluate(request):
            yield progress

    @rpc
    async def GetReport(
        self, request: orchestrator_pb2.GetReportRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.IterationReport:
        return await self.orchestrator.get_report(request.iteration_id)

    @rpc
    async def CancelIteration(
        self, request: orchestrator_pb2.CancelIterationRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Iteration:
        return await self.orchestrator.cancel(request.iteration_id)


async def build(cfg: OrchestratorConfig, bus: Bus) -> ServiceParts:
    orchestrator = Orchestrator(cfg, bus)
    binding = GrpcBinding(
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
        OrchestratorServicer(orchestrator),
        "ucoder.v1.OrchestratorService",
    )
    watchers: list[asyncio.Task[None]] = []

    async def ready() -> None:
        await orchestrator.recover()
        watchers.append(asyncio.create_task(watch_backlog(bus), name="backlog"))

    async def close() -> None:
        for task in watchers:
            task.cancel()

    return ServiceParts(
        bindings=[binding], workers=[ResultsWorker(bus, orchestrator)], ready=ready, close=[close]
    )
