"""Hostile candidates against every real backend (gVisor, bubblewrap, plain process); no mocks.

Each test asserts the verdict the candidate gets and then that the executor still serves a clean
candidate on the same sandbox: the pools here have one sandbox, so anything a hostile candidate
leaves behind (patched modules, threads, files, signal handlers, alarms) would show in the canary.
"""

from __future__ import annotations

import ast
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.executor.harness import canonical_digest
from services.executor.rootfs import HARNESS_IN_ROOT
from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome
from tests.conftest import NatsServer

T = 0.5  # per-test timeout for hostile candidates
SECRET = "ucoder-test-secret-" + secrets.token_hex(8)
ROOT = os.getuid() == 0

# Uses what a hostile candidate could have damaged: builtins, a stdlib module, a stdlib class,
# the working directory, threads, the environment, signal handlers and the recursion limit.
CANARY = """
import collections, json, math, os, signal, sys, threading
def canary(x):
    return (
        len([1, 2, 3]), math.sqrt(16.0), json.dumps({"a": x}), collections.Counter("aab").most_common(1),
        sorted(os.listdir(".")), threading.active_count(), dict(os.environ),
        signal.getsignal(signal.SIGALRM) == signal.SIG_DFL, sys.getrecursionlimit(), str(print), x + 1,
    )
"""
CANARY_VALUE = (
    3,
    4.0,
    '{"a": 7}',
    [("a", 2)],
    [],
    1,
    {},
    True,
    1000,
    "<built-in function print>",
    8,
)


@pytest.fixture(scope="module", params=[Backend.GVISOR, Backend.BWRAP, Backend.PROCESS], ids=str)
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[SandboxPool]:
    # The executor's own environment holds a secret; no candidate may ever see it.
    os.environ["UCODER_TEST_SECRET"] = SECRET
    p = SandboxPool(request.param, size=1, default_timeout_s=2.0, default_memory_mb=256)
    try:
        await p.start()
    except SandboxError as exc:
        pytest.skip(f"backend {request.param} cannot start sandboxes in this environment: {exc}")
    yield p
    await p.close()
    os.environ.pop("UCODER_TEST_SECRET", None)


async def run(pool: SandboxPool, code: str, inputs: list[str], **kw: Any) -> list[TestOutcome]:
    out = await pool.run(code, "f", inputs, **kw)
    assert len(out) == len(inputs)
    return out


async def assert_serves_clean(pool: SandboxPool) -> None:
    """The executor keeps serving, and the next candidate sees a pristine interpreter."""
    out = await pool.run(CANARY, "canary", ["(7,)"])
    assert out[0].kind == "returned", out[0]
    assert out[0].value_digest == canonical_digest(CANARY_VALUE), out[0].value_repr


def kinds(out: list[TestOutcome]) -> list[tuple[str, str]]:
    return [(o.kind, o.exception_type) for o in out]


async def test_infinite_loop(pool: SandboxPool) -> None:
    out = await run(
        pool, "def f(x):\n    while x:\n        pass\n    return x\n", ["(0,)", "(1,)", "(0,)"], timeout_s=T
    )
    assert [o.kind for o in out] == ["returned", "timeout", "returned"]
    await assert_serves_clean(pool)


async def test_sleep_forever(pool: SandboxPool) -> None:
    code = "import time\ndef f(x):\n    if x:\n        time.sleep(10**6)\n    return x\n"
    out = await run(pool, code, ["(1,)", "(0,)"], timeout_s=T)
    assert [o.kind for o in out] == ["timeout", "returned"]
    await assert_serves_clean(pool)


async def test_fork_bomb_and_subprocesses(pool: SandboxPool) -> None:
    code = (
        "import os\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        while True:\n"
        "            os.fork()\n"
        "    if x == 1:\n"
        "        return os.system('sleep 100 &')\n"
        "    return os.posix_spawn('/bin/sh', ['sh'], {})\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)"])
    assert kinds(out) == [("raised", "PermissionError")] * 3
    await assert_serves_clean(pool)


async def test_memory_bomb(pool: SandboxPool) -> None:
    code = (
        "def f(x):\n"
        "    if x == 1:\n"
        "        return len(bytearray(10**10))\n"
        "    hog = []\n"
        "    while x == 2:\n"
        "        hog.append('x' * 10**6)\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(1,)", "(2,)", "(3,)"], timeout_s=5.0, memory_mb=256)
    assert out[0].kind == "memory"
    assert out[1].kind in ("memory", "crashed")
    assert out[2].kind == "returned"
    await assert_serves_clean(pool)


