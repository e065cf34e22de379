"""Sandbox-side harness: canonical outcome digests and the long-lived worker loop.

STDLIB ONLY and self-contained: the host runs this file as a script inside the sandbox
(``python -u -I harness.py [--isolated]``), and unit tests import it as
``services.executor.harness`` for :func:`canonical_digest` and :func:`value_repr`.

Protocol (newline-delimited JSON, one frame per line):

* harness -> host, once at start: ``{"ready": true, "pid": .., "uid": .., "drops_privileges": bool}``
* host -> harness: ``{"code", "entry_point", "inputs": [literal tuple strings], "timeout_s", "memory_mb"}``
* harness -> host: ``{"outcomes": [{"kind", "value_digest", "exception_type", "value_repr",
  "duration_ms"}, ...]}`` (one per input, in order) or ``{"error": str}`` for a malformed request.

The harness process itself never runs candidate code. For each candidate it forks a child that
isolates itself (new session, empty environment, private temp dir, fds 0/1/2 on /dev/null, rlimits,
uid/gid 65534 when root), compiles the code and runs the inputs in order, writing one JSON line per
test to a dedicated result pipe. The parent matches lines to the expected test index, enforces a
wall-clock deadline per test, and when the child hangs, dies or writes garbage it kills the child's
process group, records ``timeout``/``crashed`` for that test and forks a new child that continues
with the next input.

Known limit: the candidate runs in the same process that computes its own digests, so it can forge
its *own* outcomes (never another candidate's: each candidate is its own child and the parent only
accepts lines for the current test index).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import reprlib
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

# ---------------------------------------------------------------------------------------------
# Canonical digests

DIGEST_CHARS = 32
"""Hex characters kept from the sha256 of the canonical encoding."""

FLOAT_SIG_DIGITS = 12
"""Floats are compared after rounding to this many significant digits (``f"{x:.12g}"``)."""

MAX_DEPTH = 200
"""Containers nested deeper than this are encoded as a depth marker instead of being walked."""

_FLUSH_BYTES = 1 << 16


class _Sink:
    """Buffers small encoded pieces and streams them into a sha256."""

    __slots__ = ("buf", "h")

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.buf = bytearray()

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH_BYTES:
            self.h.update(self.buf)
            self.buf.clear()

    def digest(self) -> bytes:
        self.h.update(self.buf)
        self.buf.clear()
        return self.h.digest()


def _float_token(x: float) -> bytes:
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    r = float(f"{x:.{FLOAT_SIG_DIGITS}g}")
    if r == 0.0:
        r = 0.0  # -0.0 -> 0.0
    return repr(r).encode()


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{getattr(t, '__module__', '?')}.{getattr(t, '__qualname__', t.__name__)}"


def _encode(value: Any, sink: _Sink, path: set[int], depth: int) -> None:
    t = type(value)
    if value is None:
        sink.add(b"N;")
    elif t is bool:
        sink.add(b"B1;" if value else b"B0;")
    elif t is int:
        # hex is not subject to sys.set_int_max_str_digits, so huge ints still digest.
        sink.add(b"I" + format(value, "x").encode() + b";")
    elif t is float:
        sink.add(b"F" + _float_token(value) + b";")
    elif t is complex:
        sink.add(b"C" + _float_token(value.real) + b"," + _float_token(value.imag) + b";")
    elif t is str:
        data = value.encode("utf-8", "surrogatepass")
        sink.add(b"S%d:" % len(data) + data)
    elif t is bytes or t is bytearray:
        sink.add((b"Y%d:" if t is bytes else b"A%d:") % len(value) + bytes(value))
    elif t in (list, tuple, dict, set, frozenset):
        if id(value) in path:
            sink.add(b"R;")  # cycle marker
            return
        if depth >= MAX_DEPTH:
            sink.add(b"X;")  # depth-cap marker
            return
        path.add(id(value))
        try:
            if t is list or t is tuple:
                sink.add((b"L%d[" if t is list else b"T%d[") % len(value))
                for item in value:
                    _encode(item, sink, path, depth + 1)
                sink.add(b"]")
            else:
                subs: list[bytes] = []
                if t is dict:
                    for k, v in value.items():
                        sub = _Sink()
                        _encode(k, sub, path, depth + 1)
                        _encode(v, sub, path, depth + 1)
                        subs.append(sub.digest())
                else:
                    for item in value:
                        sub = _Sink()
                        _encode(item, sub, path, depth + 1)
                        subs.append(sub.digest())
                subs.sort()
                tag = b"D" if t is dict else b"E" if t is set else b"Z"
                sink.add(tag + b"%d{" % len(subs) + b"".join(subs) + b"}")
        finally:
            path.discard(id(value))
    else:
        # Anything else (including subclasses of the builtins): qualified type name + safe repr.
        name = _type_name(value).encode("utf-8", "replace")
        text = _safe_full_repr(value).encode("utf-8", "surrogatepass")
        sink.add(b"O%d:" % len(name) + name + b"%d:" % len(text) + text)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _safe_full_repr(value: Any) -> str:
    try:
        text = repr(value)
        return _ADDRESS.sub("", text) if type(text) is str else "<repr returned non-str>"
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        return f"<repr failed: {type(exc).__name__}>"


def canonical_digest(value: Any) -> str:
    """Digest of a canonical encoding of ``value``; equal behaviour gives equal digests.

    Rules:

    * dict key order and set/frozenset order do not matter (items are encoded to sub-digests
      which are sorted), so unorderable mixed-type sets work;
    * types are tagged: ``[1] != (1,)``, ``1 != True``, ``1 != 1.0``, ``set != frozenset``,
      ``str != bytes``; subclasses of builtins count as "other objects";
    * floats: all NaNs are equal, ``-0.0 == 0.0``, ``±inf`` exact, and every other float is rounded
      to ``FLOAT_SIG_DIGITS`` (12) significant digits (``float(f"{x:.12g}")``) before encoding,
      so ``0.1 + 0.2`` digests like ``0.3``; complex numbers round both parts the same way;
    * ints of any size (encoded in hex, no digit limit);
    * a container that contains itself encodes the inner reference as a cycle marker; nesting
      deeper than ``MAX_DEPTH`` encodes a depth marker;
    * any other object encodes as its qualified type name plus ``repr`` with `` at 0x...``
      addresses removed (a failing ``repr`` is encoded as a marker naming the exception type).

    The encoding is streamed into sha256; the first ``DIGEST_CHARS`` hex characters are returned.
    """
    sink = _Sink()
    _encode(value, sink, set(), 0)
    return sink.digest().hex()[:DIGEST_CHARS]


_REPR = reprlib.Repr()
_REPR.maxlevel = 4
_REPR.maxstring = 200
_REPR.maxlong = 200
_REPR.maxother = 200
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 20


def value_repr(value: Any, limit: int = 200) -> str:
    """A repr of ``value`` that never raises, never builds a huge string, and is at most ``limit`` chars."""
    try:
        text = _REPR.repr(value)
        if type(text) is not str:
            text = "<repr returned non-str>"
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        text = f"<{type(value).__name__} repr failed: {type(exc).__name__}>"
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text


# ---------------------------------------------------------------------------------------------
# Worker loop

NOBODY = 65534
SETUP_SLACK_S = 5.0
"""Extra wall time for fork + compile + module-level code of a candidate."""
TEST_SLACK_S = 1.0
"""Wall time the parent allows beyond a test's timeout before killing the child."""
OUTPUT_CAP_BYTES = 1 << 20
"""Characters a candidate may print through sys.stdout/sys.stderr before ``output_limit``."""
FSIZE_LIMIT_BYTES = 1 << 20
"""RLIMIT_FSIZE: largest file a candidate may write."""
NPROC_LIMIT = 1
"""RLIMIT_NPROC for the candidate uid: candidates may not create processes or threads."""
PRELOAD = (
    "abc", "array", "base64", "binascii", "bisect", "calendar", "cmath", "collections",
    "collections.abc", "contextlib", "copy", "ctypes", "dataclasses", "datetime", "decimal",
    "difflib", "enum",
    "fractions", "functools", "graphlib", "hashlib", "heapq", "inspect", "io", "itertools", "json",
    "math", "numbers", "operator", "pprint", "queue", "random", "re", "secrets", "statistics",
    "string", "struct", "textwrap", "threading", "time", "types", "typing", "unicodedata",
    "weakref", "zlib",
)  # fmt: skip
"""Stdlib modules imported by the harness before it forks: candidates get them for free, and they
work even where the candidate uid cannot read the Python installation (e.g. pyenv under /root)."""
MAX_LINE_BYTES = 1 << 16
CHILD_KINDS = frozenset({"returned", "raised", "timeout", "memory", "output_limit"})
_DROP = os.getuid() == 0


