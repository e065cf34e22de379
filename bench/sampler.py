"""Sampler benchmark: generated tokens/s of the sampler service, vLLM offline, and transformers.

    python -m bench.sampler [--prompts 8] [--n 8] [--max-tokens 64] [--temperature 0.8]
                            [--rounds 3] [--hf-rounds 1] [--modes abc] [--model DIR] [--json PATH]

The workload is the sampler's main job: candidate solutions. A round takes ``--prompts``
HumanEval problems and asks for ``--n`` samples of each, ``--max-tokens`` tokens at most, at
``--temperature``, no stop sequences, as the prompt the sampler completes for candidates
(``services.sampler.core.candidate_prompt``: two solved examples, then the skeleton). Three
ways of generating them:

(a) the sampler **service** end to end: nats-server and ``python -m services.sampler`` run as
    processes, as in the local stack (started before (b)'s engine, so the two loads overlap;
    timing starts once the service reports SERVING). All of a round's GenerateRequests are sent
    over NATS request/reply at once (``ucoder_common.sampler_client``), as concurrent callers
    do; tokens are the responses' ``num_tokens``; the wall time runs from the first request
    to the last reply, so it includes NATS, protobuf and the service's asyncio front end.
(b) **vLLM offline**: ``vllm.LLM`` in this process, built from the same settings as the
    service's engine (``SamplerConfig().engine_config`` -> ``engine.engine_args``), one
    ``LLM.generate`` call with all the round's prompts and the very SamplingParams the service
    builds (``engine.sampling_params``: n, temperature, max_tokens, logprobs of the sampled
    tokens). The service differs only in what it adds: the async engine, the network hop and
    its Prometheus stat logger. Target: (a) reaches at least 90% of (b)'s tokens/s.
(c) **transformers** ``model.generate``: the same checkpoint in the dtype vLLM ran it in, the
    round's prompts as one left-padded batch, ``do_sample`` at the same temperature with
    top-k and top-p off (as in vLLM), ``num_return_sequences=n``. It does less than (a) and
    (b): no log-probabilities. Reported as (c)/(b).

Fairness: the same model, dtype, prompts, n, temperature and token limit everywhere; no stop
sequences, and a sample ends at the model's end-of-sequence token or the limit in every mode
(the service has no ignore-EOS switch, so neither does the benchmark). Each mode counts the
tokens it really generated (the EOS token included, as vLLM counts it), so tokens/s is useful
tokens per second; the counts per mode are shown and agree closely. Every engine is warmed up
untimed first with a round of other problems and a few tokens. The machine is shared and
noisy: (a) and (b) take turns for ``--rounds`` rounds (a-b, b-a, ...), each round on fresh
problems (so no round reuses another's cached prompts beyond the shared solved examples, which
a serving sampler always has cached too), and the table shows each mode's median tokens/s.
(c) is slow on CPU and runs ``--hf-rounds`` rounds (default 1) on the first timed rounds'
problems, after both vLLM engines are shut down. vLLM on CPU computes on one core and keeps
one for its front end (``VLLM_CPU_OMP_THREADS_BIND=auto``); transformers uses torch's threads
(all cores): the header says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from services.sampler.app import SamplerConfig
from services.sampler.core import candidate_prompt
from services.sampler.engine import cpu_flags, engine_args, engine_dtype, prepare_environment, sampling_params
from ucoder_common import localstack, models
from ucoder_common.humaneval import load_problems

PROMPTS = 8
N = 8
MAX_TOKENS = 64
TEMPERATURE = 0.8
ROUNDS = 3
HF_ROUNDS = 1
WARMUP_TOKENS = 8
"""max_tokens of the untimed warm-up round."""
TARGET_SERVICE_VS_OFFLINE = 0.9
"""(a) must reach this share of (b)'s tokens/s (within 10%)."""
SERVICE_START_TIMEOUT_S = 900.0
REQUEST_TIMEOUT_S = 1800.0

Round = tuple[float, int, int]
"""What a mode's round gives: wall seconds, tokens generated, completions."""

MODE_NAMES = {"a": "service (NATS)", "b": "vLLM offline", "c": "transformers"}


