"""Sandbox-side harness: canonical outcome digests, the supervisor and its worker processes.

STDLIB ONLY and self-contained: the host runs this file as a script inside the sandbox
(``python -u -I harness.py --uid N [--isolated]``; in gVisor and bubblewrap it is ``/ucoder/harness.py``
of the sandbox's own root, rootfs.py), and unit tests import it as
``services.executor.harness`` for :func:`canonical_digest` and :func:`value_repr`.

Processes. The script is the sandbox's *supervisor*: it talks to the host, never runs candidate
code, and forks a long-lived *worker* (its own session, candidate uid, rlimits, empty environment,
private working directory, fds 0-2 on /dev/null, an audit hook) that runs many candidates in a
row, each in a fresh namespace. Forking per candidate costs ~20 ms under gVisor's ptrace platform;
reusing the worker is what makes the sandboxed executor fast. After every candidate the worker
checks that it was left as it was found (integrity check: module, class and harness dicts by
version tag, threads, signal handlers, trace hooks, environment...) and the audit hook reports
touches (frame introspection, rlimit changes...) the moment they happen; on any sign of damage,
and after ``--recycle-after`` candidates, the supervisor replaces the worker with a fresh fork.
The worker computes with a private copy of this module and its own builtins, so patching
builtins, stdlib modules or the harness changes nothing it reports.

Verdicts that depend on time or death are the supervisor's: it enforces a wall-clock deadline per
test and per candidate, kills a worker that hangs, dies or writes anything but the expected next
line (each frame carries a random token and lines must come in order), and records ``timeout`` /
``crashed`` only after the same failure happened again on a fresh worker that reports every test
at once (so leftovers of an earlier candidate, e.g. a pending alarm, are never blamed on the next).
Expected outputs never enter the sandbox: ``passed`` is decided on the host.

Wire protocol with the host (newline-delimited JSON):

* harness -> host, once: ``{"ready": true, "pid", "uid", "worker_uid"}`` (or ``{"error"}``)
* host -> harness: ``{"codes": [source, ...], "entry_point", "inputs": [literal tuple strings],
  "timeout_s", "memory_mb", "candidate_timeout_s"}`` - a batch of candidates for one problem
* harness -> host: ``{"results": [[{"kind", "value_digest", "exception_type", "value_repr",
  "duration_ms"}, ...one per input], ...one per candidate], "events": {name: count}}`` or
  ``{"error": str}``.

Supervisor -> worker frames are length-prefixed ``marshal`` data; worker -> supervisor lines are
JSON written without the json module. Buffered, a worker writes once ``FLUSH_S`` has passed since
its last write, so one write usually carries a whole batch.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import errno
import io
import json
import marshal
import math
import operator
import os
import random
import re
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import types
from _json import encode_basestring_ascii as _json_str
from hashlib import sha256 as _sha256
from math import isinf as _isinf
from math import isnan as _isnan
from os import read as _os_read
from os import write as _os_write
from os.path import join as _path_join
from os.path import realpath as _realpath
from time import monotonic as _monotonic
from time import perf_counter as _perf_counter
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
        self.h = _sha256()
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
    if _isnan(x):
        return b"nan"
    if _isinf(x):
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


# The interpreter's own functions, bound when the harness loads (before any candidate runs): a
# candidate that replaces ``builtins.repr`` or ``len``, or patches reprlib, cannot change how its
# value is displayed.
_TRUE_REPR = repr
_TRUE_LEN = len
_TRUE_TYPE = type
_TRUE_LIST = list
_TRUE_SORTED = sorted
_JOIN = str.join
_MAX_REPR_LEVEL = 4
_MAX_REPR_ITEMS = 20
_MAX_REPR_STRING = 200
_SEQUENCE_BRACKETS: dict[type, tuple[str, str]] = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}")}


def _bounded_repr(value: Any, level: int) -> str:
    """repr of ``value`` with at most ``_MAX_REPR_ITEMS`` items per container, ``_MAX_REPR_LEVEL``
    levels and ``_MAX_REPR_STRING`` characters per string (like reprlib, which looks up
    ``builtins.repr`` at call time)."""
    kind = _TRUE_TYPE(value)
    if kind is str or kind is bytes or kind is bytearray:
        if _TRUE_LEN(value) <= _MAX_REPR_STRING:
            return _TRUE_REPR(value)
        return _TRUE_REPR(value[:_MAX_REPR_STRING]) + "..."
    if kind is dict:
        if not value:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            _bounded_repr(k, level - 1) + ": " + _bounded_repr(v, level - 1)
            for k, v in _TRUE_LIST(value.items())[:_MAX_REPR_ITEMS]
        ]
        return "{" + _JOIN(", ", items) + (", ..." if _TRUE_LEN(value) > _MAX_REPR_ITEMS else "") + "}"
    if kind in _SEQUENCE_BRACKETS or kind is frozenset:
        if not value:
            return {list: "[]", tuple: "()", set: "set()", frozenset: "frozenset()"}[kind]
        opening, closing = _SEQUENCE_BRACKETS.get(kind, ("frozenset({", "})"))
        if level <= 0:
            return opening + "..." + closing
        members = _TRUE_LIST(value)[:_MAX_REPR_ITEMS]
        if kind is set or kind is frozenset:
            with contextlib.suppress(TypeError):
                members = _TRUE_SORTED(members)  # reprlib's order: stable output for a set
        items = [_bounded_repr(v, level - 1) for v in members]
        more = (
            ", ..."
            if _TRUE_LEN(value) > _MAX_REPR_ITEMS
            else ("," if kind is tuple and _TRUE_LEN(items) == 1 else "")
        )
        return opening + _JOIN(", ", items) + more + closing
    return _TRUE_REPR(value)  # numbers, None, and objects with their own __repr__


def value_repr(value: Any, limit: int = 200) -> str:
    """A repr of ``value`` that never raises, never builds a huge string, and is at most ``limit`` chars."""
    try:
        text = _bounded_repr(value, _MAX_REPR_LEVEL)
        if _TRUE_TYPE(text) is not str:
            text = "<repr returned non-str>"
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit | MemoryError):
            raise
        text = f"<{_TRUE_TYPE(value).__name__} repr failed: {_TRUE_TYPE(exc).__name__}>"
    if len(text) > limit:
        text = text[: max(0, limit - 3)] + "..."
    return text


# ---------------------------------------------------------------------------------------------
# Limits and policy

NOBODY = 65534
SETUP_SLACK_S = 5.0
"""Extra wall time for module-level code of a candidate (and for starting a worker)."""
TEST_SLACK_S = 1.0
"""Wall time the supervisor allows beyond a test's timeout before it kills the worker."""
FLUSH_S = 0.05
"""Buffered mode: a worker writes its pending result lines once this much time has passed since
its last write (checked after each test), so one write usually carries a whole candidate."""
DONE_SLACK_S = 2.0
"""Time the worker has after its last test for the integrity check and the ``done`` frame."""
OUTPUT_CAP_BYTES = 1 << 20
"""Characters a candidate may print through sys.stdout/sys.stderr per test before ``output_limit``."""
FSIZE_LIMIT_BYTES = 1 << 20
"""RLIMIT_FSIZE: largest file a candidate may write."""
NPROC_LIMIT = 1
"""RLIMIT_NPROC of the worker uid: no processes or threads (the Linux kernel enforces it; gVisor
does not, which is why the audit hook also denies fork and the integrity check counts threads)."""
NOFILE_LIMIT = 64
"""RLIMIT_NOFILE of a worker."""
WORKER_CPU_S = 600
"""RLIMIT_CPU (soft = hard) of a worker over its whole life; it is recycled at half of that."""
DEFAULT_RECYCLE_AFTER = 1000
"""A worker runs at most this many candidates before it is replaced by a fresh fork."""
PRELOAD = (
    "abc", "array", "base64", "binascii", "bisect", "calendar", "cmath", "collections",
    "collections.abc", "contextlib", "copy", "ctypes", "dataclasses", "datetime", "decimal",
    "difflib", "enum", "fractions", "functools", "graphlib", "hashlib", "heapq", "inspect", "io",
    "itertools", "json", "math", "numbers", "operator", "pprint", "queue", "random", "re",
    "secrets", "socket", "statistics", "string", "struct", "textwrap", "threading", "time", "types", "typing",
    "unicodedata", "warnings", "weakref", "zlib",
)  # fmt: skip
"""Stdlib modules imported before workers fork: candidates get them for free, and they work even
where the candidate uid cannot read the Python installation (e.g. pyenv under /root, or a path
the supervisor hid)."""
MAX_LINE_BYTES = 1 << 20
CHILD_KINDS = frozenset({"returned", "raised", "timeout", "memory", "output_limit"})
CANDIDATE_MODULE = "__candidate__"

