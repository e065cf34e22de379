"""The orchestrator process over real gRPC and a real nats-server (no model needed).

Only nats-server and the orchestrator run, so a started iteration waits for problem
generation; that is enough to exercise validation, listing, watching and cancelling.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from ucoder_common.localstack import StackPaths, start_stack, stop_stack
from ucoder_common.pb import orchestrator_pb2, orchestrator_pb2_grpc


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[orchestrator_pb2_grpc.OrchestratorServiceStub]:
    paths = StackPaths(tmp_path_factory.mktemp("orchestrator-home"))
    info = start_stack(paths, services=("orchestrator",), timeout_s=60)
    try:
        with grpc.insecure_channel(info.orchestrator_address) as channel:
            yield orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
    finally:
        stop_stack(paths)


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
