from __future__ import annotations

import pytest

from services.orchestrator import core
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import clusterer_pb2, common_pb2, executor_pb2, orchestrator_pb2, sampler_pb2


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


def test_stage_times_and_consensus_rate_for_the_metrics() -> None:
    it = core.new_iteration("it-1", core.validate_spec(spec(), ""), model_version=0)
    assert core.finished_stages(it) == [] and core.consensus_rate(it) == 0.0
    problems = core.stats(it, orchestrator_pb2.STAGE_PROBLEMS)
    core.mark_progress(it, orchestrator_pb2.STAGE_PROBLEMS, done=1)
    problems.started_unix_ms, problems.finished_unix_ms = 1_000, 13_500
    it.problem_ids.extend(["p1", "p2"])
    for stage in core.PROBLEM_STAGES:
        core.stats(it, stage).total = 2
    # Both problems fail at tests: every later problem stage finishes with nothing done in it.
    core.fail_problem_from(it, orchestrator_pb2.STAGE_TESTS)
    core.fail_problem_from(it, orchestrator_pb2.STAGE_TESTS)
    assert core.finished_stages(it) == [orchestrator_pb2.STAGE_PROBLEMS, *core.PROBLEM_STAGES]
    assert core.stage_seconds(it, orchestrator_pb2.STAGE_PROBLEMS) == 12.5
    assert core.stage_seconds(it, orchestrator_pb2.STAGE_SAMPLING) is None
    assert core.stage_seconds(it, orchestrator_pb2.STAGE_TRAINING) is None  # not finished
    assert core.consensus_rate(it) == 0.0
    it.selected = 1
    assert core.consensus_rate(it) == 0.5


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


# --- evaluation and runs ---------------------------------------------------------------------


def test_eval_spec_defaults_and_ks() -> None:
    filled = core.validate_spec(spec(), "")
    assert filled.evaluation.problems == 164
    assert filled.evaluation.samples == 1
    assert filled.evaluation.temperature == 0.0
    assert filled.evaluation.max_tokens == 384
    assert list(filled.evaluation.ks) == [1]
    assert filled.iterations == 1 and filled.patience == 2
    custom = orchestrator_pb2.EvalSpec(problems=10, samples=5, temperature=0.8, ks=[5, 2, 2])
    assert list(core.validate_eval_spec(custom, "spec").ks) == [1, 2, 5]
    skipped = core.validate_spec(spec(skip_evaluation=True, evaluation={"problems": -4}), "")
    assert not skipped.HasField("evaluation")  # nothing to validate when evaluation is off


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"problems": 165}, "spec.evaluation.problems: must be in [0, 164]"),
        ({"problems": -1}, "spec.evaluation.problems"),
        ({"samples": -1}, "spec.evaluation.samples"),
        ({"temperature": float("nan")}, "spec.evaluation.temperature"),
        ({"max_tokens": 5000}, "spec.evaluation.max_tokens"),
        (
            {"samples": 4, "temperature": 0.5, "ks": [5]},
            "spec.evaluation.ks: every k must be in [1, samples=4]",
        ),
        ({"samples": 4}, "spec.evaluation.temperature: 4 greedy samples"),
    ],
)
def test_invalid_eval_fields_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        core.validate_spec(spec(evaluation=orchestrator_pb2.EvalSpec(**fields)), "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "name"), [({"iterations": -1}, "spec.iterations"), ({"patience": 101}, "spec.patience")]
)
def test_invalid_run_fields_are_named(fields: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidArgument, match="^" + name):
        core.validate_spec(spec(**fields), "")


def measured(version: int, pass_at_1: float) -> orchestrator_pb2.EvalResult:
    return core.eval_result(
        version, orchestrator_pb2.EvalSpec(problems=4, samples=1), {1: pass_at_1}, 4, 4, 1.0
    )


def finished_iteration(
    *,
    version_in: int = 0,
    out: float | None,
    pass_in: float | None = 0.25,
    previous: orchestrator_pb2.Iteration | None = None,
    **spec_fields: object,
) -> orchestrator_pb2.Iteration:
    """An iteration after training (out=None: nothing trained) and evaluation."""
    it = core.new_iteration(
        f"it-{version_in}", core.validate_spec(spec(**spec_fields), ""), version_in, previous
    )
    if pass_in is not None and not it.HasField("eval_in"):
        it.eval_in.CopyFrom(measured(version_in, pass_in))
    if out is not None:
        it.model_version_out.version = version_in + 1
        it.eval_out.CopyFrom(measured(version_in + 1, out))
    return it