async def test_huge_output(pool: SandboxPool) -> None:
    code = (
        "import os, sys\n"
        "def f(x):\n"
        "    if x == 1:\n"
        "        print('y' * (4 << 20))\n"
        "    if x == 2:\n"
        "        sys.stderr.write('z' * (4 << 20))\n"
        "    os.write(1, b'{\"outcomes\": []}\\n' * 1000)\n"  # fd 1 is /dev/null, not the protocol
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)", "(3,)"])
    assert [o.kind for o in out] == ["returned", "output_limit", "output_limit", "returned"]
    await assert_serves_clean(pool)


async def test_huge_file(pool: SandboxPool) -> None:
    code = (
        "def f():\n    with open('big.bin', 'wb') as fh:\n        fh.write(b'x' * (8 << 20))\n    return 1\n"
    )
    out = await run(pool, code, ["()"])
    assert out[0].kind == "output_limit", out[0]
    await assert_serves_clean(pool)  # the file is gone too: the canary lists its cwd


async def test_deep_recursion_and_segfault(pool: SandboxPool) -> None:
    code = (
        "import faulthandler\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        return f(x)\n"
        "    if x == 1:\n"
        "        faulthandler._sigsegv()\n"
        "    if x == 2:\n"
        "        import ctypes\n"
        "        return ctypes.string_at(0)\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)", "(3,)"])
    assert kinds(out) == [
        ("raised", "RecursionError"),
        ("crashed", "signal:SIGSEGV"),
        ("raised", "PermissionError"),  # ctypes is denied outright
        ("returned", ""),
    ]
    await assert_serves_clean(pool)


async def test_exits(pool: SandboxPool) -> None:
    code = (
        "import os, sys\n"
        "def f(x):\n"
        "    if x == 1:\n"
        "        os._exit(3)\n"
        "    if x == 2:\n"
        "        sys.exit(0)\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)", "(4,)"])
    assert kinds(out) == [("returned", ""), ("crashed", "exit:3"), ("raised", "SystemExit"), ("returned", "")]
    assert out[3].value_digest == canonical_digest(4)
    await assert_serves_clean(pool)


async def test_kill_parent_and_pid_1(pool: SandboxPool) -> None:
    code = (
        "import os, signal\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        os.kill(os.getppid(), signal.SIGKILL)\n"
        "    if x == 1:\n"
        "        os.kill(1, signal.SIGKILL)\n"
        "    if x == 2:\n"
        "        os.killpg(0, signal.SIGKILL)\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)"])
    assert kinds(out) == [("raised", "PermissionError")] * 3
    await assert_serves_clean(pool)


async def test_signals(pool: SandboxPool) -> None:
    code = (
        "import os, signal\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    if x == 1:\n"
        "        signal.signal(signal.SIGALRM, lambda *a: None)\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)"])
    assert kinds(out) == [("crashed", "signal:SIGKILL"), ("returned", "")]
    await assert_serves_clean(pool)  # handlers were restored (the worker was replaced)


async def test_alarm_left_behind_does_not_hit_the_next_candidate(pool: SandboxPool) -> None:
    bomb = "import signal\ndef f():\n    signal.setitimer(signal.ITIMER_REAL, 0.3)\n    return 1\n"
    assert [o.kind for o in await run(pool, bomb, ["()"])] == ["returned"]
    victim = "import time\ndef f(x):\n    time.sleep(0.5)\n    return x * 2\n"
    out = await run(pool, victim, ["(21,)"])
    assert kinds(out) == [("returned", "")]
    assert out[0].value_digest == canonical_digest(42)
    await assert_serves_clean(pool)


async def test_thread_outliving_the_call(pool: SandboxPool) -> None:
    code = (
        "import builtins, threading, time\n"
        "def later():\n"
        "    time.sleep(0.3)\n"
        "    builtins.len = lambda x: -1\n"
        "def f():\n"
        "    threading.Thread(target=later, daemon=True).start()\n"
        "    return 1\n"
    )
    out = await run(pool, code, ["()"])
    # Where the kernel enforces RLIMIT_NPROC the thread cannot even start; gVisor lets it start
    # and the integrity check replaces the worker before the next candidate.
    assert out[0].kind in ("returned", "raised"), out[0]
    await asyncio.sleep(0.5)
    await assert_serves_clean(pool)


