"""Generations from the sampler over NATS request/reply (for problemgen and testsynth)."""

from __future__ import annotations

import nats
from nats.aio.client import Client as NatsClient

from ucoder_common import subjects
from ucoder_common.bus import Retry
from ucoder_common.pb import sampler_pb2


async def generate(
    nc: NatsClient, request: sampler_pb2.GenerateRequest, timeout_s: float
) -> sampler_pb2.GenerateResponse:
    """Ask the sampler for completions.

    Raises Retry when no sampler answers in time (it may still be loading the model),
    so the calling job is redelivered later instead of failing.
    """
    try:
        reply = await nc.request(subjects.SAMPLER_GENERATE, request.SerializeToString(), timeout=timeout_s)
    except nats.errors.NoRespondersError as exc:
        raise Retry("no sampler is serving yet") from exc
    except nats.errors.TimeoutError as exc:
        raise Retry(f"the sampler did not answer within {timeout_s:.0f} s") from exc
    response = sampler_pb2.GenerateResponse.FromString(reply.data)
    if response.error:
        raise Retry(f"sampler: {response.error}")
    return response
