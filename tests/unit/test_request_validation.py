"""Request fields found from outside to crash a handler or be answered with the wrong code (issue 15):
one id rule for every service, bad values quoted by a short prefix, bounds on numbers."""

from __future__ import annotations

import math

import pytest

from services.clusterer.app import ClustererConfig, cluster
from services.executor.app import MAX_MEMORY_LIMIT_MB, RequestLimits, validate_request
from services.orchestrator.core import validate_spec
from services.problemgen.app import check_generate_request
from services.trainer.app import check_train_request
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import (
    clusterer_pb2,
    common_pb2,
    executor_pb2,
    orchestrator_pb2,
    problemgen_pb2,
    trainer_pb2,
)
from ucoder_common.validation import (
    MAX_ID_LENGTH,
    MAX_SAMPLES_PER_PROBLEM,
    SHOWN_CHARACTERS,
    check_id,
    id_problem,
    shown,
)


def test_shown_quotes_a_short_prefix_and_the_length() -> None:
    assert shown("abc") == "'abc'"
    assert shown(12) == "12"
    long = "x" * 10_000
    assert shown(long) == f"{'x' * SHOWN_CHARACTERS!r}... (10000 characters)"
    assert len(shown("é" * (1 << 20))) < 100


@pytest.mark.parametrize("value", ["20261203-134648-a1b2c3", "p1", "it_1-A", "a" * MAX_ID_LENGTH])
def test_valid_ids(value: str) -> None:
    assert id_problem(value) is None
    assert check_id("iteration_id", value) == value


@pytest.mark.parametrize(
    "value", ["é", "a.b", "a*", "a>", "a b", "a/b", "٣", "a" * (MAX_ID_LENGTH + 1), "x" * (1 << 20)]
)
def test_invalid_ids_name_the_field_and_stay_short(value: str) -> None:
    # "٣" (an Arabic-Indic digit) passed str.isalnum, the old rule, and broke the KV key.
    with pytest.raises(InvalidArgument, match=r"^iteration_id: must be at most 128 ASCII") as caught:
        check_id("iteration_id", value)
    assert len(str(caught.value)) < 200


def test_empty_ids() -> None:
    with pytest.raises(InvalidArgument, match=r"^problem_id: must not be empty"):
        check_id("problem_id", "")
    assert check_id("iteration_id", "", optional=True) == ""


def execute(**fields: object) -> executor_pb2.ExecuteRequest:
    test = common_pb2.TestCase(test_id="t0", args_literal="(1, 2)", expected_literal="3")
    fields = {"problem_id": "p1", "entry_point": "add", "tests": [test], **fields}
    return executor_pb2.ExecuteRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout_per_test_s": math.nan}, r"^timeout_per_test_s: must be in \[0, 60\]"),
        ({"timeout_per_test_s": math.inf}, r"^timeout_per_test_s: must be in \[0, 60\]"),
        (
            {"memory_limit_mb": 2**31 - 1},
            rf"^memory_limit_mb: must be 0 \(default\) or in 32\.\.{MAX_MEMORY_LIMIT_MB}",
        ),
        ({"memory_limit_mb": 16}, r"^memory_limit_mb"),
        (
            {"tests": [common_pb2.TestCase(test_id="t0", args_literal="(1,)", expected_literal="open('x')")]},
            r"^tests\[0\]\.expected_literal: not a Python literal: \"open\('x'\)\"",
        ),
        (
            {"tests": [common_pb2.TestCase(test_id="t0", args_literal="1")]},
            r"^tests\[0\]\.args_literal: must be a tuple",
        ),
        ({"entry_point": "-" * 5000}, r"^entry_point: must be a Python identifier"),
    ],
)
def test_execute_requests_that_can_never_run_are_invalid(fields: dict[str, object], message: str) -> None:
    # Found from outside: NaN and 2^31-1 were answered UNAVAILABLE (retry), a non-literal expected
    # value crashed the handler after the candidates had run.
    with pytest.raises(InvalidArgument, match=message) as caught:
        validate_request(execute(**fields))
    assert len(str(caught.value)) < 200


