"""Host side of candidate execution: sandbox backends and a pool of long-lived sandboxes.

Each sandbox is one long-lived process running ``harness.py`` (its docstring has the wire
protocol and the supervisor/worker design; docs/executor.md the guarantees). Starting a gVisor
sandbox costs about a second, so a sandbox serves up to ``sandbox_recycle_after`` candidates;
inside it, a worker process runs up to ``recycle_after`` of them and is replaced on any sign of
damage. The pool sends a job's candidates in batches (``run_many``) and keeps two requests in
flight per sandbox, so no sandbox idles for a round trip.

Backends (isolation level is explicit configuration, DESIGN.md section 4):

* ``gvisor``  - ``runsc run`` of an OCI bundle: own kernel, no network, own pid namespace, and a
  root filesystem of its own (rootfs.py: the interpreter, its standard library read-only and a
  private tmpfs ``/tmp``; nothing else of the host exists inside).
* ``bwrap``   - bubblewrap: own pid/net/ipc/uts namespaces and the same root tree through binds.
* ``process`` - a plain subprocess with per-candidate limits only; for pods that already run under
  ``runtimeClassName: gvisor`` (the service requires ``allow_unsandboxed`` for it).

Outcome taxonomy: a run either returns one :class:`TestOutcome` per input (the candidate's
behaviour, whatever it was) or raises :class:`SandboxError` (the sandbox broke; retry).
"""

from __future__ import annotations

import ast
import asyncio
import collections
import contextlib
import enum
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.executor.harness import SETUP_SLACK_S, TEST_SLACK_S, canonical_digest
from services.executor.rootfs import (
    SANDBOX_CAPABILITIES,
    RootError,
    SandboxRoot,
    build_root,
    bwrap_args,
    describe_interpreter,
    oci_spec,
)

HARNESS_PATH = Path(__file__).with_name("harness.py")
STARTUP_TIMEOUT_S = 30.0
"""How long a new sandbox may take to report ready."""
RESPONSE_MARGIN_S = 10.0
"""Extra time on top of the harness's own per-test deadlines before the host gives up on it."""
STOP_GRACE_S = 2.0
STREAM_LIMIT = 64 << 20
"""Largest protocol frame the host accepts from a harness."""

KINDS = frozenset({"returned", "raised", "timeout", "memory", "output_limit", "compile_error", "crashed"})


class Backend(enum.StrEnum):
    GVISOR = "gvisor"
    BWRAP = "bwrap"
    PROCESS = "process"


@dataclass(frozen=True)
class TestOutcome:
    """What one candidate did on one test input."""

    __test__ = False  # not a pytest test class

    kind: str
    """returned | raised | timeout | memory | output_limit | compile_error | crashed"""
    value_digest: str = ""
    """canonical_digest of the returned value (kind == "returned")."""
    exception_type: str = ""
    """Exception class name for raised/compile_error; ``signal:NAME``/``exit:N`` for crashed."""
    value_repr: str = ""
    """Truncated repr of the returned value or the exception (at most 200 characters)."""
    duration_ms: float = 0.0


class SandboxError(Exception):
    """Infrastructure failure (not the candidate's fault); callers retry."""


EventSink = Callable[[dict[str, int]], None]
"""Receives counts of what happened inside sandboxes: ``sandbox_started``, ``spawned`` (a fresh
worker), ``recycled:<reason>``, ``confirm:<failure>`` and ``candidate_killed_sandbox``."""


def outcome_passed(outcome: TestOutcome, expected_literal: str) -> bool:
    """True when the candidate returned a value canonically equal to ``expected_literal``."""
    if outcome.kind != "returned":
        return False
    return canonical_digest(ast.literal_eval(expected_literal)) == outcome.value_digest