# Audit events a candidate may not trigger at all (PermissionError), and events that are allowed
# but mark the worker as touched, so it is replaced after the candidate. Defence in depth: the
# sandbox, the uid and the rlimits hold even where a hook is bypassed.
DENY_EVENTS = frozenset({
    "os.fork", "os.forkpty", "os.posix_spawn", "os.exec", "os.spawn", "os.system", "os.startfile",
    "os.killpg", "os.symlink", "os.link", "os.register_at_fork", "subprocess.Popen", "pty.spawn",
    "sys.addaudithook", "mmap.__new__", "webbrowser.open", "shutil.make_archive", "gc.get_objects",
    "gc.get_referrers", "gc.get_referents",
})  # fmt: skip
DENY_PREFIXES = ("socket.", "ctypes.", "_posixsubprocess.", "urllib.", "http.", "ftplib.", "smtplib.")
PATH_EVENTS = frozenset({
    "os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.chmod", "os.chown", "os.truncate",
    "os.utime", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr", "os.mkfifo",
    "os.mknod", "shutil.rmtree", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
    "shutil.copytree", "shutil.move", "os.chdir",
})  # fmt: skip
TAINT_EVENTS = frozenset({
    "sys._getframe", "sys._current_frames", "sys._current_exceptions", "sys.settrace",
    "sys.setprofile", "object.__getattr__", "resource.setrlimit", "resource.prlimit", "os.putenv",
    "os.unsetenv", "code.__new__", "function.__new__", "sys.set_asyncgen_hooks", "sys.excepthook",
    "sys.unraisablehook", "builtins.breakpoint", "cpython.run_interactivehook", "signal.pthread_kill",
})  # fmt: skip
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_EFBIG = errno.EFBIG


# The stand-in for sys.stdout/sys.stderr lives in a namespace of its own: candidates can reach
# it (sys.stdout), and through its methods' globals they must not reach the harness.
_WRITER_SOURCE = """
class CappedWriter(TextIOBase):
    # Discards what candidates print; counts it so excess becomes output_limit.
    written = 0

    def writable(self):
        return True

    def write(self, s):
        n = len(s)
        self.written += n
        return n
"""


def _make_writer() -> tuple[Any, dict[str, Any]]:
    """A fresh writer and the namespace its methods see (checked for tampering like modules)."""
    namespace: dict[str, Any] = {
        "__builtins__": {"len": len, "__build_class__": builtins.__build_class__},
        "__name__": "ucoder_writer",
        "TextIOBase": io.TextIOBase,
    }
    exec(compile(_WRITER_SOURCE, "<writer>", "exec"), namespace)
    return namespace["CappedWriter"](), namespace


def _outcome(kind: str, **fields: Any) -> dict[str, Any]:
    out = {"kind": kind, "value_digest": "", "exception_type": "", "value_repr": "", "duration_ms": 0.0}
    out.update(fields)
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view) :]


