"""Property-based fuzzing (hypothesis) of every RPC of every service that starts without the
model, and hostile payloads on every stage's work subject; real processes over real gRPC and NATS.

One stack: nats-server, orchestrator, executor (gVisor), clusterer, problemgen and testsynth (no
sampler and no trainer: they need the model). Requests are random messages built from each
method's own descriptor: out-of-range and non-finite numbers, unknown enum values, long and
non-ASCII strings, nested messages and lists. Whatever comes in, a service answers with a status
it chose (never UNKNOWN or INTERNAL, which mean a handler crashed or grpcio refused the frame), an
INVALID_ARGUMENT names the field and quotes a short prefix at most, nothing hangs, and every
service is still SERVING afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import re
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import nats
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ucoder_common import subjects
from ucoder_common.bus import Bus
from ucoder_common.localstack import StackInfo, StackPaths, health, start_stack, stop_stack
from ucoder_common.pb import (
    clusterer_pb2,
    common_pb2,
    executor_pb2,
    orchestrator_pb2,
    problemgen_pb2,
    testsynth_pb2,
)

SERVICES = ("orchestrator", "executor", "clusterer", "problemgen", "testsynth")
MODULES = (orchestrator_pb2, executor_pb2, clusterer_pb2, problemgen_pb2, testsynth_pb2)
EXAMPLES = 40
"""Random requests per RPC (derandomized: CI sees the same ones every run)."""
UNARY_TIMEOUT_S = 30.0
"""Longer than any answer may take: a unary call still open then is a hang."""
STREAM_TIMEOUT_S = 5.0
"""A stream may stay open (WatchIteration of a live iteration); it is read this long at most."""
CRASH_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
FIELD_FIRST = re.compile(r"^[a-z_][a-z0-9_]*(\[\d+\])?(\.[a-z_][a-z0-9_]*(\[\d+\])?)*[: ]")
MAX_DETAILS = 400
SEEN: collections.defaultdict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
"""Status codes per method: how far the fuzzing got."""
HOSTILE_TEXT = [
    "",
    "é",
    "٣",
    "🙂" * 3,
    "../../etc/passwd",
    "a\x00b",
    "*",
    ">",
    "it.*",
    "x" * 300,
    "-" * 5000,
    "' OR 1=1 --",
]
INT_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 2**32 - 1]


def service_name(full_name: str) -> str:
    """ucoder.v1.TestSynthService -> testsynth, the stack's name for it."""
    return full_name.rsplit(".", 1)[-1].removesuffix("Service").lower()


METHODS: list[MethodDescriptor] = [
    method
    for module in MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]


def _int_strategy(field: FieldDescriptor) -> st.SearchStrategy[int]:
    bits = (
        64
        if field.type
        in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
        else 32
    )
    unsigned = field.type in (
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    )
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        bits = 64
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    edges = [v for v in INT_EDGES if low <= v <= high]
    return st.one_of(st.sampled_from(edges), st.integers(-5, 300), st.integers(low, high))


def _scalar(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_MESSAGE:
        return message_strategy(field.message_type, depth + 1)
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 40)  # proto3 enums are open: unknown numbers must be handled
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=40))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        width = 32 if kind == FieldDescriptor.TYPE_FLOAT else 64
        return st.one_of(st.floats(width=width), st.floats(-2, 200, width=width))
    return _int_strategy(field)


def field_strategies(descriptor: Descriptor, depth: int) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy of values for each field of ``descriptor``."""
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key = field.message_type.fields_by_name["key"]
            value = field.message_type.fields_by_name["value"]
            strategies[field.name] = st.dictionaries(_scalar(key, depth), _scalar(value, depth), max_size=3)
        elif field.is_repeated:
            strategies[field.name] = st.lists(_scalar(field, depth), max_size=4)
        else:
            strategies[field.name] = _scalar(field, depth)
    return strategies


def build(descriptor: Descriptor, values: dict[str, Any], base: Message | None = None) -> Message:
    """A message of ``descriptor`` (a copy of ``base``, if given) with ``values`` set."""
    message = message_factory.GetMessageClass(descriptor)()
    if base is not None:
        message.CopyFrom(base)
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        message.ClearField(name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, name)
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.is_repeated:
            target = getattr(message, name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def message_strategy(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random messages of ``descriptor``: any subset of its fields set, nested to depth 3."""
    if depth > 3:
        return st.just(message_factory.GetMessageClass(descriptor)())
    optional = field_strategies(descriptor, depth)
    return st.fixed_dictionaries({}, optional=optional).map(lambda values: build(descriptor, values))


def _paths(message: Message, prefix: str = "") -> dict[str, st.SearchStrategy[Any]]:
    """A value strategy per field of ``message`` and of the singular sub-messages it has set
    (``spec.num_problems``), so a mutation can change one field deep inside a valid request."""
    descriptor = message.DESCRIPTOR
    paths = {prefix + name: strategy for name, strategy in field_strategies(descriptor, 1).items()}
    for field in descriptor.fields:
        if (
            field.type == FieldDescriptor.TYPE_MESSAGE
            and not field.is_repeated
            and message.HasField(field.name)
        ):
            paths.update(_paths(getattr(message, field.name), f"{prefix}{field.name}."))
    return paths