def _command(
    backend: Backend, python: str, root: SandboxRoot | None, sandbox_dir: str, slot: Slot
) -> list[str]:
    """The host command that starts one sandbox; ``sandbox_dir`` is the sandbox's own host
    directory (runsc's state and bundle live in it)."""
    if backend is Backend.PROCESS or root is None:
        return [python, "-u", "-I", str(HARNESS_PATH), *slot.args()]
    harness = root.command([*slot.args(), "--isolated"])
    if backend is Backend.GVISOR:
        runsc = shutil.which("runsc")
        if runsc is None:
            raise SandboxError("backend gvisor: runsc not found on PATH")
        state_dir = os.path.join(sandbox_dir, "state")
        bundle_dir = os.path.join(sandbox_dir, "bundle")
        os.mkdir(state_dir, 0o700)
        os.mkdir(bundle_dir, 0o700)
        with open(os.path.join(bundle_dir, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(oci_spec(root, harness), fh)
        # cgroups are not needed: the harness limits each worker with rlimits.
        return [
            runsc,
            f"--root={state_dir}",
            "--network=none",
            "--ignore-cgroups",
            "run",
            f"--bundle={bundle_dir}",
            # The id names the sandbox's control socket, which is host-wide: one per sandbox.
            f"ucoder-{os.getpid()}-{os.path.basename(sandbox_dir)}",
        ]
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("backend bwrap: bwrap not found on PATH")
    if os.getuid() == 0:
        # As root, skip the user namespace so the harness can still drop candidates to their uid.
        ns = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        ns += [a for cap in SANDBOX_CAPABILITIES for a in ("--cap-add", cap)]
    else:
        ns = ["--unshare-all"]
    return [bwrap, *ns, "--die-with-parent", "--new-session", "--clearenv", *bwrap_args(root), *harness]


@dataclass(frozen=True)
class Slot:
    """What one sandbox of a pool is told at start-up."""

    uid: int
    """uid its candidates run as (when the harness runs as root); distinct per slot."""
    recycle_after: int
    memory_mb: int

    def args(self) -> list[str]:
        return [
            *("--uid", str(self.uid)),
            *("--recycle-after", str(self.recycle_after)),
            *("--memory-mb", str(self.memory_mb)),
        ]


class _Sandbox:
    """One long-lived harness process."""

    def __init__(
        self, backend: Backend, python: str, slot: Slot, on_events: EventSink, root: SandboxRoot | None
    ) -> None:
        self.backend = backend
        self.python = python
        self.root = root
        """The pool's root filesystem (gvisor, bwrap); None for the process backend."""
        self.slot = slot
        self.on_events = on_events
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.generation = 0
        """Incremented on every start: a slot that saw generation g fail restarts only g."""
        self.lifecycle = asyncio.Lock()
        """Held while the sandbox starts or stops; requests wait for it."""
        self._tmp: str | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_task: asyncio.Task[None] | None = None
        # Requests are pipelined: a second one waits in the harness's stdin while the first
        # runs, so the sandbox never idles for a round trip. Answers come back in order.
        self._inflight: collections.deque[asyncio.Future[dict[str, Any]]] = collections.deque()
        self._queued_budget = 0.0
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        """Started, not exited, and its answers still being read (the reader stops on EOF)."""
        running = self.proc is not None and self.proc.returncode is None
        return running and self._reader is not None and not self._reader.done()

    def _stderr_tail(self) -> str:
        return " | ".join(self._stderr)[-2000:]

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.kill()  # also on cancellation: never leak a half-started sandbox
            raise

    async def _start(self) -> None:
        await self.kill()
        self._tmp = tempfile.mkdtemp(prefix=f"ucoder-sbx-{self.backend}-")
        os.chmod(self._tmp, 0o711)  # workers (another uid) traverse it to reach their own dirs
        try:
            cmd = _command(self.backend, self.python, self.root, self._tmp, self.slot)
        except OSError as exc:
            raise SandboxError(f"backend {self.backend}: cannot prepare {self._tmp}: {exc}") from exc
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TMPDIR": self._tmp}
        self.runs = 0
        self._stderr.clear()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self._tmp,
                env=env,
                start_new_session=True,
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            raise SandboxError(f"backend {self.backend}: cannot start {cmd[0]}: {exc}") from exc
        assert self.proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain_stderr(self.proc.stderr))
        try:
            hello = await self._read_frame(STARTUP_TIMEOUT_S)
        except SandboxError as exc:
            raise SandboxError(f"backend {self.backend}: sandbox did not start: {exc}") from exc
        if hello.get("ready") is not True:
            raise SandboxError(f"backend {self.backend}: unexpected hello {hello!r:.300}")
        self.generation += 1
        self._reader = asyncio.create_task(self._read_answers())
        self.on_events({"sandbox_started": 1})

    async def _read_answers(self) -> None:
        """Hands each answer to the oldest request in flight; fails them all if the sandbox breaks."""
        try:
            while True:
                frame = await self._read_frame(None)
                if not self._inflight:
                    raise SandboxError(f"answer nobody asked for: {frame!r:.200}")
                future = self._inflight.popleft()
                if not future.done():
                    future.set_result(frame)
        except SandboxError as exc:
            self._fail_inflight(exc)

    def _fail_inflight(self, exc: SandboxError) -> None:
        while self._inflight:
            future = self._inflight.popleft()
            if not future.done():
                future.set_exception(exc)

    async def _read_frame(self, timeout: float | None) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError as exc:
            raise SandboxError(
                f"no answer within {timeout or 0:.1f}s; stderr: {self._stderr_tail()}"
            ) from exc
        except (ValueError, asyncio.LimitOverrunError) as exc:
            raise SandboxError(f"oversized frame: {exc}") from exc
        if not line:
            if self._stderr_task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
            raise SandboxError(f"sandbox exited; stderr: {self._stderr_tail()}")
        try:
            frame = json.loads(line)
        except ValueError as exc:
            raise SandboxError(f"malformed frame {line[:200]!r}") from exc
        if not isinstance(frame, dict):
            raise SandboxError(f"malformed frame {line[:200]!r}")
        return frame

    async def request(self, req: dict[str, Any], budget: float) -> list[list[TestOutcome]]:
        """Sends one batch and waits for its answer (``budget`` seconds once the requests
        ahead of it in this sandbox are done)."""
        if self.proc is None or self.proc.stdin is None or self._reader is None or self._reader.done():
            raise SandboxError("sandbox is not running")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        timeout = self._queued_budget + budget
        self._queued_budget += budget
        try:
            async with self._write_lock:
                self._inflight.append(future)
                try:
                    self.proc.stdin.write(json.dumps(req).encode() + b"\n")
                    await self.proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise SandboxError(f"sandbox stdin closed; stderr: {self._stderr_tail()}") from exc
            try:
                frame = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError as exc:
                raise SandboxError(f"no answer within {timeout:.1f}s; stderr: {self._stderr_tail()}") from exc
        finally:
            self._queued_budget -= budget
        if "error" in frame:
            raise SandboxError(f"harness rejected the request: {frame['error']}")
        raw = frame.get("results")
        n = len(req["inputs"])
        if not isinstance(raw, list) or len(raw) != len(req["codes"]):
            raise SandboxError("harness answered with the wrong number of results")
        if not all(isinstance(r, list) and len(r) == n for r in raw):
            raise SandboxError("harness answered with the wrong number of outcomes")
        self.runs += len(raw)
        try:
            results = [[_to_outcome(o) for o in r] for r in raw]
        except (KeyError, TypeError, ValueError) as exc:
            raise SandboxError(f"malformed outcome: {exc}") from exc
        events = frame.get("events")
        if isinstance(events, dict):
            self.on_events({str(k)[:100]: int(v) for k, v in events.items() if isinstance(v, int)})
        return results

    async def stop(self) -> None:
        """Waits for the requests in flight, closes stdin (the harness exits on EOF), then kills
        what is left."""
        if self._inflight:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*self._inflight, return_exceptions=True), STOP_GRACE_S * 30
                )
        if self.proc is not None and self.proc.stdin is not None and self.proc.returncode is None:
            self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE_S)
        await self.kill()

    async def kill(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        self._fail_inflight(SandboxError("sandbox stopped"))
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # runsc, gofer and sandbox share the session
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _to_outcome(raw: Any) -> TestOutcome:
    if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
        raise ValueError(f"bad outcome {raw!r:.200}")
    return TestOutcome(
        kind=raw["kind"],
        value_digest=str(raw.get("value_digest", "")),
        exception_type=str(raw.get("exception_type", "")),
        value_repr=str(raw.get("value_repr", "")),
        duration_ms=float(raw.get("duration_ms", 0.0)),
    )


def default_uid_base(backend: Backend) -> int:
    """First candidate uid of a pool. Sandboxed backends have their own pid namespace, so a fixed
    range is fine; the process backend shares the host with other executors, so each executor
    process takes its own range (derived from its pid) and candidates of two executors never share a uid."""
    if backend is Backend.PROCESS:
        return 200_000 + (os.getpid() % 100_000) * 64
    return 62_000


RUN_ATTEMPTS = 3
"""Tries of one candidate whose sandbox broke, before it is blamed (if a probe then works)."""
PIPELINE_DEPTH = 2
"""Requests a sandbox holds at once: the next batch waits in its stdin while one runs."""

PROBE_CODE = "def probe(a, b):\n    return a + b\n"


def _prepare_root(python: str) -> SandboxRoot:
    return build_root(describe_interpreter(python), HARNESS_PATH)


class SandboxPool:
    """``size`` long-lived sandboxes of one backend; ``run`` executes one candidate on a free one."""

    def __init__(
        self,
        backend: Backend,
        size: int,
        python: str = sys.executable,
        default_timeout_s: float = 2.0,
        default_memory_mb: int = 512,
        recycle_after: int = 1000,
        sandbox_recycle_after: int = 20000,
        uid_base: int = 0,
        candidate_timeout_s: float = 0.0,
        on_events: EventSink | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        if recycle_after < 1 or sandbox_recycle_after < 1:
            raise ValueError("recycle_after and sandbox_recycle_after must be >= 1")
        if not 0 <= uid_base <= 2**31 - size:
            raise ValueError("uid_base must be 0 (automatic) or a positive uid")
        self.backend = Backend(backend)
        self.size = size
        self.python = python
        self.default_timeout_s = default_timeout_s
        self.default_memory_mb = default_memory_mb
        self.recycle_after = recycle_after
        self.sandbox_recycle_after = sandbox_recycle_after
        self.uid_base = uid_base or default_uid_base(self.backend)
        self.candidate_timeout_s = candidate_timeout_s
        self.events: collections.Counter[str] = collections.Counter()
        self._sink = on_events
        self._all: list[_Sandbox] = []
        self._idle: asyncio.Queue[_Sandbox] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.root: SandboxRoot | None = None
        """The root filesystem every sandbox of the pool uses as ``/`` (rootfs.py); built by start()."""

    def _on_events(self, events: dict[str, int]) -> None:
        self.events.update(events)
        if self._sink is not None:
            self._sink(events)

    async def start(self) -> None:
        """Starts ``size`` sandboxes; raises SandboxError if the backend cannot start."""
        if self.backend is not Backend.PROCESS and self.root is None:
            try:
                self.root = await asyncio.to_thread(_prepare_root, self.python)
            except RootError as exc:
                raise SandboxError(f"backend {self.backend}: {exc}") from exc
        self._all = [
            _Sandbox(
                self.backend,
                self.python,
                # Distinct uids keep candidates of different slots from signalling each other
                # where there is no pid namespace between them (the process backend).
                Slot(self.uid_base + index, self.recycle_after, self.default_memory_mb),
                self._on_events,
                self.root,
            )
            for index in range(self.size)
        ]
        results = await asyncio.gather(*(sb.start() for sb in self._all), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close()
            if isinstance(errors[0], SandboxError):
                raise errors[0]
            raise SandboxError(f"backend {self.backend}: {errors[0]!r}") from errors[0]
        for _ in range(PIPELINE_DEPTH):  # round robin: concurrent requests spread out first
            for sb in self._all:
                self._idle.put_nowait(sb)

    async def run(
        self,
        code: str,
        entry_point: str,
        inputs: list[str],
        timeout_s: float | None = None,
        memory_mb: int | None = None,
    ) -> list[TestOutcome]:
        """Runs ``code``'s ``entry_point`` on each input (a Python literal tuple string).

        Returns one outcome per input, in order. Raises ValueError for an invalid request (e.g. an
        input that is not a literal) and SandboxError when sandboxes keep breaking for reasons
        that are not the candidate's (they are restarted).
        """
        req = self._request([code], entry_point, inputs, timeout_s, memory_mb)
        for attempt in range(1, RUN_ATTEMPTS + 1):
            try:
                return (await self._attempt(req))[0]
            except SandboxError:
                if attempt == RUN_ATTEMPTS:
                    # Sandboxes died under this candidate every time. If a trivial probe now runs
                    # fine, they are healthy and the candidate is what kills them: its outcome.
                    if not await self._probe():
                        raise
                else:
                    # Once more, on a healthy sandbox (a pause lets the pool notice other deaths).
                    await asyncio.sleep(0.1 * attempt)
        self._on_events({"candidate_killed_sandbox": 1})
        return [TestOutcome("crashed", exception_type="sandbox_killed") for _ in inputs]

    async def run_many(
        self,
        codes: list[str],
        entry_point: str,
        inputs: list[str],
        timeout_s: float | None = None,
        memory_mb: int | None = None,
        batch: int = 16,
    ) -> list[list[TestOutcome]]:
        """Runs several candidates for one problem on the same inputs; one outcome list each.

        Candidates go to the sandboxes in batches: one round trip and usually one write per batch
        instead of per candidate, which is what matters under gVisor. Batches hold up to
        ``batch`` candidates but are split so every sandbox gets a share of the job: one slow
        problem's candidates then run side by side instead of queueing in one sandbox. A batch
        whose sandbox breaks is retried once, then its candidates run one by one (so a candidate
        that kills sandboxes is found and blamed alone).
        """
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self._request(codes[:1], entry_point, inputs, timeout_s, memory_mb)  # validates once
        size = max(1, min(batch, -(-len(codes) // self.size)))
        groups = [codes[k : k + size] for k in range(0, len(codes), size)]

        async def one(group: list[str]) -> list[list[TestOutcome]]:
            req = self._request(group, entry_point, inputs, timeout_s, memory_mb, validated=True)
            for _ in range(2):
                try:
                    return await self._attempt(req)
                except SandboxError:
                    continue
            return [await self.run(code, entry_point, inputs, timeout_s, memory_mb) for code in group]

        done = await asyncio.gather(*(one(group) for group in groups))
        return [result for group_results in done for result in group_results]

    def _request(
        self,
        codes: list[str],
        entry_point: str,
        inputs: list[str],
        timeout_s: float | None,
        memory_mb: int | None,
        validated: bool = False,
    ) -> dict[str, Any]:
        if self._closed or not self._all:
            raise SandboxError("pool is not started")
        if not validated:
            for text in inputs:
                ast.literal_eval(text)  # ValueError/SyntaxError: the caller's input is not a literal
        return {
            "codes": list(codes),
            "entry_point": entry_point,
            "inputs": list(inputs),
            "timeout_s": self.default_timeout_s if timeout_s is None else float(timeout_s),
            "memory_mb": self.default_memory_mb if memory_mb is None else int(memory_mb),
            "candidate_timeout_s": self.candidate_timeout_s,
        }

    async def _probe(self) -> bool:
        req = self._request([PROBE_CODE], "probe", ["(1, 2)"], None, None, validated=True)
        try:
            out = await self._attempt(req)
        except SandboxError:
            return False
        return [o.value_digest for o in out[0]] == [canonical_digest(3)]

    async def _attempt(self, req: dict[str, Any]) -> list[list[TestOutcome]]:
        timeout = float(req["timeout_s"])
        n = len(req["inputs"])
        per_candidate = float(req["candidate_timeout_s"]) or (SETUP_SLACK_S + n * (timeout + TEST_SLACK_S))
        # Worst case: every candidate uses its whole budget, plus a confirmation run each.
        budget = SETUP_SLACK_S + 2 * per_candidate * len(req["codes"]) + RESPONSE_MARGIN_S
        sb = await self._idle.get()  # a slot: each sandbox has PIPELINE_DEPTH of them
        generation = -1
        healthy = False
        try:
            async with sb.lifecycle:  # waits while the sandbox (re)starts
                if not sb.alive:
                    await sb.start()
                generation = sb.generation
            results = await sb.request(req, budget)
            healthy = True
            return results
        finally:
            retire = healthy and sb.runs >= self.sandbox_recycle_after
            if healthy and not retire:
                self._idle.put_nowait(sb)
            else:
                self._restart_later(sb, generation, graceful=healthy)

    def _restart_later(self, sb: _Sandbox, generation: int, graceful: bool) -> None:
        """Restarts ``sb`` unless another slot already restarted it since ``generation``; then
        gives the slot back."""

        async def restart() -> None:
            try:
                async with sb.lifecycle:
                    if sb.generation == generation and not self._closed:
                        await (sb.stop() if graceful else sb.kill())
                        with contextlib.suppress(SandboxError):
                            await sb.start()  # on failure the next run() retries the start
            finally:
                self._idle.put_nowait(sb)

        task = asyncio.create_task(restart())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        # Restarts in flight finish (bounded by STARTUP_TIMEOUT_S) so no half-started sandbox leaks.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(sb.stop() for sb in self._all), return_exceptions=True)
        if self.root is not None:
            self.root.remove()
            self.root = None

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
