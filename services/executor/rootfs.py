"""The sandbox's own root filesystem: the interpreter, its standard library and nothing else.

Candidates under gVisor or bubblewrap do not see the host's filesystem at all. Each pool builds
one read-only tree at start-up and every sandbox of the pool uses it as ``/``:

* the base interpreter (a venv's ``python`` resolves to it) and every shared library that it and
  the standard library's extension modules load, copied in at their host paths (``ldd`` finds
  them), so the dynamic loader and the interpreter's own prefix search work unchanged;
* the standard library's directories, bound read-only at their host paths, with the
  ``site-packages``/``dist-packages`` directories inside them covered by empty read-only mounts
  (candidates get the standard library, not the executor's packages);
* the harness at ``/ucoder/harness.py``;
* a private writable ``/tmp`` and the runtime's own ``/proc`` and ``/dev``.

Every directory of the tree is world-traversable, so candidates import every stdlib module even
where the host keeps the interpreter in a directory their uid cannot read (pyenv under /root).
``describe_interpreter`` and ``build_root`` do the I/O; ``parse_ldd``, ``oci_spec`` and
``bwrap_args`` are pure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HARNESS_IN_ROOT = "/ucoder/harness.py"
"""Where the harness lives inside the sandbox."""
RUNTIME_DIRS = ("/proc", "/dev", "/tmp")
"""Mount points the runtime fills (proc, devices) or the sandbox owns (a private tmpfs)."""
MASKED_NAMES = frozenset({"site-packages", "dist-packages"})
"""Directories inside the standard library that hold installed packages, not the stdlib."""
EXTRA_LIBRARIES = ("libgcc_s.so.1",)
"""Loaded by glibc with dlopen (thread cancellation, unwinding), so ``ldd`` never lists them;
copied in when they sit beside libc."""
SANDBOX_CAPABILITIES = (
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_CHOWN",
    "CAP_KILL",
    "CAP_FOWNER",
    "CAP_DAC_OVERRIDE",
)
"""What the harness (root inside) needs: drop workers to their uid, own and clean their dirs."""
DESCRIBE_TIMEOUT_S = 30.0
_LDD_PATH = re.compile(r"(/\S+) \(0x[0-9a-f]+\)")


class RootError(Exception):
    """The sandbox root cannot be built (the message says why)."""


@dataclass(frozen=True)
class InterpreterFiles:
    """What of the host a candidate's interpreter needs."""

    executable: str
    """Real path of the base interpreter (what a venv's ``python`` links to)."""
    library_dirs: tuple[str, ...]
    """The standard library's directories (``sys.path`` of ``python -I -S``), outermost only."""
    masked_dirs: tuple[str, ...]
    """Package directories inside ``library_dirs``, hidden under empty mounts."""
    shared_libraries: tuple[str, ...]
    """Shared objects (outside ``library_dirs``) the interpreter and its extension modules load."""


def parse_ldd(output: str) -> list[str]:
    """Absolute paths ``ldd`` resolved (``libc.so.6 => /lib/.../libc.so.6 (0x...)`` and the
    loader's own ``/lib64/ld-linux-x86-64.so.2 (0x...)``); unresolved and virtual entries are skipped."""
    return [m.group(1) for line in output.splitlines() if (m := _LDD_PATH.search(line))]