async def test_host_files_are_out_of_reach(pool: SandboxPool) -> None:
    project_file = str(Path(__file__).resolve())
    code = (
        "import os\n"
        "def f(path):\n"
        "    try:\n"
        "        with open(path, 'rb') as fh:\n"
        "            return 'read', len(fh.read())\n"
        "    except OSError as exc:\n"
        "        return 'denied', type(exc).__name__\n"
    )
    paths = ["/etc/shadow", f"/proc/{os.getpid()}/environ", f"/proc/{os.getpid()}/mem", project_file]
    out = await run(pool, code, [f"({p!r},)" for p in paths])
    assert all(o.kind == "returned" for o in out), out
    denied = [o.value_repr.startswith("('denied'") for o in out]
    if pool.backend is Backend.PROCESS:
        # A plain process sees the host filesystem: the pod's gVisor sandbox and image are the
        # boundary there (docs/design.md). Other processes and /etc/shadow stay closed.
        assert denied[:3] == [True, True, True], [o.value_repr for o in out]
    else:
        assert denied == [True] * 4, [o.value_repr for o in out]
    await assert_serves_clean(pool)


def sandboxed(pool: SandboxPool) -> None:
    if pool.backend is Backend.PROCESS:
        pytest.skip("the process backend runs on the host's filesystem (the pod's image is the boundary)")


OPEN_OR_STAT = (
    "import os\n"
    "def f(path):\n"
    "    out = []\n"
    "    for probe in (os.stat, lambda p: open(p, 'rb').read(), os.listdir):\n"
    "        try:\n"
    "            probe(path)\n"
    "            out.append('reached')\n"
    "        except OSError as exc:\n"
    "            out.append(type(exc).__name__)\n"
    "    return out\n"
)


async def test_planted_host_files_do_not_exist_inside(pool: SandboxPool, tmp_path: Path) -> None:
    """World-readable host files, asked for by their exact paths, are not there at all: the
    sandbox has a root of its own, not the host's with some paths hidden."""
    sandboxed(pool)
    planted = []
    for parent in ("/tmp", str(tmp_path), os.path.expanduser("~"), str(Path(__file__).parent)):
        fd, path = tempfile.mkstemp(prefix="ucoder-planted-", dir=parent)
        os.write(fd, SECRET.encode())
        os.close(fd)
        os.chmod(path, 0o644)
        planted.append(path)
    try:
        targets = [
            *planted,
            "/etc/passwd",
            "/usr/bin/env",
            "/var",
            sys.prefix,
            str(Path(__file__).parents[2]),
        ]
        out = await run(pool, OPEN_OR_STAT, [f"({t!r},)" for t in targets])
    finally:
        for path in planted:
            os.unlink(path)
    for target, o in zip(targets, out, strict=True):
        assert o.kind == "returned", (target, o)
        assert o.value_digest == canonical_digest(["FileNotFoundError"] * 3), (target, o.value_repr)
    await assert_serves_clean(pool)


WALK = (
    "import os\n"
    "def f(expected, skip):\n"
    "    found = []\n"
    "    for dirpath, dirnames, filenames in os.walk('/'):\n"
    "        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]\n"
    "        found += [os.path.join(dirpath, name) for name in filenames]\n"
    "    return sorted(set(found) - set(expected)), sorted(set(expected) - set(found))\n"
)


async def test_the_root_holds_only_the_interpreter(pool: SandboxPool) -> None:
    """Walking the whole filesystem from inside finds the interpreter, its shared libraries and
    the harness, and nothing else (the stdlib dirs are bound read-only; their package dirs are empty)."""
    sandboxed(pool)
    root = pool.root
    assert root is not None
    expected = [root.files.executable, *root.files.shared_libraries, HARNESS_IN_ROOT]
    skip = ["/proc", "/sys", "/dev", "/tmp", *root.files.library_dirs]
    out = await run(pool, WALK, [f"({expected!r}, {skip!r})"], timeout_s=20.0)
    assert out[0].kind == "returned", out[0]
    assert out[0].value_digest == canonical_digest(([], [])), out[0].value_repr
    listing = "import os\ndef f(paths):\n    return [sorted(os.listdir(p)) for p in paths]\n"
    masked = await run(pool, listing, [f"({list(root.files.masked_dirs)!r},)"])
    assert masked[0].value_digest == canonical_digest([[] for _ in root.files.masked_dirs]), masked[0]
    assert root.files.masked_dirs, "the venv's base interpreter has a site-packages to hide"
    await assert_serves_clean(pool)