def _send(fd: int, obj: dict[str, Any]) -> None:
    _write_all(fd, (json.dumps(obj) + "\n").encode())


def _prctl(option: int, arg: int) -> None:
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4


# ---------------------------------------------------------------------------------------------
# Worker: a long-lived process, never root, that runs many candidates


def _run_test(fn: Any, args: tuple[Any, ...], out_writer: Any, timeout_s: float) -> dict[str, Any]:
    out_writer.written = 0
    t0 = _perf_counter()
    out: dict[str, Any]
    try:
        value = fn(*args)
        out = _outcome("returned", value_digest=canonical_digest(value), value_repr=value_repr(value))
    except MemoryError:
        out = _outcome("memory", exception_type="MemoryError")
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.errno == _EFBIG:
            out = _outcome("output_limit", exception_type=type(exc).__name__)
        else:
            out = _outcome("raised", exception_type=type(exc).__name__, value_repr=value_repr(exc))
    elapsed = _perf_counter() - t0
    if out_writer.written > OUTPUT_CAP_BYTES:
        out = _outcome("output_limit")
    elif elapsed > timeout_s:
        out = _outcome("timeout")
    out["duration_ms"] = round(elapsed * 1000.0, 3)
    return out


def _literal_args(literal: str) -> tuple[Any, ...]:
    args = ast.literal_eval(literal)
    return args if type(args) is tuple else (args,)


def _record(tok: str, c: int, i: int, out: dict[str, Any]) -> str:
    """One result line, encoded without the json module (a candidate may have patched it); ``tok``
    is the frame's token already JSON-encoded."""
    return (
        '{"t": ' + tok + ', "c": ' + repr(c) + ', "i": ' + repr(i) + ', "kind": ' + _json_str(out["kind"])
        + ', "value_digest": ' + _json_str(out["value_digest"])
        + ', "exception_type": ' + _json_str(out["exception_type"])
        + ', "value_repr": ' + _json_str(out["value_repr"])
        + ', "duration_ms": ' + repr(float(out["duration_ms"])) + "}"
    )  # fmt: skip


def _plain(text: str) -> str:
    """``text`` reduced to characters that need no escaping in JSON (uses no patchable module)."""
    return "".join(c if c.isalnum() or c in " ._:-<>/" else "?" for c in text[:80])


def _inside(path: Any, root: str) -> bool:
    """True when ``path`` (a str/bytes/PathLike path, or an fd) resolves inside ``root``."""
    if isinstance(path, int):
        return True  # an fd the candidate already holds; opening it was checked
    try:
        text = os.fsdecode(path)
    except TypeError:
        return False
    real = _realpath(_path_join(root, text))
    return real == root or real.startswith(root + os.sep)


def _make_audit_hook(res_fd: int, workdir: str, reported: set[str], notes: set[str]) -> Any:
    """The worker's audit hook: denies escape attempts, reports touches at once.

    A touch is written to the result pipe before the audited operation runs, so a candidate
    cannot take it back; the supervisor then replaces the worker after the candidate.
    """
    write, getpid, realpath_inside, plain = os.write, os.getpid, _inside, _plain
    deny, deny_prefixes, path_events, taint_events = DENY_EVENTS, DENY_PREFIXES, PATH_EVENTS, TAINT_EVENTS
    write_flags = _WRITE_FLAGS

    def touch(what: str) -> None:
        if what not in reported:
            reported.add(what)
            # No json or contextlib here: the candidate may have patched them.
            try:  # noqa: SIM105
                write(res_fd, ('{"taint": "' + plain(what) + '"}\n').encode())
            except OSError:
                pass

    def denied(event: str) -> PermissionError:
        touch(event)
        return PermissionError(f"ucoder sandbox: {event} is not allowed")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in deny or event.startswith(deny_prefixes):
            raise denied(event)
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(
                isinstance(flags, int) and flags & write_flags
            )
            if writing:
                if not realpath_inside(path, workdir):
                    raise denied("open for writing outside the tmp dir")
                touch("files")
            else:
                notes.add("opened")  # descriptors are compared after the candidate
        elif event in path_events:
            for arg in args:
                if isinstance(arg, str | bytes | os.PathLike) and not realpath_inside(arg, workdir):
                    raise denied(f"{event} outside the tmp dir")
            touch(event)
        elif event == "os.kill":
            if args[0] != getpid():
                raise denied("os.kill of another process")
        elif event in ("object.__setattr__", "object.__delattr__"):
            # A change to a class or function that is not the candidate's own is allowed (the
            # standard library does it: namedtuple sets its class's __module__ and __new__'s
            # defaults) but replaces the worker after the candidate, so the next one never sees
            # it. A class's owner is trusted (changing its __module__ is itself this event); a
            # function's is not: its __module__ can be rewritten without any event.
            target = args[0]
            if not isinstance(target, type) or vars(target).get("__module__") != CANDIDATE_MODULE:
                touch(event)
        elif event in taint_events:
            touch(event)

    return hook


def _dict_version_reader() -> Any:
    """CPython keeps a version tag in every dict that changes on each mutation (PEP 509). Reading
    it in place through ctypes makes the integrity check about 30x cheaper than comparing every
    entry. The layout is verified on this interpreter first; None where it does not hold."""
    if sys.implementation.name != "cpython":
        return None
    try:
        import ctypes

        def reader(d: dict[Any, Any]) -> Any:
            return ctypes.c_uint64.from_address(id(d) + 24)  # after refcnt, type, ma_used

        probe: dict[str, Any] = {"a": 1}
        tag = reader(probe)
        seen = [tag.value]
        probe["b"] = object()
        seen.append(tag.value)
        del probe["a"]
        seen.append(tag.value)
        probe["b"] = None
        seen.append(tag.value)
        if len(set(seen)) != len(seen) or tag.value != seen[-1]:
            return None
        return reader
    except Exception:
        return None


