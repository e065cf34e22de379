"""Process bootstrap shared by all services: gRPC server, health, metrics, NATS, SIGTERM.

A service's `__main__` only says what it is made of (`ServiceParts`); `run_service`
does the rest: load config (exit 2 with one line on a bad setting), log set-up, NATS
connection and topology, gRPC server with grpc.health.v1 (NOT_SERVING until the
service's `ready` hook returns; TLS and a bearer token when set, see ucoder_common.grpc_auth;
undecodable requests are INVALID_ARGUMENT, ucoder_common.grpc_guard), the /metrics endpoint,
the JetStream workers, and a graceful stop on SIGTERM/SIGINT: health goes NOT_SERVING, workers
stop fetching and finish in-flight jobs, the gRPC server drains, NATS drains.
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

from ucoder_common import grpc_auth
from ucoder_common.bus import Bus, JetStreamWorker, NatsAuth
from ucoder_common.config import ConfigError, ConfigT, ServiceConfig, load_config
from ucoder_common.grpc_guard import DecodeGuard
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
    cfg: ServiceConfig,
    bindings: Sequence[GrpcBinding],
    health: HealthServicer,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An aio gRPC server with the services and health registered, bound to cfg's address.

    TLS when cfg has grpc_tls_cert/key (`credentials`, when given, are those already read), and
    the bearer-token check when cfg has grpc_token (ucoder_common.grpc_auth). Returns the server
    (not started) and the bound port (cfg.grpc_port 0 picks a free one).
    """
    credentials = credentials or grpc_auth.server_credentials(cfg)
    server = grpc.aio.server(
        # The token check first: an unauthenticated call is refused before anything is decoded.
        interceptors=[*grpc_auth.server_interceptors(cfg), DecodeGuard()],
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"{cfg.grpc_host}:{cfg.grpc_port}"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"grpc_port: cannot bind {address}")
    return server, port


def build_health_server(cfg: ServiceConfig, health: HealthServicer) -> tuple[grpc.aio.Server, int] | None:
    """The plaintext grpc.health.v1-only server on cfg.grpc_health_port (None when -1): Kubernetes
    gRPC probes cannot speak TLS, and health needs no credential."""
    if cfg.grpc_health_port < 0:
        return None
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"{cfg.grpc_host}:{cfg.grpc_health_port}")
    if port == 0:
        raise OSError(f"grpc_health_port: cannot bind {cfg.grpc_host}:{cfg.grpc_health_port}")
    return server, port


def _warn_if_open(cfg: ServiceConfig) -> None:
    if cfg.grpc_token or cfg.grpc_tls_client_ca:
        return
    if cfg.grpc_host in ("127.0.0.1", "::1", "localhost"):
        return
    log.warning(
        "the gRPC API takes calls from anyone who can reach it: set grpc_token (and grpc_tls_cert/key)",
        extra={"grpc_host": cfg.grpc_host},
    )


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

    # Unreadable TLS files or credentials stop start-up before anything is connected.
    credentials = grpc_auth.server_credentials(cfg)
    nats_auth = NatsAuth.from_config(cfg)
    nats_auth.connect_options()
    _warn_if_open(cfg)
    bus = await Bus.connect(cfg.nats_url, name=f"ucoder-{name}", auth=nats_auth)
    parts = await build(cfg, bus)
    health = HealthServicer()
    names = [b.full_name for b in parts.bindings]
    await set_health(health, names, serving=False)
    server, port = build_server(cfg, parts.bindings, health, credentials)
    health_server = build_health_server(cfg, health)
    health_port = health_server[1] if health_server else -1
    await server.start()
    if health_server:
        await health_server[0].start()
    metrics_port = start_metrics_server(cfg.grpc_host, cfg.metrics_port)
    ports = {"grpc_port": port, "metrics_port": metrics_port, "grpc_health_port": health_port}
    log.info(
        "started",
        extra={**ports, "pid": os.getpid(), "tls": credentials is not None, "token": bool(cfg.grpc_token)},
    )

    async def become_ready() -> None:
        if parts.ready is not None:
            await parts.ready()
        # Workers pull jobs only once the service can do them (e.g. the model is loaded).
        for worker in parts.workers:
            await worker.start()
        await set_health(health, names, serving=True)
        if cfg.ready_file:
            _write_ready_file(cfg.ready_file, {**ports, "pid": os.getpid()})
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
    if health_server:
        await health_server[0].stop(0)
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