IMPORT_ALL = (
    "import importlib\n"
    "def f(names):\n"
    "    failed = []\n"
    "    for name in names:\n"
    "        try:\n"
    "            importlib.import_module(name)\n"
    "        except BaseException as exc:\n"
    "            failed.append(name)\n"
    "    return failed\n"
)
NOT_IMPORTED = frozenset({"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo"})
"""Modules whose import has effects (a browser, printing) rather than providing code."""
SUBMODULES = frozenset(
    {"encodings.idna", "concurrent.futures", "email.mime.text", "xml.etree.ElementTree", "unittest.mock"}
)
"""Packages' modules (sys.stdlib_module_names lists top-level names only)."""


async def test_every_stdlib_module_imports(pool: SandboxPool) -> None:
    """Every standard-library module that imports on the host imports in the sandbox too, even
    where the host keeps the interpreter where the candidate uid cannot read it (pyenv under /root)."""
    sandboxed(pool)
    names = sorted((set(sys.stdlib_module_names) | SUBMODULES) - NOT_IMPORTED)
    probe = IMPORT_ALL + f"print(repr(f({names!r})))\n"
    assert pool.root is not None
    host = subprocess.run(
        [pool.root.files.executable, "-I", "-S", "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    failing_on_host = ast.literal_eval(host.stdout.strip().splitlines()[-1])
    importable = [n for n in names if n not in failing_on_host]
    assert {"glob", "subprocess", "sqlite3", "ssl", "lzma", "tkinter", "encodings.idna"} - set(
        importable
    ) <= {"tkinter"}
    out = await run(pool, IMPORT_ALL, [f"({importable!r},)"], timeout_s=60.0, memory_mb=1024)
    assert out[0].kind == "returned", out[0]
    assert out[0].value_digest == canonical_digest([]), out[0].value_repr
    idna = await run(pool, "def f(s):\n    return s.encode('idna')\n", ["('bücher.example',)"])
    assert idna[0].value_digest == canonical_digest(b"xn--bcher-kva.example"), idna[0]
    await assert_serves_clean(pool)


async def test_other_processes_are_invisible(pool: SandboxPool) -> None:
    if pool.backend is Backend.PROCESS:
        pytest.skip("the process backend shares the host's pid namespace (the pod provides one)")
    code = "import os\ndef f():\n    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
    out = await run(pool, code, ["()"])
    assert out[0].kind == "returned"
    visible = eval(out[0].value_repr)  # a short list of small ints
    assert os.getpid() not in visible and len(visible) <= 5, visible


async def test_writes_outside_the_tmp_dir(pool: SandboxPool, tmp_path: Path) -> None:
    name = "ucoder-escape-" + secrets.token_hex(4)
    targets = [f"/tmp/{name}", f"/var/tmp/{name}", f"/dev/shm/{name}", f"../{name}", f"/etc/{name}"]
    code = (
        "import os\n"
        "def f(path, how):\n"
        "    if how == 'open':\n"
        "        open(path, 'w').write('x')\n"
        "    elif how == 'mkdir':\n"
        "        os.mkdir(path)\n"
        "    else:\n"
        "        os.symlink('/etc', path)\n"
        "    return 'wrote'\n"
    )
    inputs = [f"({t!r}, 'open')" for t in targets] + [f"('/tmp/{name}d', 'mkdir')", f"('{name}l', 'symlink')"]
    out = await run(pool, code, inputs)
    for o in out:
        assert o.kind == "raised" and o.exception_type in (
            "PermissionError",
            "FileNotFoundError",
            "OSError",
        ), o
    for t in targets[:3]:
        assert not os.path.exists(t)
    assert not os.path.exists(f"/tmp/{name}d")
    await assert_serves_clean(pool)


async def test_environment_secrets_never_appear(pool: SandboxPool) -> None:
    code = (
        "import os\n"
        f"SECRET = {SECRET!r}.encode()\n"
        "def f():\n"
        "    found = []\n"
        "    if SECRET in repr(dict(os.environ)).encode():\n"
        "        found.append('os.environ')\n"
        "    for pid in [p for p in os.listdir('/proc') if p.isdigit()] + ['self']:\n"
        "        for leaf in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                with open(f'/proc/{pid}/{leaf}', 'rb') as fh:\n"
        "                    if SECRET in fh.read():\n"
        "                        found.append(pid + '/' + leaf)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return found\n"
    )
    assert os.environ["UCODER_TEST_SECRET"] == SECRET
    out = await run(pool, code, ["()"])
    assert out[0].kind == "returned", out[0]
    assert out[0].value_digest == canonical_digest([]), out[0].value_repr
    assert SECRET not in out[0].value_repr
    await assert_serves_clean(pool)


async def test_no_network(pool: SandboxPool, nats_server: NatsServer) -> None:
    connections: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("connected")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.2", 0)
    port = server.sockets[0].getsockname()[1]
    code = (
        "import socket\n"
        "def f(host, port):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.settimeout(1)\n"
        "    s.connect((host, port))\n"
        "    s.sendall(b'PING\\r\\n')\n"
        "    return 'connected'\n"
    )
    try:
        out = await run(pool, code, [f"('127.0.0.1', {nats_server.port})", f"('127.0.0.2', {port})"])
        await asyncio.sleep(0.2)
    finally:
        server.close()
        await server.wait_closed()
    assert kinds(out) == [("raised", "PermissionError")] * 2
    assert connections == []
    await assert_serves_clean(pool)


async def test_stdin_is_closed(pool: SandboxPool) -> None:
    code = (
        "import os, sys\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        return input()\n"
        "    if x == 1:\n"
        "        return sys.stdin.read()\n"
        "    return os.read(0, 100)\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)"])
    assert kinds(out) == [("raised", "EOFError"), ("returned", ""), ("returned", "")]
    assert out[1].value_digest == canonical_digest("")
    assert out[2].value_digest == canonical_digest(b"")
    await assert_serves_clean(pool)


async def test_replaced_builtins_do_not_leak(pool: SandboxPool) -> None:
    code = (
        "import builtins\n"
        "builtins.len = lambda x: 42\n"
        "builtins.print = None\n"
        "def f(x):\n"
        "    return len([1] * x)\n"
    )
    before = sum(v for k, v in pool.events.items() if k.startswith("recycled:touched"))
    out = await run(pool, code, ["(3,)"])
    assert out[0].value_digest == canonical_digest(42)  # its own behaviour is its own business
    assert sum(v for k, v in pool.events.items() if k.startswith("recycled:touched")) == before + 1
    await assert_serves_clean(pool)


async def test_a_replaced_repr_does_not_change_the_reported_value(pool: SandboxPool) -> None:
    # Found from outside: value_repr went through builtins.repr (reprlib looks it up per call),
    # so a candidate could choose how its own value is displayed.
    code = "import builtins\nbuiltins.repr = lambda x: 'forged'\ndef f(x):\n    return [x, 'a', (x,)]\n"
    out = await run(pool, code, ["(3,)", "(4,)"])
    assert [o.value_repr for o in out] == ["[3, 'a', (3,)]", "[4, 'a', (4,)]"]
    assert out[0].value_digest == canonical_digest([3, "a", (3,)])
    await assert_serves_clean(pool)


async def test_monkeypatched_stdlib_does_not_leak(pool: SandboxPool) -> None:
    code = (
        "import collections, json, math\n"
        "math.sqrt = lambda x: -1.0\n"
        "json.dumps = lambda *a, **k: 'forged'\n"
        "collections.Counter.most_common = lambda self, n=None: []\n"
        "def f(x):\n"
        "    return math.sqrt(x)\n"
    )
    out = await run(pool, code, ["(4.0,)"])
    assert kinds(out) == [("returned", "")]  # the harness itself uses neither json nor the patched math
    assert out[0].value_digest == canonical_digest(-1.0)
    await assert_serves_clean(pool)


async def test_changed_function_defaults_do_not_leak(pool: SandboxPool) -> None:
    # A function's __module__ can be rewritten without an audit event, so the owner a function
    # claims is not trusted: changing any function that is not the candidate's replaces the worker.
    code = (
        "import json\n"
        "def f(x):\n"
        "    json.dumps.__module__ = '__candidate__'\n"
        "    json.dumps.__kwdefaults__ = dict(skipkeys=False, ensure_ascii=True, check_circular=True,\n"
        "        allow_nan=True, cls=None, indent=3, separators=None, default=None, sort_keys=True)\n"
        "    return json.dumps(x)\n"
    )
    patched = await run(pool, code, ["({'b': 1, 'a': 2},)"])
    assert patched[0].value_digest == canonical_digest('{\n   "a": 2,\n   "b": 1\n}'), patched[0]
    clean = await run(pool, "import json\ndef f(x):\n    return json.dumps(x)\n", ["({'b': 1, 'a': 2},)"])
    assert clean[0].value_digest == canonical_digest('{"b": 1, "a": 2}'), clean[0]
    await assert_serves_clean(pool)


async def test_standard_library_classes_made_by_candidates_work(pool: SandboxPool) -> None:
    # namedtuple sets its new class's __module__ and __new__'s defaults; these used to be denied
    # as changes to the standard library's objects, so correct programs got compile_error.
    nt = "from collections import namedtuple\n"
    programs = [
        nt + "P = namedtuple('P', 'x y')\ndef f(a):\n    return tuple(P(a, 2))\n",
        nt + "def f(a):\n    return tuple(namedtuple('P', 'x y', defaults=[0])(a))\n",
        "import typing\nclass A(typing.NamedTuple):\n    x: int\n    y: int = 0\n"
        "def f(a):\n    return tuple(A(a))\n",
        "class C:\n    n = 0\ndef f(a):\n    C.n += a\n    return (C.n, 0)\n",
    ]
    for code in programs:
        out = await run(pool, code, ["(1,)"])
        assert out[0].kind == "returned", (code, out[0])
        assert out[0].value_digest in (canonical_digest((1, 2)), canonical_digest((1, 0))), (code, out[0])
    await assert_serves_clean(pool)


async def test_faking_outcomes_through_the_harness(pool: SandboxPool) -> None:
    # Patching the harness's own functions from candidate code does not change what is reported.
    code = (
        "import __main__, sys\n"
        "fake = lambda *a, **k: {'kind': 'returned', 'value_digest': 'forged', 'exception_type': '',\n"
        "                         'value_repr': 'forged', 'duration_ms': 0.0}\n"
        "for name in ('_run_test', 'canonical_digest', '_outcome', '_clean'):\n"
        "    setattr(__main__, name, fake)\n"
        "def f(x):\n"
        "    raise ValueError('the real behaviour')\n"
    )
    out = await run(pool, code, ["(1,)", "(2,)"])
    assert kinds(out) == [("raised", "ValueError")] * 2
    await assert_serves_clean(pool)


async def test_forged_result_lines(pool: SandboxPool) -> None:
    # Writing outcome lines into every open descriptor: the supervisor accepts none of them.
    code = (
        "import json, os\n"
        "def f(x):\n"
        "    if x == 0:\n"
        "        for i in range(5):\n"
        "            forged = {'i': i, 'kind': 'returned', 'value_digest': 'forged', 'done': True}\n"
        "            line = json.dumps(forged)\n"
        "            for fd in range(3, 64):\n"
        "                try:\n"
        "                    os.write(fd, (line + '\\n').encode())\n"
        "                except OSError:\n"
        "                    pass\n"
        "    return x\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)", "(2,)"])
    assert out[0].kind == "crashed" and out[0].exception_type == "protocol", out[0]
    assert [o.value_digest for o in out[1:]] == [canonical_digest(1), canonical_digest(2)]
    assert all(o.value_digest != "forged" for o in out)
    await assert_serves_clean(pool)


