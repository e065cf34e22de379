"""The orchestrator process over real gRPC and a real nats-server (no model needed).

Only nats-server and the orchestrator run, so a started iteration waits for problem
generation; that is enough to exercise validation, listing, watching and cancelling.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ucoder_common import grpc_auth, grpc_health, subjects
from ucoder_common.bus import Bus
from ucoder_common.grpc_auth import ClientAuth
from ucoder_common.localstack import StackInfo, StackPaths, start_stack, stop_stack
from ucoder_common.pb import orchestrator_pb2, orchestrator_pb2_grpc, sampler_pb2


@pytest.fixture(scope="module")
def orchestrator_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    paths = StackPaths(tmp_path_factory.mktemp("orchestrator-home"))
    info = start_stack(paths, services=("orchestrator",), timeout_s=60)
    try:
        yield info
    finally:
        stop_stack(paths)


@pytest.fixture(scope="module")
def stub(orchestrator_stack: StackInfo) -> Iterator[orchestrator_pb2_grpc.OrchestratorServiceStub]:
    with orchestrator_stack.channel("orchestrator") as channel:
        yield orchestrator_pb2_grpc.OrchestratorServiceStub(channel)


@pytest.fixture
def orchestrator_nats(orchestrator_stack: StackInfo) -> str:
    return orchestrator_stack.nats_url


LIST = orchestrator_pb2.ListIterationsRequest()


def spec(**overrides: object) -> orchestrator_pb2.IterationSpec:
    fields: dict[str, object] = {"num_problems": 2, "tests_per_problem": 4, "samples_per_problem": 4}
    fields.update(overrides)
    return orchestrator_pb2.IterationSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"num_problems": 0}, "spec.num_problems"),
        ({"num_problems": -1}, "spec.num_problems"),
        ({"tests_per_problem": 0}, "spec.tests_per_problem"),
        ({"samples_per_problem": -5}, "spec.samples_per_problem"),
        ({"samples_per_problem": 5000}, "spec.samples_per_problem"),
        ({"rho": 1.5}, "spec.rho"),
        ({"tau": 9}, "spec.tau"),
        ({"temperature": 3.0}, "spec.temperature"),
        ({"model": "/no/such/model"}, "spec.model"),
    ],
)
def test_invalid_spec_is_rejected_naming_the_field(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, overrides: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec(**overrides)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(field)


def test_invalid_evaluation_is_rejected_naming_the_field(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    bad = spec(evaluation=orchestrator_pb2.EvalSpec(problems=500))
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=bad))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("spec.evaluation.problems")
    for request, code, field in (
        (
            orchestrator_pb2.EvaluateRequest(spec={"samples": -1}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "spec.samples",
        ),
        (
            orchestrator_pb2.EvaluateRequest(model_version=-3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "model_version",
        ),
        (orchestrator_pb2.EvaluateRequest(model_version=7), grpc.StatusCode.NOT_FOUND, "model_version"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Evaluate(request, timeout=30))
        assert caught.value.code() == code, request
        assert (caught.value.details() or "").startswith(field), caught.value.details()


def test_evaluate_without_a_sampler_is_unavailable(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub,
) -> None:
    # Only the orchestrator runs; the stream first reports the planned size, then fails.
    stream = stub.Evaluate(orchestrator_pb2.EvaluateRequest(spec={"problems": 3}), timeout=120)
    first = next(stream)
    assert (first.model_version, first.done, first.total) == (0, 0, 3)
    with pytest.raises(grpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "sampler" in (caught.value.details() or "").lower()


def test_model_directory_without_config_is_rejected(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, tmp_path: Path
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec(model=str(tmp_path))))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.model" in (caught.value.details() or "")


def test_unknown_iteration_is_not_found(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> None:
    for call, request in (
        (stub.GetIteration, orchestrator_pb2.GetIterationRequest(iteration_id="20990101-000000-ffffff")),
        (stub.CancelIteration, orchestrator_pb2.CancelIterationRequest(iteration_id="nope")),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "iteration_id" in (caught.value.details() or "")
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id="nope")))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetIteration(orchestrator_pb2.GetIterationRequest(iteration_id=""))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_start_list_watch_cancel(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> None:
    started = stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec()))
    assert started.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING
    assert started.spec.rho == pytest.approx(0.8) and started.spec.tau == 2  # defaults filled in
    # One iteration at a time.
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec()))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert started.iteration_id in (caught.value.details() or "")

    listed = stub.ListIterations(orchestrator_pb2.ListIterationsRequest()).iterations
    assert started.iteration_id in [it.iteration_id for it in listed]

    watch = stub.WatchIteration(
        orchestrator_pb2.WatchIterationRequest(iteration_id=started.iteration_id), timeout=30
    )
    first = next(watch)
    assert (
        first.stage == orchestrator_pb2.STAGE_PROBLEMS
        and first.phase == orchestrator_pb2.ITERATION_PHASE_RUNNING
    )

    cancelled = stub.CancelIteration(
        orchestrator_pb2.CancelIterationRequest(iteration_id=started.iteration_id)
    )
    assert cancelled.phase == orchestrator_pb2.ITERATION_PHASE_CANCELLED
    rest = list(watch)  # the stream ends after the terminal event
    assert rest and rest[-1].phase == orchestrator_pb2.ITERATION_PHASE_CANCELLED

    stored = stub.GetIteration(orchestrator_pb2.GetIterationRequest(iteration_id=started.iteration_id))
    assert stored.phase == orchestrator_pb2.ITERATION_PHASE_CANCELLED and stored.finished_unix_ms > 0
    with pytest.raises(grpc.RpcError) as caught:
        stub.CancelIteration(orchestrator_pb2.CancelIterationRequest(iteration_id=started.iteration_id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # A watch of an ended iteration replays its events and ends.
    replay = list(
        stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id=started.iteration_id))
    )
    assert replay[-1].phase == orchestrator_pb2.ITERATION_PHASE_CANCELLED


HOSTILE_IDS = ["é", "a.b", "it.>", "x" * 129, "x" * (1 << 20)]


@pytest.mark.parametrize("iteration_id", HOSTILE_IDS, ids=["non-ascii", "dot", "wildcard", "129", "1MiB"])
def test_hostile_iteration_ids_are_invalid_argument(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, iteration_id: str
) -> None:
    # Found from outside: a non-ASCII id was a KV InvalidKeyError (INTERNAL); a 1 MiB one echoed
    # whole into the message reached the client as RESOURCE_EXHAUSTED.
    calls = (
        lambda: stub.GetIteration(orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id)),
        lambda: stub.CancelIteration(orchestrator_pb2.CancelIterationRequest(iteration_id=iteration_id)),
        lambda: list(stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id=iteration_id))),
        lambda: stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id=iteration_id)),
    )
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        details = caught.value.details() or ""
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details[:200]
        assert details.startswith("iteration_id: must be at most 128 ASCII letters"), details[:200]
        assert len(details) < 200


@pytest.mark.parametrize("model", ["🦀" * 300, "m" * 5000, "a\0b"], ids=["emoji", "5000", "nul"])
def test_a_model_path_the_os_refuses_is_invalid_argument(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, model: str
) -> None:
    # Found from outside: ENAMETOOLONG from Path.is_file came back as INTERNAL.
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec(model=model)))
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("spec.model: no Hugging Face model directory") and len(details) < 200


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xff not a proto",
        sampler_pb2.SampleCandidatesResponse(iteration_id="é", problem_id="p1").SerializeToString(),
        sampler_pb2.SampleCandidatesResponse(problem_id="p1").SerializeToString(),
        sampler_pb2.SampleCandidatesResponse(iteration_id="it-1", problem_id="p.*").SerializeToString(),
    ],
    ids=["garbage", "non-ascii-iteration", "no-iteration", "wildcard-problem"],
)
async def test_garbage_answers_are_dead_lettered_at_once(orchestrator_nats: str, payload: bytes) -> None:
    # Found from outside: such answers were retried with backoff for ~8.5 minutes (max_deliver 10)
    # before reaching the dead-letter stream; a work subject's garbage goes there at once.
    bus = await Bus.connect(orchestrator_nats, name="ucoder-test-garbage")
    try:
        marker = uuid.uuid4().hex
        dlq = await bus.js.pull_subscribe(subjects.dlq_subject("orchestrator"), durable="dlq-" + marker[:8])
        await bus.js.publish(
            subjects.result_subject("sampler"), payload, headers={"Nats-Msg-Id": "garbage-" + marker}
        )
        deadline = asyncio.get_running_loop().time() + 10.0
        while True:
            assert asyncio.get_running_loop().time() < deadline, "not dead-lettered within 10 s"
            try:
                msgs = await dlq.fetch(10, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
            if any(msg.data == payload for msg in msgs):
                break
        await dlq.unsubscribe()
    finally:
        await bus.close()


async def test_the_local_nats_refuses_a_client_without_the_stack_token(orchestrator_stack: StackInfo) -> None:
    # Found from outside (issue 15): NATS was open, and a local process's forged sampler answer
    # became the selected training example.
    info = orchestrator_stack
    assert info.nats_token and info.nats_token in info.nats_url
    assert info.nats_token not in info.nats_address
    forged = sampler_pb2.SampleCandidatesResponse(iteration_id="it-1", problem_id="p1").SerializeToString()
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        errors.append(exc)

    for url in (info.nats_address, info.nats_url.replace(info.nats_token, "guessed-token")):
        with pytest.raises(Exception) as caught:  # nats-py raises several types for one refusal
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=3, error_cb=record)
            await nc.publish(subjects.result_subject("sampler"), forged)
        assert "authorization" in f"{caught.value} {errors}".lower(), (caught.value, errors)
    bus = await Bus.connect(info.nats_url, name="ucoder-test-token")  # the stack's own clients get in
    await bus.close()


def test_the_token_is_in_no_command_line_and_no_world_readable_file(orchestrator_stack: StackInfo) -> None:
    info = orchestrator_stack
    for name in ("orchestrator",):
        cmdline = Path(f"/proc/{info.services[name].pid}/cmdline").read_bytes()
        assert info.nats_token.encode() not in cmdline
        assert info.grpc_token.encode() not in cmdline
    assert info.nats_token.encode() not in Path(f"/proc/{info.nats.pid}/cmdline").read_bytes()
    home = Path(info.home)
    for private in (home / "stack.json", home / "nats.conf"):
        assert info.nats_token in private.read_text()
        assert private.stat().st_mode & 0o077 == 0, oct(private.stat().st_mode)
    assert info.grpc_token in (home / "stack.json").read_text()
    assert info.grpc_token != info.nats_token  # a gRPC client needs no access to NATS


def guarded_calls(stub: orchestrator_pb2_grpc.OrchestratorServiceStub) -> list[Callable[[], object]]:
    """Reading, starting, cancelling and a server stream: all refused without the token."""
    cancel = orchestrator_pb2.CancelIterationRequest(iteration_id="20990101-000000-ffffff")
    return [
        lambda: stub.ListIterations(LIST, timeout=10),
        lambda: stub.StartIteration(orchestrator_pb2.StartIterationRequest(spec=spec()), timeout=10),
        lambda: stub.CancelIteration(cancel, timeout=10),
        lambda: list(
            stub.WatchIteration(orchestrator_pb2.WatchIterationRequest(iteration_id="x"), timeout=10)
        ),
        lambda: stub.GetReport(orchestrator_pb2.GetReportRequest(iteration_id="x"), timeout=10),
    ]


def test_the_api_refuses_a_caller_without_the_stack_token(orchestrator_stack: StackInfo) -> None:
    # Found from outside (issue 15): any local process could call StartIteration, CancelIteration
    # or Train. Every call but health now needs the stack's token.
    info = orchestrator_stack
    address = info.orchestrator_address
    assert info.grpc_token
    with info.channel("orchestrator") as channel:
        before = len(orchestrator_pb2_grpc.OrchestratorServiceStub(channel).ListIterations(LIST).iterations)
    for auth, reason in (
        (ClientAuth(), "requires a token"),
        (ClientAuth(token="guessed-token"), "wrong token"),
    ):
        with grpc_auth.channel(address, auth) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            for call in guarded_calls(stub):
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
                assert reason in (caught.value.details() or "")
            # Health stays open: probes, `ucoder status` and the helm test carry no token.
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # The wire format any client can send (grpcurl -H 'authorization: Bearer ...').
    with grpc.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        listed = stub.ListIterations(
            LIST, metadata=[("authorization", f"Bearer {info.grpc_token}")], timeout=10
        )
    assert len(listed.iterations) == before  # the refused StartIteration started nothing
    assert grpc_health.check(address, 5.0)[0] == "SERVING"


async def test_an_asyncio_channel_sends_the_token_on_every_kind_of_call(
    orchestrator_stack: StackInfo,
) -> None:
    # grpc.aio files a client interceptor under one kind of call only: unary and server-stream
    # calls must both carry the token.
    channel = orchestrator_stack.aio_channel("orchestrator")
    try:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        await stub.ListIterations(LIST, timeout=10)
        watch = stub.WatchIteration(
            orchestrator_pb2.WatchIterationRequest(iteration_id="20990101-000000-ffffff"), timeout=10
        )
        with pytest.raises(grpc.RpcError) as caught:
            _ = [event async for event in watch]
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # past the token check
    finally:
        await channel.close()
