"""The NATS JetStream backbone: connection, topology, and the worker base.

Semantics (spelled out because every stage relies on them):
- work-queue streams, one durable pull consumer per stage, explicit ack;
- a job that raises `Retry` (or an unexpected error) is nak'ed with an exponential
  delay and redelivered up to `max_deliver` times;
- a job that raises `Reject`, or fails on its last delivery, is copied to the
  dead-letter stream and terminated (never silently dropped);
- a long job sends `in_progress()` every ack_wait/3, so it is not redelivered while alive;
- a worker that dies mid-job leaves it unacked, and JetStream redelivers it after ack_wait;
- publishers set `Nats-Msg-Id`, so a job or result published twice is stored once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from ucoder_common import metrics, subjects
from ucoder_common.config import ServiceConfig
from ucoder_common.errors import DeadlineExceeded, InvalidArgument, Retry
from ucoder_common.pb import orchestrator_pb2
from ucoder_common.phases import TERMINAL_PHASES
from ucoder_common.validation import id_problem

log = logging.getLogger(__name__)

__all__ = ["Bus", "JetStreamWorker", "NatsAuth", "Reject", "Retry", "StageWorker", "kv_get", "stage_worker"]

MSG_ID_HEADER = "Nats-Msg-Id"
# Jobs re-published within this window (e.g. by a restarted orchestrator) are deduplicated.
DUPLICATE_WINDOW_S = 6 * 3600.0


class Reject(Exception):
    """The job can never succeed (malformed payload, invalid request): dead-letter it."""


class Skip(Exception):
    """The job is no longer wanted (its iteration has ended): acknowledge it without an answer."""


@dataclass(frozen=True)
class NatsAuth:
    """How a client proves itself to NATS (one credential at most) and checks the server's TLS."""

    token: str = ""
    user: str = ""
    password: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""

    @classmethod
    def from_config(cls, cfg: ServiceConfig) -> NatsAuth:
        return cls(
            token=cfg.nats_token,
            user=cfg.nats_user,
            password=cfg.nats_password,
            tls_ca=cfg.nats_tls_ca,
            tls_cert=cfg.nats_tls_cert,
            tls_key=cfg.nats_tls_key,
        )

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect``; a file that cannot be read raises OSError naming it."""
        options: dict[str, Any] = {}
        if self.token:
            options["token"] = self.token
        if self.user:
            options["user"], options["password"] = self.user, self.password
        if self.tls_ca or self.tls_cert:
            try:
                context = ssl.create_default_context(cafile=self.tls_ca or None)
                if self.tls_cert:
                    context.load_cert_chain(self.tls_cert, self.tls_key)
            except OSError as exc:  # ssl.SSLError is an OSError too
                raise OSError(f"nats_tls_ca/nats_tls_cert/nats_tls_key: {exc}") from None
            options["tls"] = context
        return options


class Bus:
    """A NATS connection with its JetStream context, KV buckets and object store."""

    def __init__(self, nc: NatsClient, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self._kv: dict[str, KeyValue] = {}
        self._objects: ObjectStore | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        connect_timeout_s: float = 5.0,
        token: str = "",
        auth: NatsAuth | None = None,
    ) -> Bus:
        """Connect, retrying the first connection for up to `connect_timeout_s`; ``token`` is the
        server's token when it requires one (a URL may carry it too: ``nats://TOKEN@host:port``),
        ``auth`` any other credential and the TLS files."""
        options = (auth or NatsAuth(token=token)).connect_options()
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                nc = await nats.connect(
                    url,
                    name=name,
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    **options,
                )
                break
            except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)
        bus = cls(nc, nc.jetstream(timeout=10))
        await bus.ensure_topology()
        return bus

    async def ensure_topology(self) -> None:
        """Create the streams, buckets and object store when missing (idempotent)."""
        streams = [
            StreamConfig(
                name=subjects.WORK_STREAM,
                subjects=["ucoder.work.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            ),
            StreamConfig(
                name=subjects.RESULTS_STREAM,
                subjects=["ucoder.results.>"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            ),
            StreamConfig(
                name=subjects.EVENTS_STREAM,
                subjects=["ucoder.events.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=7 * 24 * 3600.0,
                discard=DiscardPolicy.OLD,
            ),
            StreamConfig(
                name=subjects.DLQ_STREAM,
                subjects=["ucoder.dlq.>"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=30 * 24 * 3600.0,
            ),
        ]
        for config in streams:
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)
        for bucket in (subjects.ITERATIONS_BUCKET, subjects.MODELS_BUCKET):
            self._kv[bucket] = await self.js.create_key_value(bucket=bucket, history=5)
        self._objects = await self.js.create_object_store(bucket=subjects.ARTIFACTS_BUCKET)

    def kv(self, bucket: str) -> KeyValue:
        return self._kv[bucket]

    async def kv_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """The keys of a KV bucket that start with `prefix`, sorted (deleted ones included: their
        value reads as None).

        From the bucket stream's per-subject state, one request. nats-py's ``KeyValue.keys()``
        watches the bucket and can stop at its end-of-data marker before the entries already in
        flight were counted; under load it returned no keys at all, and the orchestrator then let
        a second iteration start beside a running one.
        """
        stream_prefix = f"$KV.{bucket}."
        info = await self.js.stream_info(f"KV_{bucket}", subjects_filter=f"{stream_prefix}{prefix}>")
        subjects_seen = info.state.subjects or {}
        return sorted(s.removeprefix(stream_prefix) for s in subjects_seen)

    async def iteration_ended(self, iteration_id: str) -> bool:
        """Whether the orchestrator has recorded ``iteration_id`` as ended (completed, failed,
        cancelled). An unknown iteration, or a bus whose topology is not bound, counts as not ended."""
        kv = self._kv.get(subjects.ITERATIONS_BUCKET)
        if kv is None:
            return False
        raw = await kv_get(kv, subjects.iteration_key(iteration_id))
        if raw is None:
            return False
        try:
            phase = orchestrator_pb2.Iteration.FromString(raw).phase
        except DecodeError:
            return False
        return phase in TERMINAL_PHASES

    @property
    def objects(self) -> ObjectStore:
        assert self._objects is not None, "ensure_topology() not called"
        return self._objects

    async def publish(self, subject: str, message: Message, msg_id: str) -> None:
        """Publish a protobuf message to JetStream, deduplicated by `msg_id`."""
        await self.js.publish(subject, message.SerializeToString(), headers={MSG_ID_HEADER: msg_id})

    async def close(self, timeout_s: float = 5.0) -> None:
        """Drain (deliver what is buffered, flush publishes), then close; bounded in time."""
        try:
            await asyncio.wait_for(self.nc.drain(), timeout_s)
        except Exception:
            log.warning("NATS drain did not finish; closing", extra={"timeout_s": timeout_s})
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.close()


BACKLOG_POLL_S = 5.0
"""How often a worker reads its consumer's backlog for the queue gauges."""

RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)


class JetStreamWorker(abc.ABC):
    """Pulls jobs of one stage from its durable consumer and handles `concurrency` at a time."""

    def __init__(
        self,
        bus: Bus,
        stage: str,
        *,
        concurrency: int = 1,
        ack_wait_s: float = 60.0,
        max_deliver: int = 5,
        base_delay_s: float = 1.0,
        subject: str | None = None,
        stream: str = subjects.WORK_STREAM,
        durable: str | None = None,
    ) -> None:
        self.bus = bus
        self.stage = stage
        self.subject = subject or subjects.work_subject(stage)
        self.stream = stream
        self.durable = durable or stage
        self.concurrency = concurrency
        self.ack_wait_s = ack_wait_s
        self.max_deliver = max_deliver
        self.base_delay_s = base_delay_s
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._backlog_task: asyncio.Task[None] | None = None
        self._metrics = metrics.worker_metrics(stage)

    @abc.abstractmethod
    async def handle(self, msg: Msg) -> None:
        """Process one job. Raise Retry for transient failures, Reject for poison."""

    async def on_dead_letter(self, msg: Msg, reason: str) -> None:  # noqa: B027 - optional hook
        """Called before a job is dead-lettered (e.g. to record the failure downstream)."""

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            filter_subject=self.subject,
            max_ack_pending=max(self.concurrency * 4, 16),
        )
        # add_consumer creates or updates: a durable that already exists (a persistent local
        # store, a redeploy) takes the current settings, e.g. a changed ack_wait.
        await self.bus.js.add_consumer(self.stream, config)
        self._sub = await self.bus.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker-{self.stage}")
        self._backlog_task = asyncio.create_task(self._watch_backlog(), name=f"backlog-{self.stage}")

    async def _watch_backlog(self) -> None:
        """Publishes the shared consumer's backlog as gauges (what autoscaling and dashboards read)."""
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                info = await self.bus.js.consumer_info(self.stream, self.durable)
                self._metrics.backlog.set(info.num_pending or 0)
                self._metrics.in_flight.set(info.num_ack_pending or 0)
            await asyncio.sleep(BACKLOG_POLL_S)

    async def stop(self, grace_s: float) -> None:
        """Stop fetching; give in-flight jobs `grace_s` to finish (the rest are redelivered)."""
        self._stopping.set()
        if self._backlog_task is not None:
            self._backlog_task.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                msgs = await self._sub.fetch(batch=free, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nothing to do yet
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                await asyncio.sleep(0.5)
                continue
            except Exception:
                log.exception("fetch failed", extra={"stage": self.stage})
                await asyncio.sleep(1.0)
                continue
            for msg in msgs:
                task = asyncio.create_task(self._run_one(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self.ack_wait_s / 3)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _run_one(self, msg: Msg) -> None:
        attempt = msg.metadata.num_delivered
        started = time.monotonic()
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        outcome = "ok"
        try:
            await self.handle(msg)
            await msg.ack()
        except Skip as exc:
            outcome = "skipped"
            log.info("job skipped", extra={"stage": self.stage, "reason": str(exc)})
            await msg.ack()
        except Reject as exc:
            outcome = "rejected"
            await self._dead_letter(msg, f"rejected: {exc}")
        except asyncio.CancelledError:
            outcome = "cancelled"
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_deliver:
                outcome = "dead_letter"
                log.error("job failed on its last delivery", extra={"stage": self.stage, "reason": reason})
                await self._dead_letter(msg, f"failed {attempt} times, last: {reason}")
            else:
                outcome = "retry"
                delay = self.base_delay_s * 2 ** (attempt - 1)
                log.warning(
                    "job failed, will retry",
                    extra={"stage": self.stage, "attempt": attempt, "delay_s": delay, "reason": reason},
                    exc_info=not isinstance(exc, Retry),
                )
                with contextlib.suppress(Exception):
                    await msg.nak(delay=delay)
        finally:
            heartbeat.cancel()
            self._metrics.jobs.labels(outcome=outcome).inc()
            self._metrics.seconds.observe(time.monotonic() - started)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        try:
            await self.on_dead_letter(msg, reason)
        except Exception:
            log.exception("dead-letter hook failed", extra={"stage": self.stage})
        headers = dict(msg.headers or {})
        headers["Ucoder-Error"] = reason[:1000]
        headers["Ucoder-Subject"] = msg.subject
        headers.pop(MSG_ID_HEADER, None)
        try:
            await self.bus.js.publish(subjects.dlq_subject(self.stage), msg.data, headers=headers)
        finally:
            with contextlib.suppress(Exception):
                await msg.term()


def _set_if_present(message: Message, name: str, value: Any) -> None:
    if name in message.DESCRIPTOR.fields_by_name:
        setattr(message, name, value)


class StageWorker(JetStreamWorker, Generic[RequestT, ResponseT]):
    """A worker whose job is a request proto and whose answer is a response proto.

    The response is published on `ucoder.results.<stage>` with the job's message id,
    so a redelivered job that had already answered is not answered twice. A job that
    fails for good still answers, with `error` set, so the caller records the failure.
    """

    request_type: type[RequestT]
    response_type: type[ResponseT]

    def __init__(self, bus: Bus, stage: str, process: Callable[[RequestT], Awaitable[ResponseT]], **kw: Any):
        super().__init__(bus, stage, **kw)
        self._process = process

    def _decode(self, msg: Msg) -> RequestT:
        request = self.request_type()
        try:
            request.ParseFromString(msg.data)
        except DecodeError as exc:
            raise Reject(f"payload is not a {self.request_type.DESCRIPTOR.full_name}: {exc}") from exc
        return request

    def _msg_id(self, msg: Msg) -> str:
        job_id = (msg.headers or {}).get(MSG_ID_HEADER) or f"seq-{msg.metadata.sequence.stream}"
        return f"{self.stage}-result:{job_id}"

    async def handle(self, msg: Msg) -> None:
        request = self._decode(msg)
        # A cancelled (or otherwise ended) iteration's queued jobs would keep the stage busy for
        # nothing, e.g. the jobs a restarted orchestrator re-dispatched for an iteration that
        # `ucoder iterate --replace` then cancelled.
        iteration_id = getattr(request, "iteration_id", "")
        # Every stage job belongs to an iteration: an empty payload decodes as a default job with
        # none, and an id that is not a KV key can never be looked up; neither is worth running.
        if "iteration_id" in request.DESCRIPTOR.fields_by_name and (problem := id_problem(iteration_id)):
            raise Reject(f"iteration_id: {problem}")
        if iteration_id and await self.bus.iteration_ended(iteration_id):
            raise Skip(f"iteration {iteration_id} has ended")
        try:
            response = await self._process(request)
        except (InvalidArgument, DeadlineExceeded) as exc:  # the same again on every delivery
            raise Reject(str(exc)) from exc
        await self.bus.publish(subjects.result_subject(self.stage), response, self._msg_id(msg))

    async def on_dead_letter(self, msg: Msg, reason: str) -> None:
        response = self.response_type()
        try:
            request = self._decode(msg)
        except Reject:
            return  # nothing to answer: we do not even know which iteration it was for
        _set_if_present(response, "iteration_id", getattr(request, "iteration_id", ""))
        problem = getattr(request, "problem", None)
        problem_id = getattr(request, "problem_id", "") or getattr(problem, "problem_id", "")
        _set_if_present(response, "problem_id", problem_id)
        _set_if_present(response, "error", reason)
        await self.bus.publish(subjects.result_subject(self.stage), response, self._msg_id(msg))


def stage_worker(
    bus: Bus,
    stage: str,
    request_type: type[RequestT],
    response_type: type[ResponseT],
    process: Callable[[RequestT], Awaitable[ResponseT]],
    **kw: Any,
) -> StageWorker[RequestT, ResponseT]:
    """A StageWorker for `process`, decoding `request_type` and answering `response_type`."""
    worker: StageWorker[RequestT, ResponseT] = StageWorker(bus, stage, process, **kw)
    worker.request_type = request_type
    worker.response_type = response_type
    return worker


async def kv_get(kv: KeyValue, key: str) -> bytes | None:
    """The value of `key`, or None when it is missing or deleted."""
    try:
        entry = await kv.get(key)
    except (NotFoundError, nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
        return None
    return entry.value