def test_execute_requests_over_the_size_limits_are_invalid() -> None:
    # Found from outside (issue 15): a job with 100k tests or a 5 MB candidate was taken and run.
    limits = RequestLimits(candidates=3, tests=2, code_bytes=100, literal_bytes=20)
    code = common_pb2.Candidate(candidate_id="c", code="def add(a, b):\n    return a + b\n")
    test = common_pb2.TestCase(test_id="t", args_literal="(1, 2)")
    cases = [
        (execute(candidates=[code] * 4), r"^candidates: at most 3 per request, got 4$"),
        (execute(tests=[test] * 3), r"^tests: at most 2 per request, got 3$"),
        (
            execute(candidates=[common_pb2.Candidate(code="#" * 101)]),
            r"^candidates\[0\]\.code: at most 100 bytes$",
        ),
        (
            execute(tests=[common_pb2.TestCase(args_literal="(" + "1," * 10 + ")")]),
            r"^tests\[0\]\.args_literal",
        ),
        (
            execute(tests=[common_pb2.TestCase(args_literal="(1,)", expected_literal="'é'" * 7)]),
            "expected_literal",
        ),
    ]
    for request, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            validate_request(request, limits)
    validate_request(execute(candidates=[code] * 3, tests=[test] * 2), limits)
    defaults = RequestLimits()
    assert (defaults.candidates, defaults.tests) == (MAX_SAMPLES_PER_PROBLEM, 1000)
    with pytest.raises(InvalidArgument, match=r"^tests: at most 1000"):
        validate_request(execute(tests=[test] * 100_000))
    with pytest.raises(InvalidArgument, match=r"^candidates\[0\]\.code: at most 262144 bytes"):
        validate_request(execute(candidates=[common_pb2.Candidate(code="x" * (5 << 20))]))


def test_sane_execute_requests_pass() -> None:
    validate_request(execute())
    validate_request(execute(timeout_per_test_s=60, memory_limit_mb=MAX_MEMORY_LIMIT_MB))
    validate_request(execute(tests=[common_pb2.TestCase(test_id="t0", args_literal="(1,)")]))  # no expected


def cluster_request(**fields: object) -> clusterer_pb2.ClusterRequest:
    candidates = [common_pb2.Candidate(candidate_id=f"c{i}", code="def f(): return 1\n") for i in range(2)]
    return clusterer_pb2.ClusterRequest(problem_id="p1", candidates=candidates, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"round": -1}, r"^round: must be >= 0"),
        ({"tau": 2**31 - 1}, r"^tau: must be in 1\.\.1024"),
        ({"budget": 2**31 - 1}, r"^budget: must be in 0\.\.1024"),
        ({"budget": -1}, r"^budget: must be in 0\.\.1024"),
        ({"selection_rule": "y" * 5000}, r"^selection_rule: must be one of"),
    ],
)
def test_cluster_bounds(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        cluster(cluster_request(**fields), ClustererConfig())
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("model", ["🦀" * 300, "m" * 5000, "a\0b"])
def test_a_model_path_the_os_refuses_is_invalid(model: str) -> None:
    spec = orchestrator_pb2.IterationSpec(
        num_problems=1, tests_per_problem=1, samples_per_problem=2, model=model
    )
    with pytest.raises(InvalidArgument, match=r"^spec\.model: no Hugging Face model directory") as caught:
        validate_spec(spec, served_model="")
    assert len(str(caught.value)) < 200


def test_train_iteration_id_is_an_id() -> None:
    example = common_pb2.TrainExample(prompt="def f():\n", completion="    return 1\n")
    for bad in ("x" * (1 << 20), "a.b"):
        with pytest.raises(InvalidArgument, match=r"^iteration_id: must be at most"):
            check_train_request(trainer_pb2.TrainRequest(iteration_id=bad, examples=[example]))
    check_train_request(trainer_pb2.TrainRequest(examples=[example]))  # a Train call outside an iteration


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_rounds": 2**31 - 1}, r"^max_rounds: must be in 0\.\.1000"),
        ({"max_rounds": -1}, r"^max_rounds: must be in 0\.\.1000"),
        ({"max_tokens": 10**6}, r"^max_tokens: must be in 0\.\.4096"),
        ({"temperature": math.nan}, r"^temperature: must be in \[0, 2\]"),
        ({"temperature": math.inf}, r"^temperature: must be in \[0, 2\]"),
        ({"count": 0}, r"^count: must be in 1\.\."),
        ({"iteration_id": "é"}, r"^iteration_id: must be at most"),
    ],
)
def test_problem_generation_bounds(fields: dict[str, object], message: str) -> None:
    # Found from outside: max_rounds 2^31-1 held the only problemgen worker (98k sampler requests).
    request = problemgen_pb2.GenerateProblemsRequest(**{"iteration_id": "it-1", "count": 3, **fields})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=message):
        check_generate_request(request)


def test_sane_problem_generation_passes() -> None:
    check_generate_request(problemgen_pb2.GenerateProblemsRequest(iteration_id="it-1", count=3))
    check_generate_request(
        problemgen_pb2.GenerateProblemsRequest(count=3, max_rounds=1000, max_tokens=4096, temperature=2.0)
    )
