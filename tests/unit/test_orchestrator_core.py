from __future__ import annotations

import pytest

from services.orchestrator import core
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import common_pb2, orchestrator_pb2


def spec(**fields: object) -> orchestrator_pb2.IterationSpec:
    base: dict[str, object] = {"num_problems": 2, "tests_per_problem": 3, "samples_per_problem": 4}
    base.update(fields)
    return orchestrator_pb2.IterationSpec(**base)  # type: ignore[arg-type]


def test_defaults_are_filled_in() -> None:
    filled = core.validate_spec(spec(), served_model="")
    assert filled.rho == pytest.approx(0.8)
    assert filled.tau == 2
    assert filled.temperature == pytest.approx(0.8)
    assert filled.max_tokens == 256
    assert filled.train_epochs == 1
    assert filled.signature_mode == common_pb2.SIGNATURE_MODE_OUTPUT
    explicit = core.validate_spec(spec(rho=0.5, tau=3, signature_mode=common_pb2.SIGNATURE_MODE_PASS), "")
    assert explicit.rho == pytest.approx(0.5) and explicit.tau == 3
    assert explicit.signature_mode == common_pb2.SIGNATURE_MODE_PASS


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_problems": 0}, "spec.num_problems: must be > 0, got 0"),
        ({"tests_per_problem": 1001}, "spec.tests_per_problem: must be <= 1000"),
        ({"rho": float("nan")}, "spec.rho"),
        ({"tau": -1}, "spec.tau: must be >= 0"),
        ({"max_tokens": 5000}, "spec.max_tokens"),
        ({"train_epochs": -2}, "spec.train_epochs"),
        ({"signature_mode": 7}, "spec.signature_mode"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match="^" + message.replace("(", r"\(")):
        core.validate_spec(spec(**fields), served_model="")


def test_model_must_match_the_served_one(tmp_path: object) -> None:
    from pathlib import Path

    model = Path(str(tmp_path)) / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert core.validate_spec(spec(model=str(model)), served_model="").model == str(model)
    with pytest.raises(InvalidArgument, match=r"spec\.model: the stack serves"):
        core.validate_spec(spec(model=str(model)), served_model="/elsewhere")


def test_stage_bookkeeping() -> None:
    it = core.new_iteration("it-1", core.validate_spec(spec(), ""), model_version=3)
    assert [s.stage for s in it.stages] == list(core.STAGES)
    assert core.current_stage(it) == orchestrator_pb2.STAGE_PROBLEMS
    core.mark_progress(it, orchestrator_pb2.STAGE_PROBLEMS, done=1)
    assert core.stats(it, orchestrator_pb2.STAGE_PROBLEMS).finished_unix_ms > 0
    for stage in core.PROBLEM_STAGES:
        core.stats(it, stage).total = 2
    # One problem fails at tests: it counts as failed there and in every later problem stage.
    core.fail_problem_from(it, orchestrator_pb2.STAGE_TESTS)
    assert [core.stats(it, s).failed for s in core.PROBLEM_STAGES] == [1, 1, 1, 1]
    assert core.current_stage(it) == orchestrator_pb2.STAGE_TESTS
    core.mark_progress(it, orchestrator_pb2.STAGE_TESTS, done=1)
    assert core.stats(it, orchestrator_pb2.STAGE_TESTS).finished_unix_ms > 0
    assert core.current_stage(it) == orchestrator_pb2.STAGE_SAMPLING
    assert core.next_problem_stage(orchestrator_pb2.STAGE_PROBLEMS) == orchestrator_pb2.STAGE_TESTS
    assert core.next_problem_stage(orchestrator_pb2.STAGE_EXECUTION) == orchestrator_pb2.STAGE_CLUSTERING
    assert core.next_problem_stage(orchestrator_pb2.STAGE_CLUSTERING) is None


def test_training_examples_take_selected_bodies_only() -> None:
    prompt = 'def f(x: int) -> int:\n    """Double x."""\n'

    def problem(pid: str, selected: bool, code: str, error: str = "") -> orchestrator_pb2.ProblemState:
        return orchestrator_pb2.ProblemState(
            problem=common_pb2.Problem(problem_id=pid, prompt=prompt),
            error=error,
            stage_done=orchestrator_pb2.STAGE_CLUSTERING,
            selection=common_pb2.Selection(selected=selected, code=code),
        )

    examples = core.training_examples(
        [
            problem("a", True, prompt + "    return 2 * x\n"),
            problem("b", False, prompt + "    return x\n"),
            problem("c", True, prompt + "    return 2 * x\n", error="execution: boom"),
            problem("d", True, "def other():\n    pass\n"),  # does not extend the prompt
            problem("e", True, prompt + "   \n"),  # empty body
        ]
    )
    assert [(e.problem_id, e.prompt, e.completion) for e in examples] == [("a", prompt, "    return 2 * x\n")]


def test_iteration_ids_are_unique_and_usable_as_keys() -> None:
    ids = {core.new_iteration_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(ch.isalnum() or ch == "-" for i in ids for ch in i)
