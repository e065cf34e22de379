"""Executor service: runs every candidate on every test input in the sandbox pool.

Serves ExecuteRequests three ways: the `executor` JetStream work queue (iterations), gRPC Execute,
and core NATS request/reply on `ucoder.rpc.executor.execute` (queue group "executor", so replicas
share the requests; HumanEval evaluation uses it through ucoder_common.executor_client).
"""

from __future__ import annotations

import ast
import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass

import grpc
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge, Histogram

from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome, outcome_passed
from ucoder_common import subjects
from ucoder_common.bus import Bus, Retry, stage_worker
from ucoder_common.config import ConfigError, ServiceConfig, setting
from ucoder_common.errors import DeadlineExceeded, InvalidArgument, ServiceError, rpc
from ucoder_common.pb import common_pb2, executor_pb2, executor_pb2_grpc
from ucoder_common.service import GrpcBinding, ServiceParts
from ucoder_common.validation import MAX_SAMPLES_PER_PROBLEM, shown

log = logging.getLogger(__name__)

CANDIDATES = Counter("ucoder_executor_candidates", "Candidates run to completion.")
EXECUTIONS = Counter(
    "ucoder_executor_executions", "Test executions (candidate x input), by outcome kind.", ["kind"]
)
DEADLINES = Counter("ucoder_executor_deadlines", "Requests that ran past job_deadline_s and failed.")
SANDBOX_ERRORS = Counter(
    "ucoder_executor_sandbox_errors", "Candidates whose sandboxes kept failing (the job is retried)."
)
TEST_SECONDS = Histogram(
    "ucoder_executor_test_duration_seconds",
    "Time one test execution took inside the sandbox (as measured there).",
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10),
)
SANDBOX_STARTS = Counter(
    "ucoder_executor_sandbox_starts", "Sandboxes started (the first ones and replacements)."
)
WORKER_RESTARTS = Counter(
    "ucoder_executor_worker_restarts",
    "Worker processes inside sandboxes replaced, by reason (timeout, crashed, protocol, touched, "
    "recycle_after, ...).",
    ["reason"],
)
CONFIRM_RUNS = Counter(
    "ucoder_executor_confirm_runs",
    "Failures re-run on a fresh worker before being recorded, by failure (timeout, crashed, protocol).",
    ["failure"],
)
CANDIDATE_SECONDS = Histogram(
    "ucoder_executor_candidate_duration_seconds",
    "Wall time per candidate (a job's wall time over its candidates).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
BUSY = Gauge("ucoder_executor_busy_jobs", "Execute jobs (problems) running now.")
NATS_REQUESTS = Counter(
    "ucoder_executor_nats_requests",
    "Execute requests answered over NATS request/reply, by outcome (ok, invalid, retry, error).",
    ["outcome"],
)

KINDS = {
    "returned": common_pb2.OUTCOME_KIND_RETURNED,
    "raised": common_pb2.OUTCOME_KIND_RAISED,
    "timeout": common_pb2.OUTCOME_KIND_TIMEOUT,
    "memory": common_pb2.OUTCOME_KIND_MEMORY,
    "output_limit": common_pb2.OUTCOME_KIND_OUTPUT_LIMIT,
    "compile_error": common_pb2.OUTCOME_KIND_COMPILE_ERROR,
    "crashed": common_pb2.OUTCOME_KIND_CRASHED,
}
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _kind in KINDS:
    EXECUTIONS.labels(kind=_kind)
RESTART_REASONS = frozenset(
    {
        "timeout",
        "crashed",
        "protocol",
        "touched",
        "recycle_after",
        "memory_limit_changed",
        "candidate_timeout",
    }
)


def record_sandbox_events(events: dict[str, int]) -> None:
    """Turns the sandboxes' event counts into metrics with bounded label values."""
    for name, count in events.items():
        kind, _, detail = name.partition(":")
        if kind == "sandbox_started":
            SANDBOX_STARTS.inc(count)
        elif kind == "recycled":
            reason = detail.split(":", 1)[0]
            WORKER_RESTARTS.labels(reason=reason if reason in RESTART_REASONS else "other").inc(count)
        elif kind == "confirm":
            CONFIRM_RUNS.labels(failure=detail if detail in RESTART_REASONS else "other").inc(count)


# The most memory one candidate may ask for; beyond it the sandbox cannot start and a request
# that can never succeed would be answered UNAVAILABLE (retry) instead of INVALID_ARGUMENT.
MAX_MEMORY_LIMIT_MB = 16_384


@dataclass(frozen=True)
class RequestLimits:
    """The largest request an executor takes (settings below; the defaults are these). A bigger
    one is INVALID_ARGUMENT before anything runs: it can never succeed, so it is never retried."""

    candidates: int = MAX_SAMPLES_PER_PROBLEM
    """Candidates per request (the most an iteration samples for one problem)."""
    tests: int = 1000
    """Tests per request (the paper uses about 100 per problem)."""
    code_bytes: int = 256 * 1024
    """UTF-8 size of one candidate's code."""
    literal_bytes: int = 64 * 1024
    """UTF-8 size of one test's argument or expected-value literal."""


@dataclass
class ExecutorConfig(ServiceConfig):
    """Runs candidate solutions on test inputs inside sandboxes."""

    backend: str = setting(
        "gvisor", "Isolation backend: gvisor (runsc), bwrap, or process (per-candidate limits only)."
    )
    sandboxes: int = setting(0, "Concurrent sandboxes; 0 = one per CPU core.")
    timeout_per_test_s: float = setting(2.0, "Default wall-clock limit per test.")
    memory_limit_mb: int = setting(512, "Default address-space limit per candidate process.")
    recycle_after: int = setting(1000, "Replace a sandbox's worker process after this many candidates.")
    sandbox_recycle_after: int = setting(20000, "Restart a whole sandbox after this many candidates.")
    timeout_per_candidate_s: float = setting(
        0.0, "Wall-clock limit for all tests of one candidate; 0 = setup time + tests x (timeout + 1 s)."
    )
    uid_base: int = setting(
        0, "First uid candidates run as (one per sandbox); 0 = automatic. Only used when running as root."
    )
    allow_unsandboxed: bool = setting(
        False,
        "Required for backend=process, which applies the per-candidate limits only: use it only where "
        "the executor itself runs sandboxed (a pod under the gVisor RuntimeClass).",
    )
    concurrency: int = setting(2, "Jobs (problems) handled at once; candidates share the sandboxes.")
    batch_size: int = setting(
        16, "Candidates sent to a sandbox in one round trip (amortises IPC under gVisor)."
    )
    ack_wait_s: float = setting(
        60.0, "Seconds before JetStream redelivers the job of a worker that died (heartbeats keep live jobs)."
    )
    max_candidates: int = setting(RequestLimits.candidates, "Most candidates one request may carry.")
    max_tests: int = setting(RequestLimits.tests, "Most tests one request may carry.")
    max_code_bytes: int = setting(RequestLimits.code_bytes, "Largest candidate (bytes of UTF-8 code).")
    max_literal_bytes: int = setting(RequestLimits.literal_bytes, "Largest test literal (bytes of UTF-8).")
    job_deadline_s: float = setting(
        3600.0,
        "Wall-clock limit of one request; past it the request fails (not retried: it would take as "
        "long again) and the sandboxes go on with the next. 0 = none.",
    )

    def validate(self) -> None:
        super().validate()
        if self.backend not in {b.value for b in Backend}:
            raise ConfigError(f"backend: must be one of gvisor, bwrap, process, got {self.backend!r}")
        if self.backend == Backend.PROCESS and not self.allow_unsandboxed:
            raise ConfigError(
                "backend: process runs candidates without a sandbox; set allow_unsandboxed "
                "(UCODER_EXECUTOR_ALLOW_UNSANDBOXED=1) only where the executor itself is sandboxed"
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.recycle_after < 1 or self.sandbox_recycle_after < 1:
            raise ConfigError("recycle_after and sandbox_recycle_after: must be >= 1")
        if self.timeout_per_candidate_s < 0:
            raise ConfigError(f"timeout_per_candidate_s: must be >= 0, got {self.timeout_per_candidate_s}")
        if self.uid_base < 0:
            raise ConfigError(f"uid_base: must be >= 0, got {self.uid_base}")
        if self.sandboxes < 0:
            raise ConfigError(f"sandboxes: must be >= 0, got {self.sandboxes}")
        if self.timeout_per_test_s <= 0:
            raise ConfigError(f"timeout_per_test_s: must be > 0, got {self.timeout_per_test_s}")
        if self.ack_wait_s < 1:
            raise ConfigError(f"ack_wait_s: must be >= 1, got {self.ack_wait_s}")
        for name in ("max_candidates", "max_tests", "max_code_bytes", "max_literal_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not math.isfinite(self.job_deadline_s) or self.job_deadline_s < 0:
            raise ConfigError(f"job_deadline_s: must be >= 0 (0 = none), got {self.job_deadline_s}")
        if not 32 <= self.memory_limit_mb <= MAX_MEMORY_LIMIT_MB:
            raise ConfigError(
                f"memory_limit_mb: must be in 32..{MAX_MEMORY_LIMIT_MB}, got {self.memory_limit_mb}"
            )

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(self.max_candidates, self.max_tests, self.max_code_bytes, self.max_literal_bytes)

    @property
    def pool_size(self) -> int:
        return self.sandboxes or os.cpu_count() or 1


def validate_request(request: executor_pb2.ExecuteRequest, limits: RequestLimits = RequestLimits()) -> None:
    if len(request.candidates) > limits.candidates:
        raise InvalidArgument(
            f"candidates: at most {limits.candidates} per request, got {len(request.candidates)}"
        )
    if len(request.tests) > limits.tests:
        raise InvalidArgument(f"tests: at most {limits.tests} per request, got {len(request.tests)}")
    for index, candidate in enumerate(request.candidates):
        if len(candidate.code.encode()) > limits.code_bytes:
            raise InvalidArgument(f"candidates[{index}].code: at most {limits.code_bytes} bytes")
    for index, test in enumerate(request.tests):
        for name in ("args_literal", "expected_literal"):
            if len(getattr(test, name).encode()) > limits.literal_bytes:
                raise InvalidArgument(f"tests[{index}].{name}: at most {limits.literal_bytes} bytes")
    if not request.entry_point.isidentifier():
        raise InvalidArgument(f"entry_point: must be a Python identifier, got {shown(request.entry_point)}")
    # NaN compares false with everything: without isfinite it passed both bounds.
    if not math.isfinite(request.timeout_per_test_s) or not 0 <= request.timeout_per_test_s <= 60:
        raise InvalidArgument(f"timeout_per_test_s: must be in [0, 60], got {request.timeout_per_test_s}")
    if (
        request.memory_limit_mb < 0
        or (0 < request.memory_limit_mb < 32)
        or (request.memory_limit_mb > MAX_MEMORY_LIMIT_MB)
    ):
        raise InvalidArgument(
            f"memory_limit_mb: must be 0 (default) or in 32..{MAX_MEMORY_LIMIT_MB}, "
            f"got {request.memory_limit_mb}"
        )
    for index, test in enumerate(request.tests):
        value = _literal(f"tests[{index}].args_literal", test.args_literal)
        if not isinstance(value, tuple):
            raise InvalidArgument(f"tests[{index}].args_literal: must be a tuple literal like '(1,)'")
        if test.expected_literal:  # checked before any candidate runs, not after
            _literal(f"tests[{index}].expected_literal", test.expected_literal)


def _literal(field: str, text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InvalidArgument(f"{field}: not a Python literal: {shown(text)}") from None


def to_proto(outcome: TestOutcome, expected_literal: str) -> common_pb2.TestOutcome:
    return common_pb2.TestOutcome(
        kind=KINDS.get(outcome.kind, common_pb2.OUTCOME_KIND_CRASHED),
        value_digest=outcome.value_digest,
        exception_type=outcome.exception_type,
        value_repr=outcome.value_repr,
        duration_ms=outcome.duration_ms,
        passed=bool(expected_literal) and outcome_passed(outcome, expected_literal),
    )


class Executor:
    """Runs ExecuteRequests on a shared sandbox pool."""

    def __init__(self, cfg: ExecutorConfig) -> None:
        self.cfg = cfg
        self.pool = SandboxPool(
            Backend(cfg.backend),
            cfg.pool_size,
            default_timeout_s=cfg.timeout_per_test_s,
            default_memory_mb=cfg.memory_limit_mb,
            recycle_after=cfg.recycle_after,
            sandbox_recycle_after=cfg.sandbox_recycle_after,
            uid_base=cfg.uid_base,
            candidate_timeout_s=cfg.timeout_per_candidate_s,
            on_events=record_sandbox_events,
        )
        self._subscription: Subscription | None = None
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.cfg.backend == Backend.PROCESS:
            log.warning(
                "isolation backend: process (UNSANDBOXED: per-candidate limits only, allowed by "
                "allow_unsandboxed); use it only inside a pod under the gVisor RuntimeClass"
            )
        else:
            log.info("isolation backend: %s", self.cfg.backend)
        await self.pool.start()
        log.info(
            "sandboxes ready",
            extra={
                "backend": self.cfg.backend,
                "sandboxes": self.cfg.pool_size,
                "uid_base": self.pool.uid_base,
            },
        )

    async def execute(self, request: executor_pb2.ExecuteRequest) -> executor_pb2.ExecuteResponse:
        validate_request(request, self.cfg.limits)
        inputs = [t.args_literal for t in request.tests]
        started = time.monotonic()
        BUSY.inc()
        try:
            results = await asyncio.wait_for(
                self.pool.run_many(
                    [c.code for c in request.candidates],
                    request.entry_point,
                    inputs,
                    timeout_s=request.timeout_per_test_s or None,
                    memory_mb=request.memory_limit_mb or None,
                    batch=self.cfg.batch_size,
                ),
                self.cfg.job_deadline_s or None,
            )
        except TimeoutError:
            DEADLINES.inc()
            raise DeadlineExceeded(
                f"the request ran past job_deadline_s ({self.cfg.job_deadline_s:g} s) with "
                f"{len(request.candidates)} candidates x {len(request.tests)} tests"
            ) from None
        except SandboxError as exc:
            # The sandboxes broke, not the candidates (the pool already retried on fresh ones and
            # probed): never record this as their result; the whole job is retried with backoff.
            SANDBOX_ERRORS.inc()
            raise Retry(f"sandbox failed: {exc}") from exc
        finally:
            BUSY.dec()
        elapsed = time.monotonic() - started
        CANDIDATES.inc(len(results))
        for outcomes in results:
            CANDIDATE_SECONDS.observe(elapsed / max(1, len(results)))
            for outcome in outcomes:
                EXECUTIONS.labels(kind=outcome.kind).inc()
                TEST_SECONDS.observe(outcome.duration_ms / 1000.0)
        return executor_pb2.ExecuteResponse(
            iteration_id=request.iteration_id,
            problem_id=request.problem_id,
            results=[
                common_pb2.CandidateResult(
                    candidate_id=candidate.candidate_id,
                    outcomes=[
                        to_proto(o, t.expected_literal) for o, t in zip(outcomes, request.tests, strict=True)
                    ],
                )
                for candidate, outcomes in zip(request.candidates, results, strict=True)
            ],
            backend=self.cfg.backend,
        )

    async def answer(self, data: bytes) -> executor_pb2.ExecuteResponse:
        """The response to one serialized ExecuteRequest from NATS: never raises; a request that
        cannot be run gets ``error`` set to ``"<ErrorType>: <message>"`` (InvalidArgument messages
        start with the field name, as over gRPC; ``Retry:`` means a transient failure)."""
        try:
            request = executor_pb2.ExecuteRequest.FromString(data)
            response = await self.execute(request)
        except InvalidArgument as exc:
            NATS_REQUESTS.labels(outcome="invalid").inc()
            return executor_pb2.ExecuteResponse(error=f"{type(exc).__name__}: {exc}")
        except Retry as exc:
            NATS_REQUESTS.labels(outcome="retry").inc()
            log.warning("execute request failed, the caller may retry: %s", exc)
            return executor_pb2.ExecuteResponse(error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            NATS_REQUESTS.labels(outcome="error").inc()
            if not isinstance(exc, ServiceError):
                log.exception("execute request failed")
            return executor_pb2.ExecuteResponse(error=f"{type(exc).__name__}: {exc}")
        NATS_REQUESTS.labels(outcome="ok").inc()
        return response

    async def subscribe(self, nc: NatsClient) -> None:
        """Answer ExecuteRequests on NATS (queue group "executor": replicas share them), each
        concurrently; the sandbox pool queues their candidates."""

        async def answer(msg: Msg) -> None:
            response = await self.answer(msg.data)
            try:
                await msg.respond(response.SerializeToString())
            except Exception:
                log.exception("could not send an execute response")

        async def on_message(msg: Msg) -> None:
            task = asyncio.create_task(answer(msg))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        self._subscription = await nc.subscribe(subjects.EXECUTOR_EXECUTE, queue="executor", cb=on_message)

    async def close(self) -> None:
        """Stop taking NATS requests (the ones already delivered are still answered), give those
        in flight the shutdown grace, then close the sandbox pool."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            try:
                await subscription.drain()  # type: ignore[no-untyped-call]
            except Exception:
                log.exception("could not unsubscribe from %s", subjects.EXECUTOR_EXECUTE)
        if self._answering:
            await asyncio.wait(set(self._answering), timeout=self.cfg.shutdown_grace_s)
        for task in set(self._answering):
            task.cancel()
        if self._answering:
            await asyncio.gather(*self._answering, return_exceptions=True)
        await self.pool.close()


class ExecutorServicer(executor_pb2_grpc.ExecutorServiceServicer):
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    @rpc
    async def Execute(
        self, request: executor_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> executor_pb2.ExecuteResponse:
        return await self.executor.execute(request)


async def build(cfg: ExecutorConfig, bus: Bus) -> ServiceParts:
    executor = Executor(cfg)
    worker = stage_worker(
        bus,
        "executor",
        executor_pb2.ExecuteRequest,
        executor_pb2.ExecuteResponse,
        executor.execute,
        concurrency=cfg.concurrency,
        ack_wait_s=cfg.ack_wait_s,
    )
    binding = GrpcBinding(
        executor_pb2_grpc.add_ExecutorServiceServicer_to_server,
        ExecutorServicer(executor),
        "ucoder.v1.ExecutorService",
    )

    async def ready() -> None:
        await executor.start()
        await executor.subscribe(bus.nc)

    return ServiceParts(bindings=[binding], workers=[worker], ready=ready, close=[executor.close])