def _set_path(message: Message, path: str, value: Any) -> Message:
    *parents, name = path.split(".")
    target = message
    for parent in parents:
        target = getattr(target, parent)
    target.CopyFrom(build(target.DESCRIPTOR, {name: value}, target))
    return message


def mutated(seed: Message) -> st.SearchStrategy[Message]:
    """``seed`` (a valid request) with one or two of its fields, at any depth, replaced by random
    values: these get past the first checks, where purely random messages rarely do."""
    strategies = _paths(seed)
    if not strategies:
        return st.just(seed)

    def apply(values: dict[str, Any]) -> Message:
        message = type(seed)()
        message.CopyFrom(seed)
        for path, value in values.items():
            _set_path(message, path, value)
        return message

    names = st.lists(st.sampled_from(sorted(strategies)), min_size=1, max_size=2, unique=True)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({n: strategies[n] for n in chosen})).map(apply)


def _seeds() -> dict[str, Message]:
    """A valid request of every fuzzed method, by the method's name."""
    iteration = "fuzz-none"
    add = "def add(a, b):\n    return a + b\n"
    candidates = [common_pb2.Candidate(candidate_id=f"c{i}", code=add) for i in range(3)]
    outcome = common_pb2.TestOutcome(kind=common_pb2.OUTCOME_KIND_RETURNED, value_digest="d3", passed=True)
    problem = common_pb2.Problem(
        problem_id="p1", signature="def add(a: int, b: int) -> int", entry_point="add", arity=2, prompt=add
    )
    spec = orchestrator_pb2.IterationSpec(num_problems=1, tests_per_problem=2, samples_per_problem=2)
    return {
        "StartIteration": orchestrator_pb2.StartIterationRequest(spec=spec),
        "GetIteration": orchestrator_pb2.GetIterationRequest(iteration_id=iteration),
        "ListIterations": orchestrator_pb2.ListIterationsRequest(),
        "WatchIteration": orchestrator_pb2.WatchIterationRequest(iteration_id=iteration),
        "CancelIteration": orchestrator_pb2.CancelIterationRequest(iteration_id=iteration),
        "Evaluate": orchestrator_pb2.EvaluateRequest(spec=orchestrator_pb2.EvalSpec(problems=1)),
        "GetReport": orchestrator_pb2.GetReportRequest(iteration_id=iteration),
        "Execute": executor_pb2.ExecuteRequest(
            iteration_id=iteration,
            problem_id="p1",
            entry_point="add",
            candidates=candidates,
            tests=[common_pb2.TestCase(test_id="t0", args_literal="(1, 2)", expected_literal="3")],
        ),
        "Cluster": clusterer_pb2.ClusterRequest(
            iteration_id=iteration,
            problem_id="p1",
            candidates=candidates,
            results=[
                common_pb2.CandidateResult(candidate_id=c.candidate_id, outcomes=[outcome])
                for c in candidates
            ],
        ),
        "GenerateProblems": problemgen_pb2.GenerateProblemsRequest(
            iteration_id=iteration, count=1, max_rounds=1
        ),
        "SynthesizeTests": testsynth_pb2.SynthesizeTestsRequest(
            iteration_id=iteration, problem=problem, count=2
        ),
    }


SEEDS = _seeds()


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    paths = StackPaths(tmp_path_factory.mktemp("fuzz-home"))
    info = start_stack(paths, services=SERVICES, timeout_s=120)
    try:
        yield info
    finally:
        stop_stack(paths)


def assert_all_serving(info: StackInfo) -> None:
    for name in SERVICES:
        assert health(info.address(name), timeout_s=10) == "SERVING", name


