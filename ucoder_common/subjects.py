"""Names on the NATS backbone, in one place: streams, subjects, consumers, buckets.

Work for a stage is published on `ucoder.work.<stage>` (stream UCODER_WORK, work-queue
retention, one durable pull consumer per stage); the stage publishes its response on
`ucoder.results.<stage>` (stream UCODER_RESULTS, consumed by the orchestrator);
progress events go to `ucoder.events.<iteration_id>` (stream UCODER_EVENTS);
poison messages to `ucoder.dlq.<stage>` (stream UCODER_DLQ).
"""

from __future__ import annotations

WORK_STREAM = "UCODER_WORK"
RESULTS_STREAM = "UCODER_RESULTS"
EVENTS_STREAM = "UCODER_EVENTS"
DLQ_STREAM = "UCODER_DLQ"

ITERATIONS_BUCKET = "ucoder_iterations"
MODELS_BUCKET = "ucoder_models"
ARTIFACTS_BUCKET = "ucoder_artifacts"

# Core NATS request/reply: generations for problemgen and testsynth (queue group "sampler").
SAMPLER_GENERATE = "ucoder.rpc.sampler.generate"
# Core NATS request/reply: ExecuteRequest -> ExecuteResponse, e.g. HumanEval checks (queue group
# "executor"); the error field says why a request was refused.
EXECUTOR_EXECUTE = "ucoder.rpc.executor.execute"

# Registry keys in MODELS_BUCKET.
CURRENT_MODEL_KEY = "current"
LATEST_MODEL_KEY = "latest"


def work_subject(stage: str) -> str:
    return f"ucoder.work.{stage}"


def result_subject(stage: str) -> str:
    return f"ucoder.results.{stage}"


def event_subject(iteration_id: str) -> str:
    return f"ucoder.events.{iteration_id}"


def dlq_subject(stage: str) -> str:
    return f"ucoder.dlq.{stage}"


def model_key(version: int) -> str:
    return f"v{version}"


def iteration_key(iteration_id: str) -> str:
    """The key of an iteration's state (an orchestrator Iteration) in ITERATIONS_BUCKET."""
    return f"it.{iteration_id}"
