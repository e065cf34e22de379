"""Iteration phases that other parts of the system act on (one definition for all of them)."""

from __future__ import annotations

from ucoder_common.pb import orchestrator_pb2

TERMINAL_PHASES = frozenset(
    {
        orchestrator_pb2.ITERATION_PHASE_COMPLETED,
        orchestrator_pb2.ITERATION_PHASE_FAILED,
        orchestrator_pb2.ITERATION_PHASE_CANCELLED,
    }
)
"""An iteration in one of these phases has ended for good: nothing more happens to it, and stage
workers skip the jobs still queued for it."""