def _snapshot(namespaces: list[dict[str, Any]]) -> Any:
    """Captures the interpreter state a candidate must leave as it found it; returns a checker.

    Checked: sys.modules, every module's, class's (defined in Python) and given namespace's
    dict (by version tag, or entry identity as a fallback), threads, trace/profile hooks, the
    recursion limit, gc settings, the environment, stdio, import and warning state and signal
    handlers. In-place changes inside mutable module-level objects are
    not seen; recycle_after and the fresh-worker confirmation of failures bound what they can do.
    """
    import _thread
    import gc
    import warnings

    modules = sys.modules
    spaces: list[Any] = [modules] + [m.__dict__ for m in list(modules.values()) if hasattr(m, "__dict__")]
    spaces += namespaces
    # Classes defined in Python (heap types) can be patched without any audit event; their
    # attributes live in a dict behind the read-only mappingproxy.
    heap_types = {
        id(v): v for d in spaces for v in list(d.values()) if isinstance(v, type) and v.__flags__ & (1 << 9)
    }
    spaces += [d for t in heap_types.values() for d in gc.get_referents(t.__dict__) if type(d) is dict]
    # Module-level dicts and the attributes of module-level instances (a default encoder, the
    # shared Random) can be changed in place; caches are left out, they change legitimately.
    held = [(name, v) for d in spaces[1 : len(namespaces) + 1 + len(modules)] for name, v in list(d.items())]
    stdio_objects = (sys.stdin, sys.stdout, sys.stderr)  # checked by identity below; their state changes
    spaces += [v for name, v in held if type(v) is dict and "cache" not in str(name).lower()]
    spaces += [
        vars(v)
        for _, v in held
        if not isinstance(v, type | types.ModuleType | types.FunctionType)
        and type(v).__flags__ & (1 << 9)
        and type(getattr(v, "__dict__", None)) is dict
        and not any(v is io for io in stdio_objects)
    ]
    spaces = list({id(d): d for d in spaces}.values())
    sizes = [(v, len(v)) for _, v in held if type(v) in (list, set, bytearray)]
    names = [str(d.get("__name__", "?")) if type(d.get("__name__")) is str else "?" for d in spaces]
    version_of = _dict_version_reader()
    if version_of is not None:
        readers = [version_of(d) for d in spaces]
        value = operator.attrgetter("value")
        versions = list(map(value, readers))

        def changed_dict() -> str | None:
            if list(map(value, readers)) == versions:
                return None
            return next(n for r, v, n in zip(readers, versions, names, strict=True) if r.value != v)

    else:  # no version tags on this interpreter: compare every entry by identity (about 30x slower)
        dicts = [(d, tuple(d.values()), tuple(d.keys())) for d in spaces]
        is_ = operator.is_

        def changed_dict() -> str | None:
            for (d, values, keys), name in zip(dicts, names, strict=True):
                if len(d) != len(values) or not (
                    all(map(is_, d.values(), values)) and all(map(is_, d.keys(), keys))
                ):
                    return name
            return None

    import _signal  # type: ignore[import-not-found]

    getsignal = _signal.getsignal  # the C function: signal.getsignal wraps every answer in an enum
    signums = []
    for s in range(1, signal.NSIG):
        try:
            getsignal(s)
            signums.append(s)
        except (ValueError, OSError):
            continue

    def handlers() -> list[Any]:
        return list(map(getsignal, signums))

    signal_handlers = handlers()
    lists = [
        (obj, len(obj)) for obj in (sys.path, sys.meta_path, sys.path_hooks, warnings.filters, gc.callbacks)
    ]
    recursion = sys.getrecursionlimit()
    gc_state = (gc.isenabled(), gc.get_threshold())
    environ = os.environ
    stdio = (sys.stdin, sys.stdout, sys.stderr)
    len_, tuple_, sys_ = len, tuple, sys
    thread_count, gettrace, getprofile = _thread._count, sys.gettrace, sys.getprofile
    getrecursionlimit, gc_isenabled, gc_threshold = sys.getrecursionlimit, gc.isenabled, gc.get_threshold

    def check() -> list[str]:
        damage = []
        where = changed_dict()
        if where is not None:
            damage.append(f"namespace {where}")
        if thread_count() != 0:
            damage.append("threads")
        if gettrace() is not None or getprofile() is not None:
            damage.append("trace")
        if getrecursionlimit() != recursion or (gc_isenabled(), gc_threshold()) != gc_state:
            damage.append("interpreter settings")
        if len_(environ) != 0:
            damage.append("environment")
        if tuple_((sys_.stdin, sys_.stdout, sys_.stderr)) != stdio:
            damage.append("stdio")
        if any(len_(obj) != n for obj, n in lists):
            damage.append("import or warning state")
        if any(len_(obj) != n for obj, n in sizes):
            damage.append("module-level list or set")
        if handlers() != signal_handlers:
            damage.append("signal handlers")
        return damage

    return check