@dataclass
class ModeResult:
    mode: str
    name: str
    tokens: list[int] = field(default_factory=list)
    """Tokens generated, per timed round."""
    walls: list[float] = field(default_factory=list)
    """Wall seconds, per timed round."""
    samples: int = 0
    """Completions per round."""

    @property
    def ran(self) -> bool:
        return bool(self.walls)

    @property
    def rates(self) -> list[float]:
        return [t / w for t, w in zip(self.tokens, self.walls, strict=True) if w > 0]

    @property
    def tokens_per_s(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def row(self, offline: ModeResult | None) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "name": self.name}
        if self.ran:
            ratio = None
            if offline is not None and offline.ran and offline.tokens_per_s > 0:
                ratio = round(self.tokens_per_s / offline.tokens_per_s, 3)
            out |= {
                "rounds": len(self.walls),
                "samples_per_round": self.samples,
                "tokens_per_round": round(statistics.median(self.tokens), 1),
                "tokens_per_sample": round(statistics.median(self.tokens) / max(1, self.samples), 1),
                "wall_s": round(statistics.median(self.walls), 3),
                "tokens_per_s": round(self.tokens_per_s, 2),
                "round_tokens": list(self.tokens),
                "round_tokens_per_s": [round(r, 2) for r in self.rates],
                "vs_offline": ratio,
            }
        return out


# ---------------------------------------------------------------------------------------------
# Workload


def prompt_sets(prompts: int, rounds: int) -> list[list[str]]:
    """rounds + 1 disjoint sets of `prompts` candidate prompts; set 0 is the warm-up."""
    problems = load_problems()
    need = prompts * (rounds + 1)
    if need > len(problems):
        raise ValueError(f"{need} problems needed, HumanEval has {len(problems)}")
    texts = [candidate_prompt(p.prompt) for p in problems[:need]]
    return [texts[i * prompts : (i + 1) * prompts] for i in range(rounds + 1)]


# ---------------------------------------------------------------------------------------------
# (a) the service


