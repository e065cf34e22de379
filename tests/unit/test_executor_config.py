"""Executor settings and the mapping of sandbox events to metrics (pure logic)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.executor.app import ExecutorConfig, record_sandbox_events
from ucoder_common.config import ConfigError, load_config


def test_gvisor_is_the_default_backend() -> None:
    cfg = load_config(ExecutorConfig, "executor", [], {})
    assert cfg.backend == "gvisor"
    assert cfg.pool_size >= 1


def test_process_backend_needs_an_explicit_opt_in() -> None:
    with pytest.raises(ConfigError, match="allow_unsandboxed"):
        load_config(ExecutorConfig, "executor", [], {"UCODER_EXECUTOR_BACKEND": "process"})
    cfg = load_config(
        ExecutorConfig,
        "executor",
        [],
        {"UCODER_EXECUTOR_BACKEND": "process", "UCODER_EXECUTOR_ALLOW_UNSANDBOXED": "1"},
    )
    assert cfg.backend == "process"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"UCODER_EXECUTOR_BACKEND": "docker"}, "backend"),
        ({"UCODER_EXECUTOR_RECYCLE_AFTER": "0"}, "recycle_after"),
        ({"UCODER_EXECUTOR_TIMEOUT_PER_CANDIDATE_S": "-1"}, "timeout_per_candidate_s"),
        ({"UCODER_EXECUTOR_UID_BASE": "-5"}, "uid_base"),
        ({"UCODER_EXECUTOR_ACK_WAIT_S": "0"}, "ack_wait_s"),
    ],
)
def test_bad_settings_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_config(ExecutorConfig, "executor", [], env)


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_sandbox_events_become_bounded_metrics() -> None:
    before_touched = sample("ucoder_executor_worker_restarts_total", {"reason": "touched"})
    before_other = sample("ucoder_executor_worker_restarts_total", {"reason": "other"})
    before_starts = sample("ucoder_executor_sandbox_starts_total")
    before_confirm = sample("ucoder_executor_confirm_runs_total", {"failure": "timeout"})
    record_sandbox_events(
        {
            "sandbox_started": 2,
            "spawned": 5,
            "recycled:touched:namespace typing": 3,  # the detail never becomes a label value
            "recycled:something new": 1,
            "confirm:timeout": 4,
        }
    )
    assert sample("ucoder_executor_worker_restarts_total", {"reason": "touched"}) == before_touched + 3
    assert sample("ucoder_executor_worker_restarts_total", {"reason": "other"}) == before_other + 1
    assert sample("ucoder_executor_sandbox_starts_total") == before_starts + 2
    assert sample("ucoder_executor_confirm_runs_total", {"failure": "timeout"}) == before_confirm + 4
