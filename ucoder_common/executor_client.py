"""Candidates run by the executor service over NATS request/reply (for HumanEval evaluation).

:class:`NatsRunner` is a :class:`ucoder_common.evaluation.CandidateRunner` backed by the executor's
``ucoder.rpc.executor.execute`` endpoint (queue group "executor"): a problem's candidates go out as
several ExecuteRequests at once, so several executor replicas share one problem, each request
small enough for NATS's default 1 MB max payload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient

from ucoder_common import subjects
from ucoder_common.pb import common_pb2, executor_pb2

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 16
DEFAULT_MAX_REQUEST_BYTES = 256 * 1024
"""Largest serialized ExecuteRequest sent (well under NATS's default 1 MB max payload)."""

KIND_NAMES: dict[int, str] = {
    common_pb2.OUTCOME_KIND_RETURNED: "returned",
    common_pb2.OUTCOME_KIND_RAISED: "raised",
    common_pb2.OUTCOME_KIND_TIMEOUT: "timeout",
    common_pb2.OUTCOME_KIND_MEMORY: "memory",
    common_pb2.OUTCOME_KIND_OUTPUT_LIMIT: "output_limit",
    common_pb2.OUTCOME_KIND_COMPILE_ERROR: "compile_error",
    common_pb2.OUTCOME_KIND_CRASHED: "crashed",
}
"""Proto OutcomeKind -> the sandbox's kind names (the inverse of ``services.executor.app.KINDS``)."""

# Errors the executor reports for failures that another try (maybe on another replica) can fix.
_TRANSIENT_PREFIXES = ("Retry:", "Unavailable:")


class ExecutorError(RuntimeError):
    """The executor refused or failed a request; the message is its ``error`` text."""


class ExecutorUnavailable(ExecutorError):
    """No executor answered (no responders, timeouts) or it kept failing transiently, after retries."""


@dataclass(frozen=True)
class Outcome:
    """One test's outcome as :class:`ucoder_common.evaluation.ExecutionOutcome` reads it."""

    kind: str
    """returned | raised | timeout | memory | output_limit | compile_error | crashed | unspecified"""
    value_digest: str = ""
    exception_type: str = ""
    value_repr: str = ""
    duration_ms: float = 0.0


def outcome_from_proto(outcome: common_pb2.TestOutcome) -> Outcome:
    return Outcome(
        kind=KIND_NAMES.get(outcome.kind, "unspecified"),
        value_digest=outcome.value_digest,
        exception_type=outcome.exception_type,
        value_repr=outcome.value_repr,
        duration_ms=outcome.duration_ms,
    )


def split_candidates(
    candidates: Sequence[common_pb2.Candidate], chunk: int, max_candidate_bytes: int
) -> list[list[common_pb2.Candidate]]:
    """Consecutive groups of at most ``chunk`` candidates whose serialized sizes (as repeated
    fields of a request) add up to at most ``max_candidate_bytes``. A candidate too big alone
    raises ValueError."""
    groups: list[list[common_pb2.Candidate]] = []
    group: list[common_pb2.Candidate] = []
    size = 0
    for index, candidate in enumerate(candidates):
        # Tag + length prefix + body: exactly what the candidate adds to a request.
        item = executor_pb2.ExecuteRequest(candidates=[candidate]).ByteSize()
        if item > max_candidate_bytes:
            raise ValueError(
                f"candidate {index} is {item} bytes serialized, over the {max_candidate_bytes} bytes "
                "a request may carry"
            )
        if group and (len(group) >= chunk or size + item > max_candidate_bytes):
            groups.append(group)
            group, size = [], 0
        group.append(candidate)
        size += item
    if group:
        groups.append(group)
    return groups


class NatsRunner:
    """Runs one problem's candidates on the executor service over NATS request/reply.

    ``run_many`` sends the candidates in requests of at most ``chunk`` candidates and at most
    ``max_request_bytes`` serialized, all at once. A request that finds no executor (no
    responders) or gets no answer within ``request_timeout_s`` is retried ``attempts`` times in all,
    waiting ``backoff_s``, doubling, in between; then :class:`ExecutorUnavailable` is raised. An
    answer with ``error`` set raises :class:`ExecutorError` with that text (transient ones,
    ``Retry: ...``, are retried first). A failing request cancels the others of the call.
    """

    def __init__(
        self,
        nc: NatsClient,
        chunk: int = DEFAULT_CHUNK,
        request_timeout_s: float = 600.0,
        attempts: int = 4,
        backoff_s: float = 1.0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        memory_limit_mb: int = 0,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk: must be >= 1, got {chunk}")
        if not request_timeout_s > 0:
            raise ValueError(f"request_timeout_s: must be > 0, got {request_timeout_s}")
        if attempts < 1:
            raise ValueError(f"attempts: must be >= 1, got {attempts}")
        if not backoff_s >= 0:
            raise ValueError(f"backoff_s: must be >= 0, got {backoff_s}")
        if not 4096 <= max_request_bytes <= 1024 * 1024:
            raise ValueError(f"max_request_bytes: must be in 4096..1048576, got {max_request_bytes}")
        self.nc = nc
        self.chunk = chunk
        self.request_timeout_s = request_timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_request_bytes = max_request_bytes
        self.memory_limit_mb = memory_limit_mb

    def requests(
        self, codes: Sequence[str], entry_point: str, inputs: Sequence[str], timeout_s: float | None
    ) -> list[executor_pb2.ExecuteRequest]:
        """The ExecuteRequests ``run_many`` sends, in order; candidate ids are ``c<index>``."""
        base = executor_pb2.ExecuteRequest(
            entry_point=entry_point,
            tests=[common_pb2.TestCase(test_id=f"t{i}", args_literal=a) for i, a in enumerate(inputs)],
            timeout_per_test_s=timeout_s or 0.0,
            memory_limit_mb=self.memory_limit_mb,
        )
        room = self.max_request_bytes - base.ByteSize()
        if room <= 0:
            raise ValueError(
                f"inputs: {base.ByteSize()} bytes serialized leave no room for candidates "
                f"within {self.max_request_bytes} bytes"
            )
        candidates = [common_pb2.Candidate(candidate_id=f"c{i}", code=code) for i, code in enumerate(codes)]
        requests = []
        for group in split_candidates(candidates, self.chunk, room):
            request = executor_pb2.ExecuteRequest()
            request.CopyFrom(base)
            request.candidates.extend(group)
            requests.append(request)
        return requests

    async def request(self, request: executor_pb2.ExecuteRequest) -> executor_pb2.ExecuteResponse:
        """One ExecuteRequest answered, with the retries described on the class."""
        data = request.SerializeToString()
        delay = self.backoff_s
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                reply = await self.nc.request(subjects.EXECUTOR_EXECUTE, data, timeout=self.request_timeout_s)
            except nats.errors.NoRespondersError:
                last = "no executor is serving"
            except nats.errors.TimeoutError:
                last = f"no executor answered within {self.request_timeout_s:g} s"
            else:
                response = executor_pb2.ExecuteResponse.FromString(reply.data)
                if not response.error:
                    return response
                if not response.error.startswith(_TRANSIENT_PREFIXES):
                    raise ExecutorError(f"executor: {response.error}")
                last = f"executor: {response.error}"
            if attempt < self.attempts:
                log.warning(
                    "execute request failed, retrying",
                    extra={"attempt": attempt, "error": last, "retry_in_s": delay},
                )
                await asyncio.sleep(delay)
                delay *= 2
        raise ExecutorUnavailable(f"{last} (after {self.attempts} attempts)")

    async def run_many(
        self,
        codes: list[str],
        entry_point: str,
        inputs: list[str],
        timeout_s: float | None = None,
    ) -> list[list[Outcome]]:
        """Each candidate's outcome on each input, in order (see the class)."""
        if not codes:
            return []
        requests = self.requests(codes, entry_point, inputs, timeout_s)
        tasks = [asyncio.ensure_future(self.request(r)) for r in requests]
        try:
            responses = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        results: list[list[Outcome]] = []
        for request, response in zip(requests, responses, strict=True):
            sent = [c.candidate_id for c in request.candidates]
            got = [r.candidate_id for r in response.results]
            if got != sent or any(len(r.outcomes) != len(inputs) for r in response.results):
                raise ExecutorError(
                    f"executor answered for candidates {got[:3]}... with the wrong shape "
                    f"(sent {len(sent)} candidates x {len(inputs)} inputs)"
                )
            results.extend([outcome_from_proto(o) for o in r.outcomes] for r in response.results)
        return results
