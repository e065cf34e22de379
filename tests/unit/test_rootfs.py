"""The sandbox root's pure parts: what ldd says, which directories are bound, the OCI spec and
bubblewrap's arguments for the same tree."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from services.executor.rootfs import (
    HARNESS_IN_ROOT,
    SANDBOX_CAPABILITIES,
    InterpreterFiles,
    SandboxRoot,
    build_root,
    bwrap_args,
    describe_interpreter,
    oci_spec,
    outermost,
    parse_ldd,
)

LDD = """\
/opt/py/bin/python3.11:
\tlinux-vdso.so.1 (0x00007ffd5d3f2000)
\tlibpython3.11.so.1.0 => /opt/py/lib/libpython3.11.so.1.0 (0x00007f2c1a000000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2c19e1e000)
\tlibmissing.so.2 => not found
\t/lib64/ld-linux-x86-64.so.2 (0x00007f2c1a7b5000)
/opt/py/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so:
\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f2c19d00000)
/opt/py/lib/python3.11/README.so.txt:
\tnot a dynamic executable
"""

FILES = InterpreterFiles(
    executable="/opt/py/bin/python3.11",
    library_dirs=("/opt/py/lib/python3.11",),
    masked_dirs=("/opt/py/lib/python3.11/site-packages",),
    shared_libraries=("/lib/x86_64-linux-gnu/libc.so.6", "/opt/py/lib/libpython3.11.so.1.0"),
)
ROOT = SandboxRoot("/tmp/ucoder-root-x", FILES)


def test_parse_ldd_keeps_resolved_paths_only() -> None:
    assert parse_ldd(LDD) == [
        "/opt/py/lib/libpython3.11.so.1.0",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/libssl.so.3",
    ]


def test_outermost_drops_nested_and_duplicate_dirs() -> None:
    dirs = [
        "/opt/py/lib/python3.11/lib-dynload",
        "/opt/py/lib/python3.11",
        "/opt/py/lib/python3.11/",
        "/opt/py/lib/python3.1",
    ]
    assert outermost(dirs) == ["/opt/py/lib/python3.1", "/opt/py/lib/python3.11"]


def test_oci_spec_is_read_only_and_bounded() -> None:
    spec = oci_spec(ROOT, ["/opt/py/bin/python3.11", "-I", HARNESS_IN_ROOT])
    assert spec["root"] == {"path": ROOT.path, "readonly": True}
    mounts = {m["destination"]: m for m in spec["mounts"]}  # type: ignore[attr-defined]
    assert mounts["/opt/py/lib/python3.11"]["options"] == ["rbind", "ro"]
    assert mounts["/opt/py/lib/python3.11/site-packages"]["type"] == "tmpfs"
    assert "ro" in mounts["/opt/py/lib/python3.11/site-packages"]["options"]
    assert mounts["/tmp"]["type"] == "tmpfs"
    # Only the standard library comes from the host: no other bind mount exists.
    binds = [d for d, m in mounts.items() if m["type"] == "bind"]
    assert binds == ["/opt/py/lib/python3.11"]
    process = spec["process"]
    assert process["noNewPrivileges"] is True  # type: ignore[index]
    assert process["capabilities"]["bounding"] == list(SANDBOX_CAPABILITIES)  # type: ignore[index]
    assert "TMPDIR=/tmp" in process["env"]  # type: ignore[index]
    namespaces = {n["type"] for n in spec["linux"]["namespaces"]}  # type: ignore[index]
    assert {"pid", "network", "mount"} <= namespaces


def test_bwrap_args_build_the_same_tree() -> None:
    args = bwrap_args(ROOT)
    assert args[:3] == ["--ro-bind", ROOT.path, "/"]
    pairs = list(itertools.pairwise(args))
    assert ("--tmpfs", "/opt/py/lib/python3.11/site-packages") in pairs
    assert ("--remount-ro", "/opt/py/lib/python3.11/site-packages") in pairs
    assert ("--tmpfs", "/tmp") in pairs
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    assert binds == [ROOT.path, "/opt/py/lib/python3.11"]


def test_this_interpreter_and_its_root(tmp_path: Path) -> None:
    files = describe_interpreter(sys.executable)
    assert os.path.realpath(files.executable) == files.executable
    assert any(os.path.exists(os.path.join(d, "os.py")) for d in files.library_dirs)
    assert any(os.path.basename(p).startswith("libc.so") for p in files.shared_libraries)
    assert not any(p.startswith(d + "/") for p in files.shared_libraries for d in files.library_dirs)
    root = build_root(files, Path(__file__), parent=str(tmp_path))
    try:
        tree = {
            str(Path(dirpath, name)).removeprefix(root.path)
            for dirpath, _, names in os.walk(root.path)
            for name in names
        }
        assert tree == {files.executable, *files.shared_libraries, HARNESS_IN_ROOT}
        for dirpath, _, _ in os.walk(root.path):
            assert os.stat(dirpath).st_mode & 0o777 == 0o755, dirpath
        for path in tree:
            assert not os.stat(root.path + path).st_mode & 0o222, path  # read-only files
    finally:
        root.remove()
    assert not os.path.exists(root.path)