def _worker_setup(
    uid: int | None, memory_mb: int, workdir: str, keep: tuple[int, ...], own_pid_namespace: bool
) -> None:
    """Process-level isolation of a fresh worker: session, fds, rlimits, uid, environment."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd > 2 and fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    os.chdir(workdir)
    os.umask(0o077)
    for limit, value in (
        (resource.RLIMIT_AS, memory_mb << 20),
        (resource.RLIMIT_FSIZE, FSIZE_LIMIT_BYTES),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, NPROC_LIMIT),
        (resource.RLIMIT_NOFILE, NOFILE_LIMIT),
        (resource.RLIMIT_CPU, WORKER_CPU_S),
    ):
        resource.setrlimit(limit, (value, value))
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        if own_pid_namespace:
            # Kill whatever a previous worker of this uid left behind (kill(-1) spares the
            # caller). Only inside the sandbox's own pid namespace: on a shared host the same
            # uid may belong to another executor. There RLIMIT_NPROC stops processes instead.
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))  # after setuid, which clears it
    os.environ.clear()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized writes raise EFBIG instead
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


_HARNESS_CODE: Any = None
"""This file, compiled by the supervisor at start-up; each worker runs a private copy of it."""


def _worker_main(
    cmd_fd: int, res_fd: int, uid: int | None, memory_mb: int, workdir: str, own_pid_namespace: bool
) -> None:
    """Runs in the forked worker; never returns."""
    code = 70
    try:
        _worker_setup(uid, memory_mb, workdir, (cmd_fd, res_fd), own_pid_namespace)
        # The worker runs a private copy of the harness with its own builtins: a candidate that
        # patches builtins, stdlib module attributes or the harness module it can import changes
        # nothing the worker computes or reports.
        private: dict[str, Any] = {"__name__": "ucoder_worker", "__builtins__": dict(vars(builtins))}
        exec(_HARNESS_CODE, private)
        private["_worker_body"](cmd_fd, res_fd, workdir)
        code = 0
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _worker_body(cmd_fd: int, res_fd: int, workdir: str) -> None:
    """The worker from its private copy of the harness: snapshot, audit hook, then the loop."""
    writer, writer_namespace = _make_writer()
    sys.stdout = sys.stderr = writer
    sys.stdin = io.StringIO("")
    tempfile.tempdir = workdir
    # Warm lazily-initialised state now, so the snapshot sees it settled.
    canonical_digest({1: [2.5, "x", (None,)], "k": {3}})
    value_repr(ValueError("x"))
    _literal_args("(1, [2], {'a': 3.5}, 'x', None)")
    _record('"t"', 0, 0, _outcome("returned"))
    exec(compile("def _warm(x):\n    return x\n", "<candidate>", "exec"), {"__name__": CANDIDATE_MODULE})
    check = _snapshot([globals(), writer_namespace])
    touched: set[str] = set()
    notes: set[str] = set()
    fds = frozenset(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None

    def check_all() -> list[str]:
        damage: list[str] = check()
        if "opened" in notes and fds is not None:
            notes.discard("opened")
            if frozenset(os.listdir("/proc/self/fd")) != fds:
                damage.append("open file descriptors")
        return damage

    sys.addaudithook(_make_audit_hook(res_fd, workdir, touched, notes))
    _send(res_fd, {"hello": True, "pid": os.getpid(), "uid": os.getuid()})
    _worker_loop(cmd_fd, res_fd, writer, check_all, touched)


class _Emitter:
    """Buffers a worker's result lines; writes them once ``flush_s`` has passed since the last write."""

    def __init__(self, fd: int, flush_s: float) -> None:
        self.fd = fd
        self.flush_s = flush_s
        self.pending: list[str] = []
        self.last_write = _monotonic()

    def emit(self, line: str) -> None:
        self.pending.append(line)
        if _monotonic() - self.last_write >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            _write_all(self.fd, ("\n".join(self.pending) + "\n").encode())
            self.pending.clear()
        self.last_write = _monotonic()


def _read_frame(fd: int, buf: bytearray) -> Any:
    """One request from the supervisor: an 8-byte length, then marshal data; None on EOF."""
    while len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[:8], "big"):
        chunk = _os_read(fd, 1 << 16)
        if not chunk:
            return None
        buf += chunk
    size = int.from_bytes(buf[:8], "big")
    frame = marshal.loads(bytes(buf[8 : 8 + size]))
    del buf[: 8 + size]
    return frame


def _worker_loop(cmd_fd: int, res_fd: int, writer: Any, check: Any, touched: set[str]) -> None:
    buf = bytearray()
    while (req := _read_frame(cmd_fd, buf)) is not None:
        token, inputs, timeout_s = req["t"], req["inputs"], req["timeout_s"]
        out = _Emitter(res_fd, req["flush_s"])
        tok = _json_str(token)
        # Inputs are parsed once, before any candidate code runs; each candidate gets fresh
        # copies (marshal round trip), so one candidate mutating its arguments affects no other.
        parsed: list[Any] = []
        for literal in inputs:
            try:
                parsed.append(_literal_args(literal))
            except BaseException as exc:
                parsed.append(exc)
        try:
            blob: bytes | None = marshal.dumps(parsed)
        except ValueError:
            blob = None  # an input that failed to parse: its exception is not marshallable
        for offset, code in enumerate(req["codes"]):
            c = req["first"] + offset
            start = req["start"] if offset == 0 else 0
            args_list = marshal.loads(blob) if blob is not None else parsed
            _run_candidate(out, tok, c, code, req["entry_point"], args_list, start, writer, timeout_s)
            del args_list
            # The done line carries what the integrity check found. After any damage or touch the
            # worker stops this frame: the supervisor replaces it before the next candidate.
            damage = ", ".join('"' + _plain(d) + '"' for d in check())
            out.pending.append(
                '{"t": ' + tok + ', "c": ' + repr(c) + ', "done": true, "damage": [' + damage + "]}"
            )
            if damage or touched:
                break
        out.flush()


def _run_candidate(
    out: _Emitter,
    tok: str,
    c: int,
    code: str,
    entry_point: str,
    args_list: list[Any],
    start: int,
    writer: Any,
    timeout_s: float,
) -> None:
    ns: dict[str, Any] = {"__name__": CANDIDATE_MODULE, "__builtins__": builtins}
    fn = None
    t0 = _monotonic()
    try:
        exec(compile(code, "<candidate>", "exec"), ns)
        fn = ns.get(entry_point)
        if not callable(fn):
            raise NameError(f"entry point {entry_point!r} not defined")
    except BaseException as exc:
        fn = None
        kind = "memory" if isinstance(exc, MemoryError) else "compile_error"
        failed = _outcome(kind, exception_type=type(exc).__name__, value_repr=value_repr(exc))
        out.emit(_record(tok, c, -1, failed))
    if fn is not None:
        if _monotonic() - t0 > timeout_s + SETUP_SLACK_S / 2:
            out.emit(_record(tok, c, -1, _outcome("timeout", exception_type="ModuleTimeout")))
        else:
            out.emit('{"t": ' + tok + ', "c": ' + repr(c) + ', "ready": true}')
            for i in range(start, len(args_list)):
                args = args_list[i]
                if isinstance(args, BaseException):
                    result = _outcome("raised", exception_type=type(args).__name__, value_repr="bad input")
                else:
                    result = _run_test(fn, args, writer, timeout_s)
                out.emit(_record(tok, c, i, result))


