"""The sampler service as a process (`python -m services.sampler`) on the tiny model, over NATS and gRPC.

Health stays NOT_SERVING while vLLM loads (gRPC Generate answers UNAVAILABLE and nothing
answers on NATS yet), then SERVING; concurrent generations over NATS; the Prometheus metrics
move; adapters of registered versions are fetched from the Object Store into a disk cache
bounded to one adapter, least recently used evicted.
"""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import nats
import pytest

from services.trainer.lora import LoraTrainConfig, train_lora
from tests.conftest import NatsServer, free_port
from tests.model_fixtures import CODE_EXAMPLES, tiny_model  # noqa: F401
from ucoder_common import localstack, registry, subjects
from ucoder_common.bus import Bus
from ucoder_common.pb import sampler_pb2, sampler_pb2_grpc
from ucoder_common.sampler_client import generate

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 600.0


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    metrics_port: int
    log: Path
    adapter_dir: Path
    ready_file: Path
    statuses: list[str] = field(default_factory=list)
    """Distinct health statuses seen from start-up until SERVING, in order."""
    before_ready: dict[str, str] = field(default_factory=dict)
    """What the first probes answered while the service was NOT_SERVING."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def fail(self, why: str) -> None:
        pytest.fail(f"{why}\n--- sampler log ---\n{localstack.log_tail(self.log, 40)}")


def probe_before_ready(service: Service, nats_url: str) -> None:
    """A gRPC Generate and a NATS request while the engine loads."""
    with grpc.insecure_channel(service.address) as channel:
        stub = sampler_pb2_grpc.SamplerServiceStub(channel)
        try:
            stub.Generate(sampler_pb2.GenerateRequest(prompt="def f():", n=1, max_tokens=4), timeout=10)
            service.before_ready["grpc"] = "OK"
        except grpc.RpcError as exc:
            service.before_ready["grpc"] = exc.code().name

    async def over_nats() -> str:
        nc = await nats.connect(nats_url)
        try:
            request = sampler_pb2.GenerateRequest(prompt="def f():", n=1, max_tokens=4)
            await nc.request(subjects.SAMPLER_GENERATE, request.SerializeToString(), timeout=5)
            return "answered"
        except nats.errors.NoRespondersError:
            return "no responders"
        except nats.errors.TimeoutError:
            return "timeout"
        finally:
            await nc.close()

    # On a thread of its own: asyncio.run here would replace the test session's event loop.
    with ThreadPoolExecutor(1) as pool:
        service.before_ready["nats"] = pool.submit(asyncio.run, over_nats()).result()


@pytest.fixture(scope="module")
def service(
    nats_server: NatsServer, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("sampler-service")
    grpc_port, metrics_port = free_port(), free_port()
    cmd = localstack.service_command(
        "sampler", nats_server.url, grpc_port, metrics_port, home / "ready.json", model=str(tiny_model)
    )
    cmd += [
        "--max-model-len",
        "512",
        "--adapter-cache-dir",
        str(home / "adapters"),
        "--adapter-cache-size",
        "1",
    ]
    log = home / "sampler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=localstack.REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    svc = Service(proc, grpc_port, metrics_port, log, home / "adapters", home / "ready.json")
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not svc.statuses or svc.statuses[-1] != "SERVING":
            if proc.poll() is not None:
                svc.fail(f"the sampler exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                svc.fail(f"not SERVING after {START_TIMEOUT_S:.0f} s (seen: {svc.statuses})")
            status = localstack.health(svc.address, timeout_s=1.0)
            if status != "UNREACHABLE" and (not svc.statuses or svc.statuses[-1] != status):
                svc.statuses.append(status)
                if status == "NOT_SERVING":
                    svc.before_ready["ready_file"] = str(svc.ready_file.exists())
                    svc.before_ready["metrics"] = str(svc.metrics().get("ucoder_sampler_requests_in_flight"))
                    probe_before_ready(svc, nats_server.url)
            time.sleep(0.2)
        yield svc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_health_is_not_serving_until_the_engine_is_ready(service: Service) -> None:
    # The gRPC server (and /metrics) come up at once; the model loads in the background.
    assert service.statuses == ["NOT_SERVING", "SERVING"]
    assert service.before_ready == {
        "ready_file": "False",
        "metrics": "0.0",
        "grpc": "UNAVAILABLE",  # Sampler.sample: "the model is still loading"
        "nats": "no responders",  # the NATS subscription starts once the engine is ready
    }
    assert service.ready_file.exists()


async def test_concurrent_generations_over_nats(service: Service, bus: Bus) -> None:
    before = service.metrics()
    prompts = [p for p, _ in CODE_EXAMPLES]
    requests = [sampler_pb2.GenerateRequest(prompt=p, n=3, temperature=0.8, max_tokens=6) for p in prompts]
    replies = await asyncio.gather(*(generate(bus.nc, r, timeout_s=120) for r in requests))
    for reply in replies:
        assert not reply.error
        assert reply.adapter_name == ""
        assert len(reply.completions) == 3
        assert all(0 < c.num_tokens <= 6 and c.cumulative_logprob <= 0 for c in reply.completions)
    tokens = sum(c.num_tokens for r in replies for c in r.completions)

    after = service.metrics()
    gen = "ucoder_sampler_generated_tokens_total"
    assert after[gen] - before.get(gen, 0) == tokens
    assert after['ucoder_sampler_requests_total{kind="generate",outcome="ok"}'] >= len(prompts)
    assert after["ucoder_sampler_requests_in_flight"] == 0
    # From vLLM's scheduler stats, per engine step.
    engine_gen = 'ucoder_sampler_engine_tokens_total{kind="generation"}'
    assert after[engine_gen] - before.get(engine_gen, 0) == tokens
    assert after["ucoder_sampler_prefix_cache_queries_total"] > before.get(
        "ucoder_sampler_prefix_cache_queries_total", 0
    )
    assert after["ucoder_sampler_engine_requests_running"] == 0
    assert after["ucoder_sampler_engine_requests_waiting"] == 0
    assert 'vllm:num_requests_running{engine="0",model_name="' in "".join(after)


async def test_adapters_are_fetched_cached_and_evicted(
    service: Service, bus: Bus, tiny_model: Path, tmp_path: Path
) -> None:
    # Two registered versions (other tests of the session may have registered some before).
    versions = []
    for i in range(2):
        out = tmp_path / f"adapter-{i}"
        cfg = LoraTrainConfig(epochs=1, batch_size=2, seed=i, device="cpu")
        await asyncio.to_thread(train_lora, tiny_model, CODE_EXAMPLES[:2], out, cfg)
        entry = await registry.register_adapter(
            bus,
            out,
            base_model=str(tiny_model),
            iteration_id=f"sampler-test-{i}",
            train_examples=2,
            train_loss=1.0,
        )
        versions.append(entry.version)
    first, second = versions
    fetches = "ucoder_sampler_adapter_fetches_total"
    before = service.metrics().get(fetches, 0)

    async def ask(version: int) -> sampler_pb2.GenerateResponse:
        request = sampler_pb2.GenerateRequest(
            prompt="def f(x):\n", n=2, temperature=0.8, max_tokens=4, model_version=version
        )
        reply = await generate(bus.nc, request, timeout_s=120)
        assert reply.adapter_name == f"ucoder-v{version}"
        assert len(reply.completions) == 2
        return reply

    def on_disk() -> list[str]:
        return sorted(p.name for p in service.adapter_dir.iterdir() if not p.name.startswith("."))

    await asyncio.gather(ask(first), ask(first))  # concurrent requests: one download
    assert on_disk() == [f"ucoder-v{first}"]
    assert service.metrics()[fetches] - before == 1
    await ask(second)  # the cache holds one adapter: the first goes
    assert on_disk() == [f"ucoder-v{second}"]
    await ask(first)  # downloaded again
    assert on_disk() == [f"ucoder-v{first}"]
    after = service.metrics()
    assert after[fetches] - before == 3
    assert after["ucoder_sampler_adapters_cached"] == 1
    assert after["ucoder_sampler_adapter_evictions_total"] >= 2

    # A version that is not registered is refused, not retried forever.
    request = sampler_pb2.GenerateRequest(prompt="def f(x):\n", n=1, max_tokens=4, model_version=10_000)
    reply = await bus.nc.request(subjects.SAMPLER_GENERATE, request.SerializeToString(), timeout=30)
    assert "not registered" in sampler_pb2.GenerateResponse.FromString(reply.data).error


async def test_invalid_requests_are_refused(service: Service, bus: Bus) -> None:
    cases = {
        "n: must be 1 at temperature 0": dict(n=2, temperature=0.0),
        "n: must be in 1..": dict(n=0, temperature=0.8),
        "max_tokens: must be in": dict(n=1, temperature=0.8, max_tokens=0),
    }
    for message, fields in cases.items():
        request = sampler_pb2.GenerateRequest(prompt="def f(x):\n", **{"max_tokens": 4, **fields})
        reply = await bus.nc.request(subjects.SAMPLER_GENERATE, request.SerializeToString(), timeout=30)
        error = sampler_pb2.GenerateResponse.FromString(reply.data).error
        assert error.startswith("InvalidArgument: ") and message in error, error
    with grpc.insecure_channel(service.address) as channel:
        stub = sampler_pb2_grpc.SamplerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Generate(sampler_pb2.GenerateRequest(prompt="def f(x):\n", n=3, max_tokens=4), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