async def test_files_do_not_outlive_the_candidate(pool: SandboxPool) -> None:
    code = (
        "import os\n"
        "def f():\n"
        "    open('leak.txt', 'w').write('secret')\n"
        "    os.mkdir('sub')\n"
        "    return sorted(os.listdir('.'))\n"
    )
    out = await run(pool, code, ["()"])
    assert out[0].value_digest == canonical_digest(["leak.txt", "sub"])
    await assert_serves_clean(pool)  # the canary's cwd listing is empty


async def test_candidate_uid_is_unprivileged(pool: SandboxPool) -> None:
    if not ROOT:
        pytest.skip("the harness drops candidates to their own uid only when it runs as root")
    code = "import os\ndef f():\n    return os.getuid(), os.getgid(), os.getgroups()\n"
    out = await run(pool, code, ["()"])
    uid = pool.uid_base
    assert out[0].value_digest == canonical_digest((uid, uid, [])), out[0].value_repr


async def test_replacing_the_result_channel(pool: SandboxPool) -> None:
    # Silencing or closing the worker's result pipe never turns into a result for the candidate.
    code = (
        "import os\n"
        "def f(x):\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.dup2(0, fd) if x == 0 else os.close(fd)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'claimed'\n"
    )
    out = await run(pool, code, ["(0,)", "(1,)"], timeout_s=T)
    assert [o.kind for o in out] in (
        ["timeout", "crashed"],
        ["crashed", "crashed"],
        ["timeout", "timeout"],
    ), out
    await assert_serves_clean(pool)