def call(channel: grpc.Channel, method: MethodDescriptor, request: Message) -> None:
    """One call; raises AssertionError on a crash code, a hang or a careless error message."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response_cls = message_factory.GetMessageClass(method.output_type)
    SEEN[path]["calls"] += 1
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, lambda m: m.SerializeToString(), response_cls.FromString)(
                request, timeout=STREAM_TIMEOUT_S
            )
            for count, _ in enumerate(stream):
                if count >= 3:
                    stream.cancel()
                    break
        else:
            channel.unary_unary(path, lambda m: m.SerializeToString(), response_cls.FromString)(
                request, timeout=UNARY_TIMEOUT_S
            )
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
        SEEN[path][code.name] += 1
        assert code not in CRASH_CODES, f"{path} answered {code.name}: {details[:300]} for {request!r:.300}"
        if code == grpc.StatusCode.CANCELLED and method.server_streaming:
            return  # our own cancel above
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            assert method.server_streaming, f"{path} hung for {UNARY_TIMEOUT_S} s on {request!r:.300}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert FIELD_FIRST.match(details), (
                f"{path}: INVALID_ARGUMENT not naming a field: {details[:200]!r}"
            )
            assert len(details) <= MAX_DETAILS, f"{path}: {len(details)} characters of details"


@pytest.mark.parametrize(
    "method", METHODS, ids=lambda m: f"{service_name(m.containing_service.full_name)}.{m.name}"
)
def test_random_requests_never_crash_or_hang_a_service(
    fuzz_stack: StackInfo, method: MethodDescriptor
) -> None:
    name = service_name(method.containing_service.full_name)
    if name not in SERVICES:
        pytest.skip(f"{name} needs the model to start (sampler, trainer)")
    with fuzz_stack.channel(name) as channel:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.one_of(message_strategy(method.input_type), mutated(SEEDS[method.name])))
        def check(request: Message) -> None:
            call(channel, method, request)

        check()
    seen = SEEN[f"/{method.containing_service.full_name}/{method.name}"]
    # The mutated valid requests must get past validation sometimes, or the fuzzing is shallow.
    assert seen["calls"] > seen["INVALID_ARGUMENT"], dict(seen)
    assert_all_serving(fuzz_stack)


def test_undecodable_frames_are_invalid_argument(fuzz_stack: StackInfo) -> None:
    """Bytes that are no protobuf at all (found from outside: grpcio answered UNKNOWN)."""
    for method in METHODS:
        name = service_name(method.containing_service.full_name)
        if name not in SERVICES:
            continue
        path = f"/{method.containing_service.full_name}/{method.name}"
        with fuzz_stack.channel(name) as channel:
            raw = channel.unary_unary(path) if not method.server_streaming else channel.unary_stream(path)
            with pytest.raises(grpc.RpcError) as caught:
                result = raw(b"\xff\xff\xff\xff not a protobuf", timeout=UNARY_TIMEOUT_S)
                if method.server_streaming:
                    list(result)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, caught.value.code())
    assert_all_serving(fuzz_stack)


def hostile_jobs(iteration_id: str) -> dict[str, list[tuple[str, bytes]]]:
    """Per stage: (what, payload) that must go to the stage's dead-letter stream at once."""
    test = common_pb2.TestCase(test_id="t", args_literal="(1,)")
    candidate = common_pb2.Candidate(candidate_id="c", code="def f(x):\n    return x\n")
    return {
        "executor": [
            (
                "100k tests",
                executor_pb2.ExecuteRequest(
                    iteration_id=iteration_id,
                    problem_id="p",
                    entry_point="f",
                    candidates=[candidate],
                    tests=[test] * 100_000,
                ).SerializeToString(),
            ),
            (
                "a 5 MB candidate",
                executor_pb2.ExecuteRequest(
                    iteration_id=iteration_id,
                    problem_id="p",
                    entry_point="f",
                    candidates=[common_pb2.Candidate(candidate_id="c", code="#" * (5 << 20))],
                    tests=[test],
                ).SerializeToString(),
            ),
        ],
        "clusterer": [
            (
                "round -1",
                clusterer_pb2.ClusterRequest(
                    iteration_id=iteration_id, problem_id="p", round=-1
                ).SerializeToString(),
            )
        ],
        "problemgen": [
            (
                "max_rounds 2^31-1",
                problemgen_pb2.GenerateProblemsRequest(
                    iteration_id=iteration_id, max_rounds=2**31 - 1
                ).SerializeToString(),
            )
        ],
        "testsynth": [],
    }


async def _dead_letters(
    bus: Bus, stage: str, durable: str, want: int, timeout_s: float
) -> list[nats.aio.msg.Msg]:
    sub = await bus.js.pull_subscribe(subjects.dlq_subject(stage), durable=durable)
    got: list[nats.aio.msg.Msg] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    try:
        while len(got) < want and asyncio.get_running_loop().time() < deadline:
            try:
                msgs = await sub.fetch(want - len(got), timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
                got.append(msg)
    finally:
        await sub.unsubscribe()
    return got


async def test_hostile_jobs_on_every_work_subject_are_dead_lettered_at_once(fuzz_stack: StackInfo) -> None:
    bus = await Bus.connect(fuzz_stack.nats_url, name="ucoder-test-fuzz")
    marker = uuid.uuid4().hex[:8]
    try:
        iteration_id = "fuzz-" + marker
        jobs = hostile_jobs(iteration_id)
        for stage in ("executor", "clusterer", "problemgen", "testsynth"):
            payloads = [("garbage", b"\xff\xfe not a protobuf"), ("empty", b""), *jobs[stage]]
            for index, (_, payload) in enumerate(payloads):
                await bus.js.publish(
                    subjects.work_subject(stage),
                    payload,
                    headers={"Nats-Msg-Id": f"fuzz-{marker}-{stage}-{index}"},
                )
            dead = await _dead_letters(bus, stage, f"fuzz-{stage}-{marker}", len(payloads), timeout_s=15.0)
            reasons = [(msg.headers or {}).get("Ucoder-Error", "") for msg in dead]
            assert len(dead) == len(payloads), (stage, [w for w, _ in payloads], reasons)
    finally:
        await bus.close()
    assert_all_serving(fuzz_stack)