def test_what_the_evaluation_stage_measures() -> None:
    it = core.new_iteration("it-1", core.validate_spec(spec(), ""), 2)
    assert core.versions_to_evaluate(it) == [("eval_in", 2)]
    it.model_version_out.version = 3
    assert core.versions_to_evaluate(it) == [("eval_in", 2), ("eval_out", 3)]
    it.eval_in.CopyFrom(measured(2, 0.1))
    assert core.versions_to_evaluate(it) == [("eval_out", 3)]
    it.eval_out.CopyFrom(measured(3, 0.1))
    assert core.versions_to_evaluate(it) == []
    off = core.new_iteration("it-2", core.validate_spec(spec(skip_evaluation=True), ""), 2)
    assert core.versions_to_evaluate(off) == []
    assert not core.evaluation_pending(it)
    core.stats(it, orchestrator_pb2.STAGE_EVALUATION).total = 8
    assert core.evaluation_pending(it) and core.current_stage(it) == orchestrator_pb2.STAGE_EVALUATION
    core.stats(it, orchestrator_pb2.STAGE_EVALUATION).finished_unix_ms = 1
    assert not core.evaluation_pending(it)


def test_old_iterations_without_the_evaluation_stage_get_it() -> None:
    it = core.new_iteration("it-1", core.validate_spec(spec(), ""), 0)
    del it.stages[-1]
    assert core.stats(it, orchestrator_pb2.STAGE_EVALUATION).total == 0
    assert [s.stage for s in it.stages] == list(core.STAGES)


def test_single_iteration_that_improves_keeps_its_version() -> None:
    decision = core.run_decision(finished_iteration(out=0.5))
    assert (decision.best_version, decision.best_pass_at_1, decision.stale_iterations) == (1, 0.5, 0)
    assert not decision.continue_run
    assert "beats" in decision.message and "keeping v1" in decision.message


def test_single_iteration_that_gets_worse_keeps_the_input_version() -> None:
    decision = core.run_decision(finished_iteration(out=0.2))
    assert (decision.best_version, decision.best_pass_at_1, decision.stale_iterations) == (0, 0.25, 1)
    assert "does not beat" in decision.message and "keeping v0" in decision.message


def test_equal_pass_at_1_is_no_improvement() -> None:
    assert core.run_decision(finished_iteration(out=0.25)).best_version == 0


def test_run_continues_until_patience_runs_out() -> None:
    first = finished_iteration(out=0.5, iterations=5, patience=2)
    d1 = core.run_decision(first)
    assert d1.continue_run and d1.best_version == 1
    first.best_version, first.best_pass_at_1, first.stale_iterations = d1.best_version, d1.best_pass_at_1, 0
    second = finished_iteration(version_in=1, out=0.4, pass_in=None, previous=first, iterations=5, patience=2)
    assert second.run_index == 2 and second.run_id == first.iteration_id
    assert second.eval_in.model_version == 1 and second.eval_in.pass_at_1 == 0.5  # reused, not re-measured
    d2 = core.run_decision(second)
    assert d2.continue_run and (d2.best_version, d2.stale_iterations) == (1, 1)
    second.best_version, second.best_pass_at_1, second.stale_iterations = (
        d2.best_version,
        d2.best_pass_at_1,
        1,
    )
    third = finished_iteration(version_in=2, out=None, pass_in=0.4, previous=second, iterations=5, patience=2)
    d3 = core.run_decision(third)
    assert not d3.continue_run and d3.stale_iterations == 2
    assert "stopped early" in d3.message and "keeping v1" in d3.message


def test_run_stops_after_its_iterations() -> None:
    first = finished_iteration(out=0.5, iterations=2, patience=5)
    d1 = core.run_decision(first)
    first.best_version, first.best_pass_at_1 = d1.best_version, d1.best_pass_at_1
    second = finished_iteration(version_in=1, out=0.6, pass_in=None, previous=first, iterations=2, patience=5)
    d2 = core.run_decision(second)
    assert not d2.continue_run and d2.best_version == 2 and "run done after 2" in d2.message


