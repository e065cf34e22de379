"""The sampler's Prometheus metrics (exposed on the service's /metrics).

Throughput is a rate of the token counters, e.g. generated tokens per second over the
last minute, all replicas:

    sum(rate(ucoder_sampler_generated_tokens_total[1m]))            # counted per finished request
    sum(rate(ucoder_sampler_engine_tokens_total{kind="generation"}[1m]))  # counted per engine step

The first moves only when a request finishes (all its n samples), the second with every
decoding step, so it is the smoother of the two for long requests. Queueing shows on three
levels: ``ucoder_sampler_requests_in_flight`` (requests the service accepted and has not
answered, including those fetching an adapter), ``ucoder_sampler_engine_requests_waiting`` /
``_running`` (sequences in vLLM's scheduler; a request with n samples counts n times), and the
``ucoder_sampler_queue_backlog`` of the work queue (see ucoder_common.metrics).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "ucoder_sampler_requests", "Generation requests, by kind and outcome.", ["kind", "outcome"]
)
TOKENS = Counter("ucoder_sampler_generated_tokens", "Tokens generated (counted when a request finishes).")
SAMPLES = Counter("ucoder_sampler_samples", "Completions returned.")
REQUEST_SECONDS = Histogram(
    "ucoder_sampler_request_duration_seconds",
    "Wall time of one generation request (all n samples).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640),
)
IN_FLIGHT = Gauge(
    "ucoder_sampler_requests_in_flight",
    "Generation requests accepted and not yet answered (NATS, gRPC and work-queue jobs together).",
)

# Set from vLLM's scheduler stats at every engine step (services.sampler.engine).
ENGINE_RUNNING = Gauge(
    "ucoder_sampler_engine_requests_running",
    "Sequences in vLLM's running batch (a request with n samples counts n times).",
)
ENGINE_WAITING = Gauge(
    "ucoder_sampler_engine_requests_waiting",
    "Sequences waiting in vLLM's scheduler for room in the batch or the KV cache.",
)
KV_CACHE_USAGE = Gauge("ucoder_sampler_kv_cache_usage_ratio", "Share of the KV cache in use (0..1).")
PREFIX_CACHE_QUERIES = Counter(
    "ucoder_sampler_prefix_cache_queries", "Prompt tokens looked up in the prefix cache."
)
PREFIX_CACHE_HITS = Counter(
    "ucoder_sampler_prefix_cache_hits", "Prompt tokens found in the prefix cache (not recomputed)."
)
ENGINE_TOKENS = Counter(
    "ucoder_sampler_engine_tokens",
    "Tokens processed by the engine, counted per step: prompt (prefilled) or generation.",
    ["kind"],
)
# Every label value's series exists from the start, so rate() and increase() see the first count too.
for _kind in ("prompt", "generation"):
    ENGINE_TOKENS.labels(kind=_kind)

ADAPTERS_CACHED = Gauge("ucoder_sampler_adapters_cached", "LoRA adapters kept in the local disk cache.")
ADAPTER_FETCHES = Counter(
    "ucoder_sampler_adapter_fetches", "Adapters downloaded from the Object Store into the disk cache."
)
ADAPTER_EVICTIONS = Counter(
    "ucoder_sampler_adapter_evictions", "Adapters removed from the disk cache (least recently used)."
)
