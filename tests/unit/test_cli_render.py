"""The CLI's pure rendering: protos in, text out."""

from __future__ import annotations

from ucoder_cli import render
from ucoder_common.pb import common_pb2, orchestrator_pb2

T0 = 1_700_000_000_000


def _iteration(**overrides: object) -> orchestrator_pb2.Iteration:
    it = orchestrator_pb2.Iteration(
        iteration_id="it-42",
        phase=orchestrator_pb2.ITERATION_PHASE_COMPLETED,
        stage=orchestrator_pb2.STAGE_TRAINING,
        model_version_in=2,
        model_version_out=common_pb2.ModelVersion(
            version=3, adapter_object="adapters/v3.tar", train_examples=17, train_loss=0.4321
        ),
        created_unix_ms=T0,
        finished_unix_ms=T0 + 3_725_000,
        problems_generated=40,
        problems_rejected=9,
        tests_kept=2_913,
        candidates=3_968,
        executions=371_104,
        selected=17,
        stages=[
            orchestrator_pb2.StageStats(
                stage=orchestrator_pb2.STAGE_PROBLEMS,
                done=31,
                total=40,
                started_unix_ms=T0,
                finished_unix_ms=T0 + 12_345,
            ),
            orchestrator_pb2.StageStats(
                stage=orchestrator_pb2.STAGE_SAMPLING,
                done=31,
                total=31,
                failed=2,
                started_unix_ms=T0 + 20_000,
                finished_unix_ms=T0 + 20_000 + 245_000,
            ),
        ],
    )
    for key, value in overrides.items():
        setattr(it, key, value)
    return it


def test_result_table_has_the_numbers() -> None:
    text = render.to_text(render.result_table(_iteration()))
    assert "it-42" in text and "completed" in text
    assert "31 / 40" in text  # problems kept / generated
    for number in ("2913", "3968", "371104", "17"):
        assert number in text
    assert "v3 (adapters/v3.tar)" in text
    assert "17 examples, loss 0.4321" in text
    assert "12.3s" in text  # problems stage
    assert "4m 05s  (2 failed)" in text  # sampling stage
    assert "1h 02m" in text  # total


def test_result_table_without_adapter_and_with_error() -> None:
    it = _iteration(phase=orchestrator_pb2.ITERATION_PHASE_FAILED, error="sampler: out of memory")
    it.ClearField("model_version_out")
    text = render.to_text(render.result_table(it))
    assert "adapter trained" in text and "none" in text
    assert "failed" in text and "sampler: out of memory" in text


def test_kept_counts_problem_states_when_present() -> None:
    it = _iteration()
    it.problems.add().problem.problem_id = "p1"
    assert "1 / 40" in render.to_text(render.result_table(it))


def test_format_duration() -> None:
    assert render.format_duration(0) == "0ms"
    assert render.format_duration(850) == "850ms"
    assert render.format_duration(12_345) == "12.3s"
    assert render.format_duration(245_000) == "4m 05s"
    assert render.format_duration(3_725_000) == "1h 02m"
    assert render.format_duration(-5) == "0ms"


def test_stage_timing() -> None:
    stats = orchestrator_pb2.StageStats
    assert render.stage_timing(stats()) == "-"
    assert render.stage_timing(stats(started_unix_ms=T0, finished_unix_ms=T0 + 1_500)) == "1.5s"
    assert render.stage_timing(stats(started_unix_ms=T0), now_ms=T0 + 4_000) == "4.0s (running)"


def test_names() -> None:
    assert render.stage_name(orchestrator_pb2.STAGE_EXECUTION) == "execution"
    assert render.stage_name(99) == "stage 99"
    assert render.phase_name(orchestrator_pb2.ITERATION_PHASE_CANCELLED) == "cancelled"
    assert render.signature_mode_name(common_pb2.SIGNATURE_MODE_PASS) == "pass"


def test_stage_progress_takes_absolute_counts() -> None:
    bars = render.StageProgress()
    event = orchestrator_pb2.ProgressEvent
    bars.update(event(stage=orchestrator_pb2.STAGE_PROBLEMS, done=3, total=10))
    bars.update(event(stage=orchestrator_pb2.STAGE_PROBLEMS, done=10, total=10))
    bars.update(event(stage=orchestrator_pb2.STAGE_SAMPLING, done=4, total=9, failed=1, message="m"))
    bars.update(event(stage=orchestrator_pb2.STAGE_PROBLEMS, done=10, total=10))  # a replay
    snap = bars.snapshot()
    assert snap["problems"][:2] == (10, 10)
    assert snap["sampling"][:2] == (4, 9) and "1 failed" in snap["sampling"][2]
    assert snap["training"][:2] == (0, None)
    assert bars.message == "m"


