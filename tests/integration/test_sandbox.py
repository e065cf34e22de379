"""SandboxPool against the real backends (gVisor via runsc, bubblewrap, plain process); no mocks.

The pool's mechanics and ordinary candidates; hostile ones are in test_hostile.py.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.executor.harness import canonical_digest
from services.executor.sandbox import Backend, SandboxError, SandboxPool, TestOutcome, outcome_passed

T = 0.5  # per-test timeout for hostile candidates

ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module", params=[Backend.GVISOR, Backend.BWRAP, Backend.PROCESS], ids=str)
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[SandboxPool]:
    p = SandboxPool(request.param, size=2, default_timeout_s=2.0, default_memory_mb=256)
    try:
        await p.start()
    except SandboxError as exc:
        pytest.skip(f"backend {request.param} cannot start sandboxes in this environment: {exc}")
    yield p
    await p.close()


async def assert_healthy(pool: SandboxPool) -> None:
    out = await pool.run(ADD, "add", ["(1, 2)", "('a', 'b')"])
    assert [o.kind for o in out] == ["returned", "returned"]
    assert out[0].value_digest == canonical_digest(3)
    assert out[1].value_digest == canonical_digest("ab")


async def run(
    pool: SandboxPool, code: str, inputs: list[str], entry: str = "f", **kw: Any
) -> list[TestOutcome]:
    out = await pool.run(code, entry, inputs, **kw)
    assert len(out) == len(inputs)
    return out


async def test_correct_function(pool: SandboxPool) -> None:
    code = "import heapq\ndef f(xs, k):\n    return heapq.nsmallest(9, (x * k for x in xs)), {'n': len(xs)}\n"
    inputs = ["([3, 1, 2], 2)", "([], 5)", "([0.1], 3)"]
    expected = [([2, 4, 6], {"n": 3}), ([], {"n": 0}), ([0.30000000000000004], {"n": 1})]
    out = await run(pool, code, inputs)
    assert [o.kind for o in out] == ["returned"] * 3
    assert [o.value_digest for o in out] == [canonical_digest(e) for e in expected]
    assert outcome_passed(out[2], "([0.3], {'n': 1})")
    assert not outcome_passed(out[2], "([0.3], {'n': 2})")
    assert out[0].value_repr == "([2, 4, 6], {'n': 3})"


async def test_raised(pool: SandboxPool) -> None:
    code = "def f(x):\n    if x < 0:\n        raise ValueError('neg')\n    return 1 // x\n"
    out = await run(pool, code, ["(-1,)", "(0,)", "(1,)"])
    assert [(o.kind, o.exception_type) for o in out] == [
        ("raised", "ValueError"),
        ("raised", "ZeroDivisionError"),
        ("returned", ""),
    ]
    await assert_healthy(pool)


async def test_timeout_swallowed_is_killed_by_parent(pool: SandboxPool) -> None:
    code = (
        "def f(x):\n"
        "    while x:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
        "    return 'ok'\n"
    )
    out = await run(pool, code, ["(1,)", "(0,)"], timeout_s=T)
    assert [o.kind for o in out] == ["timeout", "returned"]
    assert out[1].value_digest == canonical_digest("ok")
    await assert_healthy(pool)


async def test_compile_errors(pool: SandboxPool) -> None:
    out = await run(pool, "def f(:\n", ["(1,)", "(2,)"])
    assert [(o.kind, o.exception_type) for o in out] == [("compile_error", "SyntaxError")] * 2
    out = await run(pool, ADD, ["(1, 2)"], entry="missing")
    assert [(o.kind, o.exception_type) for o in out] == [("compile_error", "NameError")]
    out = await run(pool, "raise ImportError('x')\ndef f():\n    return 1\n", ["()"])
    assert [(o.kind, o.exception_type) for o in out] == [("compile_error", "ImportError")]
    await assert_healthy(pool)


async def test_candidate_environment(pool: SandboxPool) -> None:
    code = (
        "import os\n"
        "def f():\n"
        "    try:\n"
        "        open('/etc/ucoder-escape', 'w').close()\n"
        "        wrote = True\n"
        "    except OSError:\n"
        "        wrote = False\n"
        "    open('scratch.txt', 'w').write('ok')\n"
        "    return dict(os.environ), os.getuid(), wrote, os.listdir('.')\n"
    )
    out = await run(pool, code, ["()"])
    # As root, each sandbox's candidates run as their own uid: uid_base + the sandbox's index.
    uids = [pool.uid_base + k for k in range(pool.size)] if os.getuid() == 0 else [os.getuid()]
    assert out[0].kind == "returned", out[0]
    assert out[0].value_digest in [canonical_digest(({}, uid, False, ["scratch.txt"])) for uid in uids]
    assert not os.path.exists("/etc/ucoder-escape")


STRAY = (
    "import os, time\n"
    "def f():\n"
    "    try:\n"
    "        if os.fork() == 0:\n"
    "            os.setsid()\n"
    "            time.sleep(1000)\n"
    "    except OSError:\n"
    "        pass\n"
    "    return 1\n"
)
LIST_CANDIDATE_UID_PROCS = (
    "import os\n"
    "def f():\n"
    "    me = os.getpid()\n"
    "    return sorted(int(p) for p in os.listdir('/proc')\n"
    "                  if p.isdigit() and int(p) != me and os.stat('/proc/' + p).st_uid == os.getuid())\n"
)


async def test_no_stray_processes_survive_a_candidate(pool: SandboxPool) -> None:
    if pool.backend is Backend.PROCESS or os.getuid() != 0:
        pytest.skip("needs an own pid namespace and a candidate uid distinct from the harness")
    async with SandboxPool(pool.backend, size=1) as one:
        assert [o.kind for o in await run(one, STRAY, ["()"])] == ["returned"]
        out = await run(one, LIST_CANDIDATE_UID_PROCS, ["()"])
        assert out[0].value_digest == canonical_digest([]), out[0].value_repr


async def test_concurrent_runs(pool: SandboxPool) -> None:
    code = "import time\ndef f(x):\n    time.sleep(0.4)\n    return x\n"
    t0 = time.monotonic()
    a, b = await asyncio.gather(run(pool, code, ["(1,)", "(2,)"]), run(pool, code, ["(3,)", "(4,)"]))
    elapsed = time.monotonic() - t0
    assert [o.value_digest for o in a + b] == [canonical_digest(i) for i in (1, 2, 3, 4)]
    assert elapsed < 1.5, f"runs did not overlap ({elapsed:.2f}s)"


async def test_dead_sandbox_is_replaced_and_the_run_retried(pool: SandboxPool) -> None:
    code = "import time\ndef f(x):\n    time.sleep(1.0)\n    return x\n"
    started = pool.events["sandbox_started"]
    runs = [asyncio.ensure_future(run(pool, code, [f"({i},)"])) for i in range(2)]
    await asyncio.sleep(0.5)
    for sb in pool._all:  # kill every sandbox behind the pool's back, mid-run
        assert sb.proc is not None
        os.killpg(sb.proc.pid, 9)
    # Not the candidates' fault: each run is retried on a fresh sandbox and still gets its result.
    results = await asyncio.gather(*runs)
    assert [out[0].value_digest for out in results] == [canonical_digest(0), canonical_digest(1)]
    assert pool.events["sandbox_started"] >= started + 2
    await assert_healthy(pool)


async def test_invalid_input_literal(pool: SandboxPool) -> None:
    with pytest.raises((ValueError, SyntaxError)):
        await pool.run(ADD, "add", ["(1, os.system('x'))"])


async def test_module_level_hang_times_out_every_input() -> None:
    async with SandboxPool(Backend.PROCESS, size=1) as p:
        out = await p.run("while True:\n    pass\ndef f():\n    return 1\n", "f", ["()", "()"], timeout_s=0.2)
        assert [o.kind for o in out] == ["timeout", "timeout"]


async def test_recycle() -> None:
    async with SandboxPool(Backend.PROCESS, size=1, recycle_after=2, sandbox_recycle_after=3) as p:
        pids = set()
        for _ in range(7):
            await assert_healthy(p)
            await asyncio.sleep(0)
            if p._all[0].proc is not None:
                pids.add(p._all[0].proc.pid)
        assert p.events["recycled:recycle_after"] >= 2  # workers inside the sandbox
        assert len(pids) >= 2  # and the sandbox itself


async def test_missing_runtime_raises() -> None:
    p = SandboxPool(Backend.PROCESS, size=1, python="/nonexistent/python3")
    with pytest.raises(SandboxError):
        await p.start()


async def test_large_batches_and_inputs_cross_the_pipes(pool: SandboxPool) -> None:
    # Frames far larger than a pipe buffer, both ways (16 candidates, 2 MB of inputs).
    big = "x" * 50_000
    inputs = [f"({big!r}, {k})" for k in range(40)]
    code = "def f(s, k):\n    return len(s) + k, s[:10]\n"
    results = await pool.run_many([code + f"# {k}\n" + "#" * 20_000 + "\n" for k in range(16)], "f", inputs)
    assert len(results) == 16
    for outs in results:
        assert [o.value_digest for o in outs] == [canonical_digest((50_000 + k, "x" * 10)) for k in range(40)]