class _Timeout(BaseException):
    """Raised in the child by the per-test interval timer."""


class _CappedWriter(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr in the child: discards output, flags excess."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._state["written"] += len(s)
        if self._state["written"] > OUTPUT_CAP_BYTES:
            self._state["output_exceeded"] = True
        return len(s)


def _outcome(kind: str, **fields: Any) -> dict[str, Any]:
    out = {"kind": kind, "value_digest": "", "exception_type": "", "value_repr": "", "duration_ms": 0.0}
    out.update(fields)
    return out


def _send(fd: int, obj: dict[str, Any]) -> None:
    data = (json.dumps(obj) + "\n").encode()
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): the child dies if the harness is killed mid-candidate."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 == PR_SET_PDEATHSIG
    except (OSError, AttributeError, ImportError):
        pass


def _child(wfd: int, close_fds: list[int], req: dict[str, Any], start: int, workdir: str) -> None:
    """Runs in the forked child; never returns."""
    code = 71
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        for fd in close_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.environ.clear()
        os.chdir(workdir)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise EFBIG instead
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        inputs: list[str] = req["inputs"]
        timeout_s = float(req["timeout_s"])
        remaining = len(inputs) - start
        cpu = math.ceil(timeout_s * remaining + SETUP_SLACK_S)
        mem = int(req["memory_mb"]) << 20
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT_BYTES, FSIZE_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC_LIMIT, NPROC_LIMIT))
        if _DROP:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        _die_with_parent()  # after setuid, which clears the parent-death signal
        state: dict[str, Any] = {"written": 0, "output_exceeded": False, "timed_out": False}

        def on_alarm(signum: int, frame: Any) -> None:
            state["timed_out"] = True
            raise _Timeout

        signal.signal(signal.SIGALRM, on_alarm)
        writer = _CappedWriter(state)
        sys.stdout = sys.stderr = writer
        sys.stdin = io.StringIO("")
        _run_candidate(wfd, req, start, state, timeout_s)
        code = 0
    except BaseException:
        code = 71
    finally:
        os._exit(code)