def test_iterations_table_and_spec_line() -> None:
    older = _iteration(iteration_id="it-1", created_unix_ms=T0 - 10)
    text = render.to_text(render.iterations_table([older, _iteration()]), width=160)
    assert text.index("it-42") < text.index("it-1")  # newest first
    spec = orchestrator_pb2.IterationSpec(
        num_problems=4, rho=0.8, signature_mode=common_pb2.SIGNATURE_MODE_OUTPUT
    )
    line = render.spec_line(spec)
    assert "problems=4" in line and "rho=0.8" in line and "signature=output" in line


def test_status_table() -> None:
    rows = [
        render.ServiceRow("nats", 10, True, "SERVING", 4222, 8222, "/l/nats.log"),
        render.ServiceRow("sampler", 11, False, "UNREACHABLE", 5000, 5001, "/l/sampler.log"),
    ]
    text = render.to_text(render.status_table(rows), width=160)
    assert "sampler" in text and "UNREACHABLE" in text and "no" in text and "4222" in text


def test_startup_table_freezes_elapsed_once_serving() -> None:
    table = render.startup_table(
        {"nats": "serving", "sampler": "starting"},
        started={"nats": 0.0, "sampler": 0.0},
        ended={"nats": 0.4},
        now=75.0,
    )
    text = render.to_text(table)
    assert "400ms" in text and "1m 15s" in text


def test_completed_without_consensus_says_why_no_adapter() -> None:
    from ucoder_cli.render import adapter_text
    from ucoder_common.pb import orchestrator_pb2

    it = orchestrator_pb2.Iteration(phase=orchestrator_pb2.ITERATION_PHASE_COMPLETED, selected=0)
    assert adapter_text(it) == "none (no problem reached consensus)"
    it.phase = orchestrator_pb2.ITERATION_PHASE_FAILED
    assert adapter_text(it) == "none"
    it.model_version_out.version = 2
    it.model_version_out.adapter_object = "adapters/v2.tar"
    assert adapter_text(it) == "v2 (adapters/v2.tar)"


def _eval(version: int, pass_at_1: float, **ks: float) -> orchestrator_pb2.EvalResult:
    scores = {1: pass_at_1, **{int(k.removeprefix("k")): v for k, v in ks.items()}}
    return orchestrator_pb2.EvalResult(
        model_version=version,
        pass_at_1=pass_at_1,
        pass_at_k=scores,
        num_problems=164,
        num_samples=164 * 4,
        seconds=72.0,
        spec=orchestrator_pb2.EvalSpec(problems=164, samples=4, temperature=0.8, max_tokens=384),
    )


def test_evaluation_rows_and_run_decision() -> None:
    it = _iteration(
        run_index=1,
        run_decision="pass@1 4.3% (v3) beats the best 3.0% (v2); continuing with iteration 2 of 3",
    )
    it.eval_in.CopyFrom(_eval(2, 0.0305))
    it.eval_out.CopyFrom(_eval(3, 0.0427))
    it.spec.iterations = 3
    text = render.to_text(render.result_table(it), width=200)
    assert "v2: pass@1 3.0% (164 problems x 4" in text and "v3: pass@1 4.3%" in text
    assert "iteration 1 of 3: pass@1 4.3% (v3) beats the best 3.0% (v2)" in text
    listed = render.to_text(render.iterations_table([it]), width=200)
    assert "3.0% -> 4.3%" in listed


def test_eval_table_lists_every_k() -> None:
    text = render.to_text(render.eval_table(_eval(5, 0.05, k4=0.125)))
    assert "HumanEval - model v5" in text
    assert "pass@1" in text and "5.00%" in text and "pass@4" in text and "12.50%" in text
    assert "temperature 0.8, max_tokens 384" in text and "1m 12s" in text
    assert render.eval_text(_eval(5, 0.05, k4=0.125)).startswith(
        "v5: pass@1 5.0%, pass@4 12.5% (164 problems x 4"
    )