def test_without_evaluation_the_newest_version_counts() -> None:
    trained = finished_iteration(out=None, pass_in=None, iterations=3, skip_evaluation=True)
    trained.model_version_out.version = 1
    decision = core.run_decision(trained)
    assert decision.continue_run and decision.best_version == 1
    untrained = finished_iteration(out=None, pass_in=None, iterations=3, patience=1, skip_evaluation=True)
    decision = core.run_decision(untrained)
    assert not decision.continue_run and decision.best_version == 0 and "nothing trained" in decision.message


# --- adaptive sampling -------------------------------------------------------------------------


def problem_state(
    candidates: int = 0, results: int = 0, rounds: int = 0, round_size: int = 0
) -> orchestrator_pb2.ProblemState:
    ps = orchestrator_pb2.ProblemState(
        problem=common_pb2.Problem(problem_id="p"), rounds=rounds, round_size=round_size
    )
    for i in range(candidates):
        ps.candidates.add(candidate_id=f"p-c{i:04d}")
    for i in range(results):
        ps.results.add(candidate_id=f"p-c{i:04d}")
    return ps


def test_sampling_defaults_and_validation() -> None:
    filled = core.validate_spec(spec(), "")
    assert (filled.sampling.mode, filled.sampling.round_size, filled.sampling.risk) == ("adaptive", 16, 0.1)
    for fields, name in (
        ({"mode": "greedy"}, "spec.sampling.mode"),
        ({"round_size": -1}, "spec.sampling.round_size"),
        ({"risk": 1.0}, "spec.sampling.risk"),
    ):
        with pytest.raises(InvalidArgument, match="^" + name):
            core.validate_spec(spec(sampling=common_pb2.SamplingPolicy(**fields)), "")  # type: ignore[arg-type]


def test_round_sizes_never_pass_the_budget() -> None:
    adaptive = core.validate_spec(spec(samples_per_problem=40, sampling={"round_size": 16}), "")
    assert core.sampling_round_size(adaptive, problem_state()) == 16
    # Later rounds take what the clusterer asked for, cut to what is left of the budget.
    assert core.sampling_round_size(adaptive, problem_state(candidates=16, rounds=1, round_size=16)) == 16
    assert core.sampling_round_size(adaptive, problem_state(candidates=32, rounds=2, round_size=16)) == 8
    assert core.sampling_round_size(adaptive, problem_state(candidates=40, rounds=3, round_size=16)) == 0
    small = core.validate_spec(spec(samples_per_problem=4), "")
    assert core.sampling_round_size(small, problem_state()) == 4
    fixed = core.validate_spec(spec(samples_per_problem=40, sampling={"mode": "fixed"}), "")
    assert core.sampling_round_size(fixed, problem_state()) == 40


def test_job_keys_and_unexecuted_candidates() -> None:
    assert core.job_key(problem_state()) == "p"
    assert core.job_key(problem_state(rounds=2)) == "p.r2"
    ps = problem_state(candidates=6, results=4)
    assert [c.candidate_id for c in core.unexecuted(ps)] == ["p-c0004", "p-c0005"]


def test_answers_of_earlier_rounds_are_stale() -> None:
    ps = problem_state(candidates=4, results=4, rounds=1)
    old_sample = sampler_pb2.SampleCandidatesResponse(candidates=[{"candidate_id": "p-c0000"}])
    new_sample = sampler_pb2.SampleCandidatesResponse(candidates=[{"candidate_id": "p-c0004"}])
    assert core.stale_answer(ps, old_sample) and not core.stale_answer(ps, new_sample)
    ps.candidates.add(candidate_id="p-c0004")
    old_exec = executor_pb2.ExecuteResponse(results=[{"candidate_id": "p-c0000"}])
    new_exec = executor_pb2.ExecuteResponse(results=[{"candidate_id": "p-c0004"}])
    assert core.stale_answer(ps, old_exec) and not core.stale_answer(ps, new_exec)
    assert core.stale_answer(ps, clusterer_pb2.ClusterResponse(round=0))
    assert not core.stale_answer(ps, clusterer_pb2.ClusterResponse(round=1))


def test_skip_training_is_one_iteration() -> None:
    filled = core.validate_spec(spec(skip_training=True, skip_evaluation=True), "")
    assert filled.skip_training and filled.iterations == 1
    with pytest.raises(InvalidArgument, match=r"^spec.iterations: a run of 3 iterations trains between them"):
        core.validate_spec(spec(skip_training=True, iterations=3), "")
