"""Deployment checks: every service healthy, and a round trip through NATS.

`helm test` runs these in pods (see charts/ucoder/templates/tests/); anyone can run them
against a local stack too:

    python -m ucoder_common.checks health HOST:PORT [HOST:PORT ...]
    python -m ucoder_common.checks nats-roundtrip --nats-url nats://HOST:4222

The round trip presents the NATS credential and TLS files the services would, from the same
environment (UCODER_NATS_TOKEN or UCODER_NATS_USER/PASSWORD, UCODER_NATS_TLS_CA, ...). Each
prints one line per check and exits 0 when all pass, 1 otherwise (2 for a malformed setting).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import nats

from ucoder_common import grpc_health, subjects
from ucoder_common.bus import NatsAuth
from ucoder_common.config import ConfigError, ServiceConfig, load_config
from ucoder_common.pb import common_pb2, executor_pb2

# The program the round trip runs: the executor must return 3 for add(1, 2).
ROUNDTRIP_CODE = "def add(a, b):\n    return a + b\n"
ROUNDTRIP_TEST = common_pb2.TestCase(test_id="t0", args_literal="(1, 2)", expected_literal="3")


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def health_check(address: str, timeout_s: float, wait_s: float = 0.0) -> CheckResult:
    """grpc.health.v1 Check of the whole server at `address`, retried until SERVING or `wait_s` passes."""
    deadline = time.monotonic() + wait_s
    while True:
        status, detail = grpc_health.check(address, timeout_s)
        if status == "SERVING" or time.monotonic() >= deadline:
            return CheckResult(f"health {address}", status == "SERVING", detail)
        time.sleep(1.0)


def roundtrip_request() -> executor_pb2.ExecuteRequest:
    return executor_pb2.ExecuteRequest(
        problem_id="helm-test-roundtrip",
        entry_point="add",
        candidates=[common_pb2.Candidate(candidate_id="c0", code=ROUNDTRIP_CODE)],
        tests=[ROUNDTRIP_TEST],
    )


def judge_roundtrip(reply: executor_pb2.ExecuteResponse) -> CheckResult:
    """Whether the executor's answer to `roundtrip_request` is right (pure, for tests)."""
    name = "nats round trip to the executor"
    if reply.error:
        return CheckResult(name, False, f"executor refused: {reply.error}")
    if len(reply.results) != 1 or len(reply.results[0].outcomes) != 1:
        return CheckResult(name, False, "answer has the wrong shape (want one candidate, one test)")
    outcome = reply.results[0].outcomes[0]
    if outcome.kind != common_pb2.OUTCOME_KIND_RETURNED or not outcome.passed:
        kind = common_pb2.OutcomeKind.Name(outcome.kind)
        got = outcome.value_repr or outcome.exception_type
        return CheckResult(name, False, f"add(1, 2) gave {kind} {got}")
    return CheckResult(name, True, f"add(1, 2) == 3 on backend {reply.backend or '?'}")


async def nats_roundtrip(nats_url: str, timeout_s: float, auth: NatsAuth | None = None) -> CheckResult:
    """Send one tiny program to the executor over NATS request/reply and check its answer."""
    name = "nats round trip to the executor"
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:  # instead of the client's traceback on stderr
        errors.append(exc)

    try:
        # The client retries an unreachable server forever unless told not to; the wait_for bounds
        # what is left.
        nc = await asyncio.wait_for(
            nats.connect(
                nats_url,
                connect_timeout=min(timeout_s, 5.0),
                allow_reconnect=False,
                error_cb=record,
                **(auth or NatsAuth()).connect_options(),
            ),
            timeout=timeout_s,
        )
    except Exception as exc:  # the NATS client raises several unrelated types
        cause = errors[-1] if errors else exc
        return CheckResult(name, False, f"cannot connect to {nats_url}: {cause or type(cause).__name__}")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                msg = await nc.request(
                    subjects.EXECUTOR_EXECUTE,
                    roundtrip_request().SerializeToString(),
                    timeout=max(1.0, deadline - time.monotonic()),
                )
                break
            except nats.errors.NoRespondersError:
                # An executor that is still starting has not subscribed yet.
                if time.monotonic() >= deadline:
                    return CheckResult(name, False, "no executor answers on the NATS subject")
                await asyncio.sleep(1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                return CheckResult(name, False, f"no answer within {timeout_s:g} s")
        reply = executor_pb2.ExecuteResponse()
        reply.ParseFromString(msg.data)
        return judge_roundtrip(reply)
    finally:
        await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ucoder_common.checks", description="Deployment checks (health, NATS round trip)."
    )
    sub = parser.add_subparsers(dest="check", required=True)
    health = sub.add_parser("health", help="grpc.health.v1 of each HOST:PORT")
    health.add_argument("addresses", nargs="+", metavar="HOST:PORT")
    health.add_argument("--timeout", type=float, default=5.0, help="seconds per Check call")
    health.add_argument("--wait", type=float, default=0.0, help="seconds to keep retrying until SERVING")
    roundtrip = sub.add_parser("nats-roundtrip", help="run add(1, 2) on the executor through NATS")
    roundtrip.add_argument("--nats-url", required=True)
    roundtrip.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole round trip")
    args = parser.parse_args(argv)

    if args.check == "health":
        results = [health_check(a, args.timeout, args.wait) for a in args.addresses]
    else:
        try:
            auth = NatsAuth.from_config(load_config(ServiceConfig, "checks", []))
        except ConfigError as exc:
            print(f"FAIL settings: {exc}", flush=True)
            return 2
        results = [asyncio.run(nats_roundtrip(args.nats_url, args.timeout, auth))]
    for result in results:
        print(result.line(), flush=True)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