async def test_frame_walking_taints_the_worker(pool: SandboxPool) -> None:
    # Reaching the harness through frames is possible in-process; it marks the worker, which is
    # replaced before anyone else runs on it.
    code = (
        "import sys\n"
        "def f():\n"
        "    frame = sys._getframe(1)\n"
        "    frame.f_globals['canonical_digest'] = lambda value: 'forged'\n"
        "    return 1\n"
    )
    before = pool.events.get("recycled:touched:sys._getframe", 0)
    out = await run(pool, code, ["()"])
    assert out[0].kind == "returned"
    assert pool.events.get("recycled:touched:sys._getframe", 0) == before + 1
    await assert_serves_clean(pool)


# Batches: several candidates of one problem share a sandbox round trip (run_many), so a hostile
# candidate sits between others. Each must get exactly its own outcomes.

RETURNS_ITS_TAG = "def f(x):\n    return ({tag!r}, x)\n"


async def test_batch_neighbours_of_hostile_candidates_are_unaffected(pool: SandboxPool) -> None:
    hostile = [
        "import builtins\nbuiltins.len = lambda x: 0\ndef f(x):\n    return len('abc')\n",  # damage
        "def f(x):\n    while True:\n        pass\n",  # hangs on every input
        "import os\nos._exit(9)\ndef f(x):\n    return x\n",  # dies in module code
        "import json, os\n"  # forges a line for the next candidate
        "def f(x):\n"
        "    line = json.dumps({'c': 5, 'i': 0, 'kind': 'returned', 'value_digest': 'forged'}) + '\\n'\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, line.encode())\n"
        "        except OSError:\n"
        "            pass\n"
        "    return x\n",
    ]
    codes: list[str] = []
    for k, bad in enumerate(hostile):
        codes += [RETURNS_ITS_TAG.format(tag=f"before-{k}"), bad]
    codes.append(RETURNS_ITS_TAG.format(tag="last"))
    inputs = ["(1,)", "(2,)"]
    results = await pool.run_many(codes, "f", inputs, timeout_s=T)
    assert len(results) == len(codes)
    for code, outs in zip(codes, results, strict=True):
        if code.startswith("def f(x):\n    return ("):
            tag = code.split("(", 2)[2].split(",")[0].strip("'")
            assert [o.value_digest for o in outs] == [canonical_digest((tag, x)) for x in (1, 2)], (tag, outs)
    assert [o.value_digest for o in results[1]] == [canonical_digest(0)] * 2
    assert [o.kind for o in results[3]] == ["timeout", "timeout"]
    assert kinds(results[5]) == [("crashed", "exit:9")] * 2
    assert all(o.value_digest != "forged" for outs in results for o in outs)
    await assert_serves_clean(pool)


async def test_batch_results_belong_to_their_candidates(pool: SandboxPool) -> None:
    codes = [RETURNS_ITS_TAG.format(tag=f"c{k}") for k in range(40)]
    results = await pool.run_many(codes, "f", ["(0,)", "(1,)", "(2,)"], batch=7)
    assert [[o.value_digest for o in outs] for outs in results] == [
        [canonical_digest((f"c{k}", x)) for x in range(3)] for k in range(40)
    ]


async def test_descriptors_left_open_do_not_leak(pool: SandboxPool) -> None:
    # A raw descriptor: nothing closes it when the candidate's namespace goes away.
    code = (
        "import os\n"
        "def f():\n"
        "    os.open('/dev/null', os.O_RDONLY)\n"
        "    return len(os.listdir('/proc/self/fd'))\n"
    )
    first = await run(pool, code, ["()"])
    assert first[0].kind == "returned"
    count = "import os\ndef f():\n    return len(os.listdir('/proc/self/fd'))\n"
    second = await run(pool, count, ["()"])
    # The next candidate runs on a worker without the leaked descriptor.
    assert second[0].value_digest != first[0].value_digest, (first[0].value_repr, second[0].value_repr)
