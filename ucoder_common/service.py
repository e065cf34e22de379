"""Process bootstrap shared by all services: gRPC server, health, metrics, NATS, SIGTERM.

A service's `__main__` only says what it is made of (`ServiceParts`); `run_service`
does the rest: load config (exit 2 with one line on a bad setting), log set-up, NATS
connection and topology, gRPC server with grpc.health.v1 (NOT_SERVING until the
service's `ready` hook returns), the /metrics endpoint, the JetStream workers, and a
graceful stop on SIGTERM/SIGINT: health goes NOT_SERVING, workers stop fetching and
finish in-flight jobs, the gRPC server drains, NATS drains.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from ucoder_common.bus import Bus, JetStreamWorker
from ucoder_common.config import ConfigError, ConfigT, ServiceConfig, load_config
from ucoder_common.logs import configure_logging
from ucoder_common.metrics import start_metrics_server

log = logging.getLogger(__name__)

# The empty service name means "the whole server" in grpc.health.v1.
OVERALL = ""


@dataclass(frozen=True)
class GrpcBinding:
    """One gRPC service to register: the generated `add_XServicer_to_server`, the servicer, its full name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


@dataclass
class ServiceParts:
    """What a service is made of; returned by the service's build function."""

    bindings: list[GrpcBinding]
    workers: list[JetStreamWorker] = field(default_factory=list)
    # Awaited in the background after start; the service reports SERVING once it returns.
    ready: Callable[[], Awaitable[None]] | None = None
    # Called on shutdown after workers and the server stopped, in order.
    close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def build_server(
    cfg: ServiceConfig, bindings: Sequence[GrpcBinding], health: HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """An aio gRPC server with the services and health registered, bound to cfg's address.

    Returns the server (not started) and the bound port (cfg.grpc_port 0 picks a free one).
    """
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{cfg.grpc_host}:{cfg.grpc_port}")
    if port == 0:
        raise OSError(f"grpc_port: cannot bind {cfg.grpc_host}:{cfg.grpc_port}")
    return server, port


async def set_health(health: HealthServicer, names: Sequence[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in (OVERALL, *names):
        await health.set(name, status)


def _write_ready_file(path: str, info: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, target)


async def serve(name: str, cfg: ConfigT, build: Callable[[ConfigT, Bus], Awaitable[ServiceParts]]) -> bool:
    """Runs the service until SIGTERM/SIGINT; returns False when it failed to start."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    bus = await Bus.connect(cfg.nats_url, name=f"ucoder-{name}", token=cfg.nats_token)
    parts = await build(cfg, bus)
    health = HealthServicer()
    names = [b.full_name for b in parts.bindings]
    await set_health(health, names, serving=False)
    server, port = build_server(cfg, parts.bindings, health)
    await server.start()
    metrics_port = start_metrics_server(cfg.grpc_host, cfg.metrics_port)
    log.info("started", extra={"grpc_port": port, "metrics_port": metrics_port, "pid": os.getpid()})

    async def become_ready() -> None:
        if parts.ready is not None:
            await parts.ready()
        # Workers pull jobs only once the service can do them (e.g. the model is loaded).
        for worker in parts.workers:
            await worker.start()
        await set_health(health, names, serving=True)
        if cfg.ready_file:
            _write_ready_file(
                cfg.ready_file, {"grpc_port": port, "metrics_port": metrics_port, "pid": os.getpid()}
            )
        log.info("serving", extra={"grpc_port": port})

    ready_task = asyncio.create_task(become_ready())
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({ready_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    started = not (ready_task.done() and ready_task.exception() is not None)
    if not started:
        log.error("start-up failed", exc_info=ready_task.exception())
        stop.set()
    await stop.wait()

    log.info("stopping", extra={"grace_s": cfg.shutdown_grace_s})
    ready_task.cancel()
    await health.enter_graceful_shutdown()
    for worker in parts.workers:
        await worker.stop(cfg.shutdown_grace_s)
    await server.stop(cfg.shutdown_grace_s)
    for close in parts.close:
        try:
            await close()
        except Exception:
            log.exception("close hook failed")
    await bus.close()
    log.info("stopped")
    return started


def run_service(
    name: str,
    config_cls: type[ConfigT],
    build: Callable[[ConfigT, Bus], Awaitable[ServiceParts]],
    argv: Sequence[str] | None = None,
) -> int:
    """Entry point of a service process; returns the exit code."""
    try:
        cfg = load_config(config_cls, name, sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"ucoder {name}: {exc}", file=sys.stderr)
        return 2
    configure_logging(name, cfg.log_level, cfg.log_format)
    try:
        if not asyncio.run(serve(name, cfg, build)):
            return 1  # start-up failed (logged): supervisors must see it as a failure
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    return 0