def outermost(dirs: Iterable[str]) -> list[str]:
    """``dirs`` without those inside another one (lib-dynload lies inside the stdlib dir)."""
    unique = sorted({os.path.normpath(d) for d in dirs})
    kept: list[str] = []
    for d in unique:
        if not any(d == k or d.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(d)
    return kept


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=DESCRIBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RootError(f"cannot run {cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        raise RootError(f"{' '.join(cmd[:3])} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def describe_interpreter(python: str) -> InterpreterFiles:
    """Asks ``python`` (and its base interpreter) what it needs, and ``ldd`` what that loads."""
    base = _run([python, "-I", "-c", "import os, sys; print(os.path.realpath(sys._base_executable))"])
    executable = base.strip()
    raw_path = json.loads(
        _run([executable, "-I", "-S", "-c", "import json, sys; print(json.dumps(sys.path))"])
    )
    library_dirs = outermost(os.path.realpath(p) for p in raw_path if os.path.isdir(p))
    if not library_dirs:
        raise RootError(f"{executable} reports no standard library directory")
    masked = sorted(
        os.path.join(d, name) for d in library_dirs for name in os.listdir(d) if name in MASKED_NAMES
    )
    if shutil.which("ldd") is None:
        raise RootError("ldd not found on PATH (it lists the interpreter's shared libraries)")
    objects = [executable]
    for d in library_dirs:
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = [n for n in dirnames if os.path.join(dirpath, n) not in masked]
            objects += [os.path.join(dirpath, f) for f in filenames if ".so" in f]
    libraries: set[str] = set()
    for start in range(0, len(objects), 64):  # batches keep the command line short
        libraries.update(parse_ldd(_ldd(objects[start : start + 64])))
    libc = next((p for p in libraries if os.path.basename(p).startswith("libc.so")), None)
    if libc is not None:
        for name in EXTRA_LIBRARIES:
            extra = os.path.join(os.path.dirname(libc), name)
            if os.path.exists(extra):
                libraries.add(extra)
    inside = [p for p in libraries if any(p.startswith(d + "/") for d in library_dirs)]
    return InterpreterFiles(
        executable=executable,
        library_dirs=tuple(library_dirs),
        masked_dirs=tuple(masked),
        shared_libraries=tuple(sorted(libraries.difference(inside))),
    )


def _ldd(objects: list[str]) -> str:
    # ldd exits non-zero when any argument is not dynamic (a static interpreter, a stray file
    # named *.so*) but still lists the others, so its exit status is not an error here.
    try:
        done = subprocess.run(["ldd", *objects], capture_output=True, text=True, timeout=DESCRIBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RootError(f"cannot run ldd: {exc}") from exc
    return done.stdout


@dataclass(frozen=True)
class SandboxRoot:
    """A built root: ``path`` is ``/`` inside the sandbox."""

    path: str
    files: InterpreterFiles

    @property
    def env(self) -> dict[str, str]:
        """The harness's environment inside the sandbox (workers clear it for candidates)."""
        library_path = ":".join(sorted({os.path.dirname(p) for p in self.files.shared_libraries}))
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "LD_LIBRARY_PATH": library_path}

    def command(self, harness_args: list[str]) -> list[str]:
        """The harness's command line inside the sandbox."""
        return [self.files.executable, "-u", "-I", HARNESS_IN_ROOT, *harness_args]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _make_dirs(root: str, path: str) -> str:
    target = root + path
    os.makedirs(target, mode=0o755, exist_ok=True)
    return target


def build_root(files: InterpreterFiles, harness: Path, parent: str | None = None) -> SandboxRoot:
    """Writes the tree (read-only files, world-traversable directories) into a new temp dir."""
    root = tempfile.mkdtemp(prefix="ucoder-root-", dir=parent)
    try:
        os.chmod(root, 0o755)
        for source in (files.executable, *files.shared_libraries):
            target = _make_dirs(root, os.path.dirname(source)) + "/" + os.path.basename(source)
            shutil.copyfile(source, target)  # follows links: ld.so looks names up, not inodes
            os.chmod(target, 0o555)
        for mount_point in (*files.library_dirs, *RUNTIME_DIRS):
            _make_dirs(root, mount_point)
        harness_target = (
            _make_dirs(root, os.path.dirname(HARNESS_IN_ROOT)) + "/" + os.path.basename(HARNESS_IN_ROOT)
        )
        shutil.copyfile(harness, harness_target)
        os.chmod(harness_target, 0o444)
        # Directories made by makedirs are 0755 under a 022 umask only; set them explicitly.
        for dirpath, _dirnames, _filenames in os.walk(root):
            os.chmod(dirpath, 0o755)
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RootError(f"cannot build the sandbox root in {root}: {exc}") from exc
    return SandboxRoot(root, files)


def oci_spec(root: SandboxRoot, args: list[str], hostname: str = "sandbox") -> dict[str, object]:
    """An OCI runtime spec for ``runsc run``: the root read-only, the stdlib bound read-only,
    package dirs masked, a private tmpfs ``/tmp``, its own namespaces, root with only the
    capabilities the harness needs."""
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        },
    ]
    mounts += [
        {"destination": d, "type": "bind", "source": d, "options": ["rbind", "ro"]}
        for d in root.files.library_dirs
    ]
    mounts += [
        {"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]}
        for d in root.files.masked_dirs
    ]
    caps = list(SANDBOX_CAPABILITIES)
    return {
        "ociVersion": "1.0.0",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [f"{k}={v}" for k, v in root.env.items()],
            "cwd": "/tmp",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": root.path, "readonly": True},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }


def bwrap_args(root: SandboxRoot) -> list[str]:
    """bubblewrap's filesystem arguments for the same tree."""
    args = ["--ro-bind", root.path, "/"]
    for d in root.files.library_dirs:
        args += ["--ro-bind", d, d]
    for d in root.files.masked_dirs:
        args += ["--tmpfs", d, "--remount-ro", d]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chdir", "/tmp"]
    for key, value in root.env.items():
        args += ["--setenv", key, value]
    return args