def _run_candidate(
    wfd: int, req: dict[str, Any], start: int, state: dict[str, Any], timeout_s: float
) -> None:
    ns: dict[str, Any] = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s + SETUP_SLACK_S / 2)
        try:
            exec(compile(req["code"], "<candidate>", "exec"), ns)
            fn = ns.get(req["entry_point"])
            if not callable(fn):
                raise NameError(f"entry point {req['entry_point']!r} not defined")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        _send(wfd, {"i": -1, **_outcome("timeout", exception_type="ModuleTimeout")})
        return
    except BaseException as exc:
        name = type(exc).__name__
        _send(wfd, {"i": -1, **_outcome("compile_error", exception_type=name, value_repr=value_repr(exc))})
        return
    _send(wfd, {"ready": True})
    for i in range(start, len(req["inputs"])):
        out = _run_test(fn, req["inputs"][i], state, timeout_s)
        _send(wfd, {"i": i, **out})


def _run_test(fn: Any, literal: str, state: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    state["timed_out"] = False
    state["output_exceeded"] = False
    state["written"] = 0
    out: dict[str, Any]
    t0 = time.perf_counter()
    try:
        try:
            args = ast.literal_eval(literal)
            if type(args) is not tuple:
                args = (args,)
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            value = fn(*args)
            digest = canonical_digest(value)
            out = _outcome("returned", value_digest=digest, value_repr=value_repr(value))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Timeout:
        out = _outcome("timeout")
    except MemoryError:
        out = _outcome("memory", exception_type="MemoryError")
    except BaseException as exc:
        try:
            if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
                out = _outcome("output_limit", exception_type=type(exc).__name__)
            else:
                out = _outcome("raised", exception_type=type(exc).__name__, value_repr=value_repr(exc))
        except _Timeout:
            out = _outcome("timeout")
    if state["timed_out"]:
        out = _outcome("timeout")
    elif state["output_exceeded"]:
        out = _outcome("output_limit")
    out["duration_ms"] = round((time.perf_counter() - t0) * 1000.0, 3)
    return out


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    """Keeps only well-typed, bounded fields of a child's result line."""

    def s(key: str, limit: int) -> str:
        v = rec.get(key, "")
        return v[:limit] if isinstance(v, str) else ""

    dur = rec.get("duration_ms", 0.0)
    dur = float(dur) if isinstance(dur, int | float) and math.isfinite(dur) else 0.0
    return _outcome(
        rec["kind"],
        value_digest=s("value_digest", 64),
        exception_type=s("exception_type", 100),
        value_repr=s("value_repr", 200),
        duration_ms=dur,
    )


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


def _kill_strays(isolated: bool) -> None:
    """In an isolated pid namespace, kills anything left running as the candidate uid."""
    if not (isolated and _DROP):
        return
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    killed = []
    for pid in pids:
        if pid in (me, 1):
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == NOBODY:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        except OSError:
            continue
    for pid in killed:  # orphans are re-parented to us when we are pid 1 (runsc do)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    while True:  # reap re-parented orphans (the harness is pid 1 under runsc do)
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


def run_candidate(req: dict[str, Any], proto_fds: list[int], isolated: bool = False) -> list[dict[str, Any]]:
    """Runs one candidate on all its inputs; returns one outcome dict per input, in order."""
    inputs = req["inputs"]
    n = len(inputs)
    timeout_s = float(req["timeout_s"])
    outcomes: list[dict[str, Any] | None] = [None] * n
    nxt = 0
    workdir = tempfile.mkdtemp(prefix="cand-")
    try:
        if _DROP:
            os.chown(workdir, NOBODY, NOBODY)
        while nxt < n:
            nxt = _run_child(req, proto_fds, nxt, workdir, timeout_s, outcomes)
    finally:
        _kill_strays(isolated)
        shutil.rmtree(workdir, ignore_errors=True)
    return [o if o is not None else _outcome("crashed") for o in outcomes]


def _run_child(
    req: dict[str, Any],
    proto_fds: list[int],
    start: int,
    workdir: str,
    timeout_s: float,
    outcomes: list[dict[str, Any] | None],
) -> int:
    """Forks one child starting at input ``start``; returns the next input index still to run."""
    n = len(outcomes)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(wfd, [*proto_fds, rfd], req, start, workdir)
    os.close(wfd)
    cur = start
    ready = False
    buf = b""
    test_start = time.monotonic()
    deadline = test_start + timeout_s + SETUP_SLACK_S
    failure: str | None = None  # "timeout" | "crashed" | "tamper"
    try:
        while cur < n and failure is None:
            left = deadline - time.monotonic()
            if left <= 0:
                failure = "timeout"
                break
            r, _, _ = select.select([rfd], [], [], left)
            if not r:
                continue
            data = os.read(rfd, 65536)
            if not data:
                failure = "crashed"
                break
            buf += data
            if len(buf) > MAX_LINE_BYTES and b"\n" not in buf:
                failure = "tamper"
                break
            while b"\n" in buf and failure is None and cur < n:
                line, buf = buf.split(b"\n", 1)
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict):
                        raise ValueError
                except ValueError:
                    failure = "tamper"
                    break
                if not ready:
                    if rec.get("ready") is True:
                        ready = True
                    elif rec.get("i") == -1 and rec.get("kind") in ("compile_error", "timeout"):
                        for j in range(cur, n):
                            outcomes[j] = _clean(rec)
                        cur = n
                    else:
                        failure = "tamper"
                    test_start = time.monotonic()
                    deadline = test_start + timeout_s + TEST_SLACK_S
                elif rec.get("i") == cur and rec.get("kind") in CHILD_KINDS:
                    outcomes[cur] = _clean(rec)
                    cur += 1
                    test_start = time.monotonic()
                    deadline = test_start + timeout_s + TEST_SLACK_S
                else:
                    failure = "tamper"
    finally:
        os.close(rfd)
        _kill_group(pid)
        _, status = os.waitpid(pid, 0)
    if cur >= n:
        return n
    elapsed_ms = round((time.monotonic() - test_start) * 1000.0, 3)
    if failure == "crashed" and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and elapsed_ms >= timeout_s * 1000.0):
            failure = "timeout"  # RLIMIT_CPU (gVisor delivers SIGKILL at the hard limit)
    kind = "timeout" if failure == "timeout" else "crashed"
    exc = ""
    if kind == "crashed":
        if os.WIFSIGNALED(status):
            exc = f"signal:{signal.Signals(os.WTERMSIG(status)).name}"
        elif os.WIFEXITED(status):
            exc = f"exit:{os.WEXITSTATUS(status)}"
        if failure == "tamper":
            exc = "protocol"
    if not ready:
        # The candidate never got through module-level code: the same happens on every input.
        for j in range(cur, n):
            outcomes[j] = _outcome(kind, exception_type=exc, duration_ms=elapsed_ms)
        return n
    outcomes[cur] = _outcome(kind, exception_type=exc, duration_ms=elapsed_ms)
    return cur + 1


def _validate(req: Any) -> dict[str, Any]:
    if not isinstance(req, dict):
        raise ValueError("request must be an object")
    if not isinstance(req.get("code"), str) or not isinstance(req.get("entry_point"), str):
        raise ValueError("code and entry_point must be strings")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise ValueError("inputs must be a list of strings")
    timeout_s = req.get("timeout_s")
    memory_mb = req.get("memory_mb")
    if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 3600:
        raise ValueError("timeout_s must be in (0, 3600]")
    if not isinstance(memory_mb, int) or not 16 <= memory_mb <= 1 << 20:
        raise ValueError("memory_mb must be an int in [16, 1048576]")
    return req


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def main(argv: list[str]) -> int:
    isolated = "--isolated" in argv
    _preload()
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    reader = os.fdopen(proto_in, "rb", buffering=1 << 16)
    _send(proto_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "drops_privileges": _DROP})
    for line in reader:
        if not line.strip():
            continue
        try:
            req = _validate(json.loads(line))
        except ValueError as exc:
            _send(proto_out, {"error": f"bad request: {exc}"})
            continue
        outcomes = run_candidate(req, [proto_in, proto_out], isolated)
        _send(proto_out, {"outcomes": outcomes})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