class ServiceProcesses:
    """nats-server and the sampler service as processes in their own sessions (as the local stack)."""

    def __init__(self, model: Path, home: Path) -> None:
        self.model = model
        self.home = home
        self.nats: subprocess.Popen[bytes] | None = None
        self.sampler: subprocess.Popen[bytes] | None = None
        self.nats_port, self.grpc_port, self.metrics_port = localstack.free_ports(3)

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    def _popen(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open
        try:
            return subprocess.Popen(
                cmd,
                cwd=localstack.REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def start(self) -> None:
        conf = self.home / "nats.conf"
        conf.write_text(f"max_payload: {localstack.NATS_MAX_PAYLOAD_BYTES}\n")
        self.nats = self._popen(
            [
                localstack.nats_server_binary(),
                *("-c", str(conf), "-a", "127.0.0.1", "-p", str(self.nats_port)),
                *("-js", "-sd", str(self.home / "nats")),
            ],
            "nats",
        )
        deadline = time.monotonic() + 30
        while not localstack.port_open(self.nats_port):
            if self.nats.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nats-server did not start: {localstack.log_tail(self.home / 'nats.log')}"
                )
            time.sleep(0.05)
        cmd = localstack.service_command(
            "sampler",
            self.nats_url,
            self.grpc_port,
            self.metrics_port,
            self.home / "sampler.ready.json",
            model=str(self.model),
        )
        self.sampler = self._popen(cmd, "sampler")

    def wait_serving(self, timeout_s: float) -> None:
        assert self.sampler is not None
        deadline = time.monotonic() + timeout_s
        while localstack.health(f"127.0.0.1:{self.grpc_port}", timeout_s=1.0) != "SERVING":
            code = self.sampler.poll()
            if code is not None:
                tail = localstack.log_tail(self.home / "sampler.log")
                raise RuntimeError(f"the sampler exited with code {code}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sampler was not serving after {timeout_s:.0f} s")
            time.sleep(0.5)

    def metrics(self) -> str:
        """The sampler's /metrics text ("" when unreachable)."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def stop(self) -> None:
        for proc in (self.sampler, self.nats):
            if proc is None or proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


class ServiceClient:
    """A NATS connection on its own event loop, kept across rounds."""

    def __init__(self, url: str) -> None:
        self.runner = asyncio.Runner()
        self.nc: Any = self.runner.run(self._connect(url))

    @staticmethod
    async def _connect(url: str) -> Any:
        import nats

        return await nats.connect(url, name="bench-sampler")

    def run_round(self, prompts: list[str], n: int, max_tokens: int, temperature: float) -> Round:
        """(wall seconds, tokens, completions) of all prompts sent at once."""
        return self.runner.run(self._round(prompts, n, max_tokens, temperature))

    async def _round(self, prompts: list[str], n: int, max_tokens: int, temperature: float) -> Round:
        from ucoder_common.pb import sampler_pb2
        from ucoder_common.sampler_client import generate

        requests = [
            sampler_pb2.GenerateRequest(prompt=p, n=n, temperature=temperature, max_tokens=max_tokens)
            for p in prompts
        ]
        t0 = time.perf_counter()
        replies = await asyncio.gather(*(generate(self.nc, r, REQUEST_TIMEOUT_S) for r in requests))
        wall = time.perf_counter() - t0
        completions = [c for reply in replies for c in reply.completions]
        return wall, sum(c.num_tokens for c in completions), len(completions)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.run(self.nc.close())
        self.runner.close()


# ---------------------------------------------------------------------------------------------
# (b) vLLM offline


class Offline:
    def __init__(self, model: Path) -> None:
        from vllm import LLM

        prepare_environment()
        self.llm = LLM(**engine_args(SamplerConfig().engine_config(model)))

    @property
    def dtype(self) -> Any:
        return self.llm.llm_engine.model_config.dtype

    @property
    def prefix_caching(self) -> bool:
        return bool(self.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching)

    def run_round(self, prompts: list[str], n: int, max_tokens: int, temperature: float) -> Round:
        params = sampling_params(n, temperature, max_tokens, [])
        t0 = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - t0
        completions = [c for o in outputs for c in o.outputs]
        return wall, sum(len(c.token_ids) for c in completions), len(completions)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        gc.collect()


# ---------------------------------------------------------------------------------------------
# (c) transformers


class Transformers:
    def __init__(self, model: Path, dtype: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model)
        self.tokenizer.padding_side = "left"
        self.model: Any = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos])
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else min(self.eos)

    def run_round(self, prompts: list[str], n: int, max_tokens: int, temperature: float) -> Round:
        torch = self.torch
        t0 = time.perf_counter()
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_tokens,
                num_return_sequences=n,
                pad_token_id=self.pad,
            )
        generated = out[:, batch["input_ids"].shape[1] :].tolist()
        self.tokenizer.batch_decode(generated, skip_special_tokens=True)  # as vLLM detokenizes
        wall = time.perf_counter() - t0
        return wall, sum(self._count(seq) for seq in generated), len(generated)

    def _count(self, seq: list[int]) -> int:
        """Tokens up to and including the first EOS (the rest is padding)."""
        for i, token in enumerate(seq):
            if token in self.eos:
                return i + 1
        return len(seq)


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class BenchReport:
    settings: dict[str, Any]
    environment: dict[str, Any]
    modes: dict[str, ModeResult]

    def rows(self) -> list[dict[str, Any]]:
        offline = self.modes.get("b")
        return [m.row(offline) for m in self.modes.values()]

    def round_ratios(self) -> list[float]:
        """(a)/(b) of each round (the two ran back to back on the same prompts)."""
        a, b = self.modes.get("a"), self.modes.get("b")
        if a is None or b is None or not a.ran or not b.ran:
            return []
        return [round(x / y, 3) for x, y in zip(a.rates, b.rates, strict=False) if y > 0]

    def ratios(self) -> dict[str, float | None]:
        rows = {r["mode"]: r for r in self.rows()}
        return {
            "a/b": rows.get("a", {}).get("vs_offline"),
            "c/b": rows.get("c", {}).get("vs_offline"),
        }

    def targets(self) -> dict[str, str]:
        a_b = self.ratios()["a/b"]
        name = f"service >= {TARGET_SERVICE_VS_OFFLINE:.0%} of offline"
        return {name: "n/a" if a_b is None else ("PASS" if a_b >= TARGET_SERVICE_VS_OFFLINE else "MISS")}

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "environment": self.environment,
            "rows": self.rows(),
            "round_ratios_a_b": self.round_ratios(),
            "ratios": self.ratios(),
            "targets": self.targets(),
        }


def _log(msg: str) -> None:
    print(f"[bench.sampler {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_bench(
    model: Path,
    modes: str,
    prompts: int = PROMPTS,
    n: int = N,
    max_tokens: int = MAX_TOKENS,
    temperature: float = TEMPERATURE,
    rounds: int = ROUNDS,
    hf_rounds: int = HF_ROUNDS,
) -> BenchReport:
    started = time.monotonic()
    sets = prompt_sets(prompts, rounds)
    warmup, timed = sets[0], sets[1:]
    results = {m: ModeResult(m, MODE_NAMES[m]) for m in "abc" if m in modes}
    env: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "vllm_cpu_omp_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
    }
    home = Path(tempfile.mkdtemp(prefix="bench-sampler-"))
    service: ServiceProcesses | None = None
    client: ServiceClient | None = None
    offline: Offline | None = None
    dtype: Any = None
    try:
        if "a" in results:
            _log(f"starting nats-server and the sampler service (logs in {home})")
            service = ServiceProcesses(model, home)
            service.start()
        if "b" in results:
            _log("starting the offline vLLM engine")
            t0 = time.monotonic()
            offline = Offline(model)
            dtype = offline.dtype
            env["offline_start_s"] = round(time.monotonic() - t0, 1)
            env["prefix_caching"] = offline.prefix_caching
        if service is not None:
            t0 = time.monotonic()
            service.wait_serving(SERVICE_START_TIMEOUT_S)
            env["service_wait_s"] = round(time.monotonic() - t0, 1)
            client = ServiceClient(service.nats_url)

        runners: dict[str, Any] = {}
        if client is not None:
            runners["a"] = client
        if offline is not None:
            runners["b"] = offline
        for mode, runner in runners.items():
            _log(f"warm-up ({mode})")
            runner.run_round(warmup, n, min(WARMUP_TOKENS, max_tokens), temperature)
        for i, batch in enumerate(timed):
            order = sorted(runners) if i % 2 == 0 else sorted(runners, reverse=True)
            for mode in order:
                wall, tokens, samples = runners[mode].run_round(batch, n, max_tokens, temperature)
                result = results[mode]
                result.walls.append(wall)
                result.tokens.append(tokens)
                result.samples = samples
                _log(f"round {i + 1} ({mode}): {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f}/s")
        if service is not None:
            env["service_metrics"] = _metric_lines(service.metrics())
    finally:
        if client is not None:
            client.close()
        if service is not None:
            service.stop()
        if offline is not None:
            offline.close()
    shutil.rmtree(home, ignore_errors=True)  # kept (with the service's logs) when the run failed

    if "c" in results:
        import torch

        hf = Transformers(model, dtype if dtype is not None else _config_dtype(model))
        env["torch_threads"] = torch.get_num_threads()
        env["dtype"] = str(hf.model.dtype)
        _log("warm-up (c)")
        hf.run_round(warmup, n, min(WARMUP_TOKENS, max_tokens), temperature)
        for i, batch in enumerate(timed[:hf_rounds]):
            wall, tokens, samples = hf.run_round(batch, n, max_tokens, temperature)
            results["c"].walls.append(wall)
            results["c"].tokens.append(tokens)
            results["c"].samples = samples
            _log(f"round {i + 1} (c): {tokens} tokens in {wall:.1f} s = {tokens / wall:.1f}/s")
        del hf
        gc.collect()
    elif dtype is not None:
        env["dtype"] = str(dtype)

    env["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    env["total_s"] = round(time.monotonic() - started, 1)
    settings = {
        "model": str(model),
        "prompts": prompts,
        "n": n,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "rounds": rounds,
        "hf_rounds": hf_rounds,
        "modes": modes,
    }
    return BenchReport(settings=settings, environment=env, modes=results)


def _config_dtype(model: Path) -> Any:
    """The dtype vLLM would have served in when (b) did not run: the checkpoint's, or float32
    on a CPU without native bfloat16 (the sampler's engine_dtype)."""
    import torch
    from transformers import AutoConfig

    if engine_dtype("auto", bool(torch.cuda.is_available()), cpu_flags()) == "float32":
        return torch.float32
    dtype = getattr(AutoConfig.from_pretrained(model), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    return dtype if isinstance(dtype, torch.dtype) else torch.bfloat16


def _metric_lines(text: str) -> dict[str, float]:
    """A few of the service's metrics after the run (to show they move)."""
    wanted = (
        "ucoder_sampler_generated_tokens_total",
        "ucoder_sampler_prefix_cache_queries_total",
        "ucoder_sampler_prefix_cache_hits_total",
        'ucoder_sampler_engine_tokens_total{kind="generation"}',
        "ucoder_sampler_requests_in_flight",
    )
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


# ---------------------------------------------------------------------------------------------
# Output


def render(report: BenchReport, console: Console) -> None:
    s, e = report.settings, report.environment
    console.print(
        f"model: {s['model']}   dtype: {e.get('dtype', '?')}   "
        f"prefix caching: {e.get('prefix_caching', '?')}",
        markup=False,
    )
    console.print(
        f"workload per round: {s['prompts']} HumanEval candidate prompts x n={s['n']}, "
        f"max_tokens {s['max_tokens']}, temperature {s['temperature']}; rounds: {s['rounds']} "
        f"((a), (b) alternating), {s['hf_rounds']} for (c)",
        markup=False,
    )
    console.print(
        f"cores: {e['cores']}   VLLM_CPU_OMP_THREADS_BIND: {e['vllm_cpu_omp_threads_bind']}   "
        f"torch threads (c): {e.get('torch_threads', '-')}   load avg start/end: "
        f"{e['load_avg_start'][0]}/{e['load_avg_end'][0]}   total {e['total_s']} s",
        markup=False,
    )
    table = Table(title="sampler benchmark (generated tokens/s, median of rounds)")
    table.add_column("mode", no_wrap=True)
    for col in (
        "rounds",
        "samples",
        "tokens",
        "tok/sample",
        "wall s",
        "tokens/s",
        "vs (b)",
        "per round tok/s",
    ):
        table.add_column(col, justify="right")
    for row in report.rows():
        label = f"({row['mode']}) {row['name']}"
        if "tokens_per_s" not in row:
            table.add_row(label, "-", "-", "-", "-", "-", "not run")
            continue
        ratio = row["vs_offline"]
        table.add_row(
            label,
            str(row["rounds"]),
            str(row["samples_per_round"]),
            f"{row['tokens_per_round']:.0f}",
            f"{row['tokens_per_sample']:.1f}",
            f"{row['wall_s']:.2f}",
            f"{row['tokens_per_s']:.1f}",
            "-" if ratio is None else f"{ratio:.3f}",
            " ".join(f"{r:.1f}" for r in row["round_tokens_per_s"]),
        )
    console.print(table)
    ratios = report.ratios()
    per_round = report.round_ratios()
    console.print(
        "(a)/(b) = "
        + ("-" if ratios["a/b"] is None else f"{ratios['a/b']:.3f}")
        + (f" (per round: {', '.join(f'{r:.3f}' for r in per_round)})" if per_round else "")
        + "   (c)/(b) = "
        + ("-" if ratios["c/b"] is None else f"{ratios['c/b']:.3f}"),
        markup=False,
    )
    for name, verdict in report.targets().items():
        console.print(f"target {name}: {verdict}", markup=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sampler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="", help="model directory (default: Gemma 3 270M)")
    parser.add_argument("--prompts", type=int, default=PROMPTS, help="HumanEval prompts per round")
    parser.add_argument("--n", type=int, default=N, help="samples per prompt")
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="token limit of a sample")
    parser.add_argument("--temperature", type=float, default=TEMPERATURE)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="timed rounds of (a) and (b), alternating")
    parser.add_argument("--hf-rounds", type=int, default=HF_ROUNDS, help="timed rounds of (c)")
    parser.add_argument("--modes", default="abc", help="which of a (service), b (offline), c (transformers)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    modes = "".join(m for m in "abc" if m in args.modes)
    if not modes or set(args.modes) - set("abc"):
        parser.error("--modes: letters from a, b, c")
    if min(args.prompts, args.n, args.max_tokens, args.rounds) < 1 or args.hf_rounds < 1:
        parser.error("--prompts, --n, --max-tokens, --rounds and --hf-rounds must be >= 1")
    if args.hf_rounds > args.rounds:
        parser.error("--hf-rounds must be <= --rounds (it reuses their prompts)")
    # vLLM logs to stdout by default; keep stdout for the table.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    model = models.resolve_model(args.model)
    report = run_bench(
        model, modes, args.prompts, args.n, args.max_tokens, args.temperature, args.rounds, args.hf_rounds
    )
    render(report, Console(width=max(Console().width, 150)))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