# ---------------------------------------------------------------------------------------------
# Supervisor: the sandbox's first process; talks to the host, forks and polices workers


class _Worker:
    def __init__(self, pid: int, cmd_w: int, res_r: int, workdir: str, memory_mb: int) -> None:
        self.pid = pid
        self.cmd_w = cmd_w
        self.res_r = res_r
        self.workdir = workdir
        self.memory_mb = memory_mb
        self.candidates = 0
        self.busy_s = 0.0
        self.buf = b""
        self.taints: set[str] = set()


class _Failure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # timeout | crashed | protocol | candidate_timeout
        self.cand = 0  # the candidate that was running
        self.index = 0  # its first input without an accepted outcome
        self.ready = False  # whether its module-level code had finished


class WorkerStartError(Exception):
    pass


class Supervisor:
    """Runs batches of candidates on a long-lived worker, replacing it on any sign of damage.

    The supervisor never runs candidate code, so a worker forked from it is always clean. All
    verdicts that depend on time or on the worker dying are made here, from what the supervisor
    observes; a failure seen on a worker that had served other candidates, or in buffered mode, is
    re-run on a fresh worker that writes each result at once before it is recorded.
    """

    def __init__(self, uid: int | None, recycle_after: int, isolated: bool) -> None:
        self.uid = uid
        self.isolated = isolated
        self.recycle_after = recycle_after
        self.base = tempfile.mkdtemp(prefix="ucoder-work-")
        os.chmod(self.base, 0o711)
        self.worker: _Worker | None = None
        self.events: dict[str, int] = {}
        self._tokens = random.Random(os.urandom(16))

    def note(self, reason: str) -> None:
        self.events[reason] = self.events.get(reason, 0) + 1

    # -- worker lifecycle

    def spawn(self, memory_mb: int) -> _Worker:
        workdir = tempfile.mkdtemp(prefix="w-", dir=self.base)
        if self.uid is not None:
            os.chown(workdir, self.uid, self.uid)
        os.chmod(workdir, 0o700)
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _worker_main(cmd_r, res_w, self.uid, memory_mb, workdir, self.isolated)
        os.close(cmd_r)
        os.close(res_w)
        os.set_blocking(cmd_w, False)  # frames are written with a deadline (_send_frame)
        worker = _Worker(pid, cmd_w, res_r, workdir, memory_mb)
        self.worker = worker
        self.note("spawned")
        try:
            hello = self._read_records(worker, time.monotonic() + SETUP_SLACK_S)
        except _Failure:
            hello = []
        if not hello or hello[0].get("hello") is not True:
            self.kill("start_failed")
            raise WorkerStartError(f"worker did not start (pid {pid})")
        return worker

    def kill(self, reason: str) -> int:
        """Kills the current worker (and its process group); returns its wait status."""
        worker, self.worker = self.worker, None
        if worker is None:
            return 0
        self.note(f"recycled:{reason}")
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(worker.pid, signal.SIGKILL)
        status = 0
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(worker.pid, 0)
        for fd in (worker.cmd_w, worker.res_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(worker.workdir, ignore_errors=True)
        self._reap()
        return status

    def _reap(self) -> None:
        """Reaps orphans re-parented to us (the supervisor is pid 1 in a gVisor sandbox)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def _worker_for(self, memory_mb: int) -> _Worker:
        worker = self.worker
        if worker is not None and worker.memory_mb != memory_mb:
            self.kill("memory_limit_changed")
            worker = None
        return worker if worker is not None else self.spawn(memory_mb)

    # -- protocol

    def _read_records(self, worker: _Worker, deadline: float) -> list[dict[str, Any]]:
        """Returns the next complete records (at least one); raises _Failure on EOF/deadline/garbage."""
        while b"\n" not in worker.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failure("timeout")
            ready, _, _ = select.select([worker.res_r], [], [], left)
            if not ready:
                continue
            data = os.read(worker.res_r, 1 << 16)
            if not data:
                raise _Failure("crashed")
            worker.buf += data
            if len(worker.buf) > MAX_LINE_BYTES and b"\n" not in worker.buf:
                raise _Failure("protocol")
        *lines, worker.buf = worker.buf.split(b"\n")
        records = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                raise _Failure("protocol") from None
            if not isinstance(rec, dict):
                raise _Failure("protocol")
            records.append(rec)
        return records

    def _drive(
        self,
        worker: _Worker,
        req: dict[str, Any],
        first: int,
        start: int,
        single: bool,
        results: list[list[Any]],
    ) -> tuple[int, bool]:
        """Runs candidates ``first..`` (only ``first`` when ``single``, then unbuffered) of ``req``
        on ``worker``, the first one from input ``start``.

        Returns (next candidate to run, whether the worker must be replaced); raises _Failure
        (with the candidate and input it stopped at) when the worker hung, died or misbehaved.
        """
        codes = req["codes"]
        last_cand = first + 1 if single else len(codes)
        n = len(req["inputs"])
        timeout_s = float(req["timeout_s"])
        flush_s = 0.0 if single else FLUSH_S
        token = f"{self._tokens.getrandbits(64):016x}"
        frame = marshal.dumps(
            {
                "t": token,
                "codes": codes[first:last_cand],
                "first": first,
                "start": start,
                "entry_point": req["entry_point"],
                "inputs": req["inputs"],
                "timeout_s": timeout_s,
                "flush_s": flush_s,
            }
        )
        try:
            self._send_frame(worker, len(frame).to_bytes(8, "big") + frame, time.monotonic() + SETUP_SLACK_S)
        except _Failure as failure:
            failure.cand, failure.index = first, start
            raise
        cand, cur, ready = first, start, False
        last = time.monotonic()
        cand_deadline = last + _candidate_budget(req)
        # Unbuffered, "ready" arrives right after module-level code, which gets extra time. Buffered,
        # it may wait in the worker behind a hanging first test; silence beyond one test's time is
        # then handed to the unbuffered confirmation run (slow module code costs a re-run only).
        limit = timeout_s + flush_s + TEST_SLACK_S + (SETUP_SLACK_S if single else 0.0)
        while True:
            try:
                records = self._read_records(worker, min(last + limit, cand_deadline))
            except _Failure as failure:
                failure.cand, failure.index, failure.ready = cand, cur, ready
                if failure.reason == "timeout" and time.monotonic() >= cand_deadline:
                    failure.reason = "candidate_timeout"
                raise
            now = time.monotonic()
            gap, last = now - last, now
            last_test: tuple[int, int] | None = None
            replace = False
            for rec in records:
                if "taint" in rec:
                    worker.taints.add(str(rec["taint"])[:80])
                    continue
                if rec.get("t") != token or rec.get("c") != cand or replace:
                    raise self._protocol(cand, cur, ready)
                if rec.get("done") is True and cur == n:
                    damage = rec.get("damage")
                    worker.candidates += 1
                    if not isinstance(damage, list) or damage or worker.taints:
                        why = sorted(worker.taints) or [str(d)[:80] for d in damage or ["protocol"]]
                        worker.taints = {why[0]}
                        replace = True  # the worker stops this frame; nothing more may follow
                    cand, cur, ready = cand + 1, 0, False
                    cand_deadline = now + _candidate_budget(req)
                elif not ready:
                    if rec.get("ready") is True:
                        ready = True
                    elif rec.get("i") == -1 and rec.get("kind") in ("compile_error", "timeout", "memory"):
                        results[cand][cur:] = [_clean(rec)] * (n - cur)
                        cur, ready = n, True  # nothing more to run; expect done
                    else:
                        raise self._protocol(cand, cur, ready)
                elif rec.get("i") == cur and rec.get("kind") in CHILD_KINDS and cur < n:
                    results[cand][cur] = _clean(rec)
                    if single and gap > timeout_s:
                        results[cand][cur] = _outcome("timeout", duration_ms=round(gap * 1000.0, 3))
                    last_test = (cand, cur)
                    cur += 1
                else:
                    raise self._protocol(cand, cur, ready)
            # In buffered mode a batch holds tests that together took < flush_s, plus one more:
            # a gap beyond timeout + flush_s means that last one overran, whatever it claims.
            if last_test is not None and not single and gap > timeout_s + flush_s:
                c, i = last_test
                results[c][i] = _outcome("timeout", duration_ms=round(gap * 1000.0, 3))
            if replace or cand >= last_cand:
                return cand, replace
            limit = timeout_s + flush_s + TEST_SLACK_S + (SETUP_SLACK_S if single and not ready else 0.0)
            if cur == n:
                limit = DONE_SLACK_S

    @staticmethod
    def _send_frame(worker: _Worker, data: bytes, deadline: float) -> None:
        """Writes a frame that may exceed the pipe buffer; a worker that stops reading is a failure."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(worker.cmd_w, view) :]  # usually all of it, at once
                continue
            except BlockingIOError:
                pass
            except OSError:
                raise _Failure("crashed") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failure("timeout")
            select.select([], [worker.cmd_w], [], left)

    @staticmethod
    def _protocol(cand: int, cur: int, ready: bool) -> _Failure:
        failure = _Failure("protocol")
        failure.cand, failure.index, failure.ready = cand, cur, ready
        return failure

    # -- one batch

    def run(self, req: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """Runs every candidate of ``req`` on every input; one outcome list per candidate."""
        codes = req["codes"]
        n = len(req["inputs"])
        timeout_s = float(req["timeout_s"])
        memory_mb = int(req["memory_mb"])
        results: list[list[Any]] = [[None] * n for _ in codes]
        cand, start = 0, 0
        single = False  # re-running one candidate on a fresh, unbuffered worker to confirm a failure
        while cand < len(codes):
            worker = self._worker_for(memory_mb)
            fresh = worker.candidates == 0  # the worker has served no other candidate
            t0 = time.monotonic()
            try:
                cand, replace = self._drive(worker, req, cand, start, single, results)
            except _Failure as failure:
                worker.busy_s += time.monotonic() - t0
                status = self.kill(failure.reason)
                cand, start = failure.cand, failure.index
                if failure.reason == "candidate_timeout":
                    results[cand][start:] = [_outcome("timeout", exception_type="CandidateTimeout")] * (
                        n - start
                    )
                    cand, start, single = cand + 1, 0, False
                    continue
                if not single or not fresh:
                    single = True  # confirm on a fresh worker that reports every test at once
                    self.note(f"confirm:{failure.reason}")
                    continue
                outcome = self._failure_outcome(failure, status, timeout_s)
                if not failure.ready:  # module-level code failed: the same on every input
                    results[cand][start:] = [outcome] * (n - start)
                    start = n
                elif start < n:
                    results[cand][start] = outcome
                    start += 1
                if start >= n:
                    cand, start, single = cand + 1, 0, False
                continue
            worker.busy_s += time.monotonic() - t0
            start, single = 0, False
            if replace:
                self.kill(f"touched:{sorted(worker.taints)[0]}")
            elif worker.candidates >= self.recycle_after or worker.busy_s > WORKER_CPU_S / 2:
                self.kill("recycle_after")
        return [
            [o if o is not None else _outcome("crashed", exception_type="lost") for o in r] for r in results
        ]

    @staticmethod
    def _failure_outcome(failure: _Failure, status: int, timeout_s: float) -> dict[str, Any]:
        if failure.reason == "timeout":
            return _outcome("timeout", duration_ms=round((timeout_s + TEST_SLACK_S) * 1000.0, 3))
        if failure.reason == "protocol":
            return _outcome("crashed", exception_type="protocol")
        exc = ""
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU:
                return _outcome("timeout", exception_type="RLIMIT_CPU")
            exc = f"signal:{signal.Signals(sig).name}"
        elif os.WIFEXITED(status):
            exc = f"exit:{os.WEXITSTATUS(status)}"
        return _outcome("crashed", exception_type=exc)

    def close(self) -> None:
        self.kill("shutdown")
        shutil.rmtree(self.base, ignore_errors=True)


def _candidate_budget(req: dict[str, Any]) -> float:
    """Wall time one candidate may take for all its tests."""
    explicit = float(req.get("candidate_timeout_s") or 0)
    return explicit or SETUP_SLACK_S + len(req["inputs"]) * (float(req["timeout_s"]) + TEST_SLACK_S)


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    """Keeps only well-typed, bounded fields of a worker's result line."""

    def s(key: str, limit: int) -> str:
        v = rec.get(key, "")
        return v[:limit] if isinstance(v, str) else ""

    dur = rec.get("duration_ms", 0.0)
    dur = float(dur) if isinstance(dur, int | float) and math.isfinite(dur) and dur >= 0 else 0.0
    return _outcome(
        rec["kind"],
        value_digest=s("value_digest", 64),
        exception_type=s("exception_type", 100),
        value_repr=s("value_repr", 200),
        duration_ms=dur,
    )


def _validate(req: Any) -> dict[str, Any]:
    if not isinstance(req, dict):
        raise ValueError("request must be an object")
    codes = req.get("codes")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise ValueError("codes must be a non-empty list of strings")
    if not isinstance(req.get("entry_point"), str):
        raise ValueError("entry_point must be a string")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise ValueError("inputs must be a list of strings")
    timeout_s = req.get("timeout_s")
    memory_mb = req.get("memory_mb")
    candidate_timeout_s = req.get("candidate_timeout_s", 0)
    if not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 3600:
        raise ValueError("timeout_s must be in (0, 3600]")
    if not isinstance(candidate_timeout_s, int | float) or not 0 <= candidate_timeout_s <= 86400:
        raise ValueError("candidate_timeout_s must be in [0, 86400]")
    if not isinstance(memory_mb, int) or not 16 <= memory_mb <= 1 << 20:
        raise ValueError("memory_mb must be an int in [16, 1048576]")
    return {k: req[k] for k in ("codes", "entry_point", "inputs", "timeout_s", "memory_mb")} | {
        "candidate_timeout_s": candidate_timeout_s
    }


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _close_scratch() -> None:
    """Inside a sandbox (its own root): shared scratch directories become unwritable to workers,
    so candidates cannot leave files for each other; each worker writes in its own directory."""
    for scratch in ("/tmp", "/var/tmp", "/dev/shm"):
        with contextlib.suppress(OSError):
            os.chmod(scratch, 0o711)


def _parse_args(argv: list[str]) -> tuple[bool, int | None, int, int]:
    isolated, uid, recycle_after, memory_mb = False, None, DEFAULT_RECYCLE_AFTER, 512
    it = iter(argv)
    for arg in it:
        if arg == "--isolated":
            isolated = True
        elif arg == "--uid":
            uid = int(next(it))
        elif arg == "--recycle-after":
            recycle_after = max(1, int(next(it)))
        elif arg == "--memory-mb":
            memory_mb = int(next(it))
        else:
            raise SystemExit(f"harness: unknown argument {arg!r}")
    return isolated, uid, recycle_after, memory_mb


def main(argv: list[str]) -> int:
    global _HARNESS_CODE
    isolated, uid, recycle_after, memory_mb = _parse_args(argv)
    with open(__file__, encoding="utf-8") as fh:
        _HARNESS_CODE = compile(fh.read(), __file__, "exec")
    root = os.getuid() == 0
    drop_to = (uid if uid is not None else NOBODY) if root else None
    _preload()
    _prctl(PR_SET_DUMPABLE, 0)  # same-uid processes cannot ptrace or read our memory
    if isolated and root:
        _close_scratch()
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    for fd in (proto_in, proto_out):
        os.set_inheritable(fd, False)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # Objects that exist now go to a permanent generation the collector never walks, so workers
    # forked later do not copy every page of them on their first collection (copy-on-write
    # faults are what makes a fresh worker expensive, most of all under gVisor).
    import gc

    gc.collect()
    gc.freeze()
    supervisor = Supervisor(drop_to, recycle_after, isolated)
    try:
        supervisor.spawn(memory_mb)
    except WorkerStartError as exc:
        _send(proto_out, {"error": f"worker start failed: {exc}"})
        return 1
    _send(proto_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(), "worker_uid": drop_to})
    reader = os.fdopen(proto_in, "rb", buffering=1 << 16)
    try:
        for line in reader:
            if not line.strip():
                continue
            try:
                req = _validate(json.loads(line))
            except ValueError as exc:
                _send(proto_out, {"error": f"bad request: {exc}"})
                continue
            try:
                results = supervisor.run(req)
            except WorkerStartError as exc:
                _send(proto_out, {"error": f"worker start failed: {exc}"})
                continue
            events, supervisor.events = supervisor.events, {}
            _send(proto_out, {"results": results, "events": events})
            if supervisor.worker is None:  # have the next worker ready before the next request
                with contextlib.suppress(WorkerStartError):
                    supervisor.spawn(int(req["memory_mb"]))
    finally:
        supervisor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
