"""`make run` from a clean clone with an empty home, N times in a row (issue 15: a first run that
works on a fresh machine every time).

Each run clones the checkout's committed HEAD into a new temp dir and runs `make run` there with
HOME set to a new empty directory, so there is no venv, no ~/.cache (pip's wheels, the default
model's build, vLLM's compile cache) and no ~/.ucoder. The machine's own settings stay (PATH,
proxies, pip's PIP_* index and find-links); system packages (runsc, bubblewrap, prometheus) are
whatever the machine has: `make run` installs them when missing.

    .venv/bin/python scripts/fresh_runs.py --runs 5

Results are appended to bench/results/fresh-runs.json as each run ends (a rerun continues until
the file holds --runs results for the current commit); a failed run's log tail is kept there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CHECKOUT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = CHECKOUT / "bench" / "results" / "fresh-runs.json"
LOG_TAIL_LINES = 40
DROPPED_ENV_PREFIXES = ("UCODER_", "VIRTUAL_ENV", "XDG_", "PYTHON", "HF_", "VLLM_")
"""A newcomer's shell has the machine's settings (PATH, proxies, pip's index and find-links) but
none of this project's state: these are dropped, HOME points at a new empty directory."""


def commit_of(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def fresh_run(repo: Path, index: int, timeout_s: float) -> dict[str, Any]:
    """One clone, one empty home, one `make run`; returns what happened."""
    work = Path(tempfile.mkdtemp(prefix=f"ucoder-fresh-{index}-"))
    home = work / "home"
    home.mkdir()
    clone = work / "ucoder"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV_PREFIXES)}
    env["HOME"] = str(home)
    log_path = work / "make-run.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        try:
            rc = subprocess.run(
                ["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s
            ).returncode
        except subprocess.TimeoutExpired:
            rc = 124
            # The stack's services outlive make; stop them with the clone's own CLI.
            subprocess.run(
                [str(clone / ".venv/bin/ucoder"), "down"],
                cwd=clone,
                env=env,
                capture_output=True,
                check=False,
            )
    seconds = time.monotonic() - started
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    result: dict[str, Any] = {
        "run": index,
        "rc": rc,
        "ok": rc == 0,
        "minutes": round(seconds / 60, 1),
        "summary": [line for line in lines if "selected" in line or "kept" in line or "pass@1" in line][-4:],
    }
    if rc != 0:
        result["log_tail"] = lines[-LOG_TAIL_LINES:]
    shutil.rmtree(work, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="results wanted for the current commit")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file the results go to")
    parser.add_argument("--timeout-min", type=float, default=45.0, help="limit of one run")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.timeout_min <= 0:
        parser.error("--runs must be >= 1 and --timeout-min > 0")
    commit = commit_of(CHECKOUT)
    record: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if record.get("commit") != commit:
        record = {"commit": commit, "machine": f"{os.cpu_count()} cores", "runs": []}
    console = Console()
    while len(record["runs"]) < args.runs:
        index = len(record["runs"]) + 1
        console.print(f"run {index} of {args.runs}: clean clone of {commit[:10]}, empty HOME, make run")
        result = fresh_run(CHECKOUT, index, args.timeout_min * 60)
        record["runs"].append(result)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
        console.print(f"  rc {result['rc']} after {result['minutes']} min")
    table = Table(title=f"make run from a clean clone, empty HOME ({commit[:10]})")
    for column in ("run", "rc", "minutes", "summary"):
        table.add_column(column)
    for r in record["runs"][: args.runs]:
        table.add_row(str(r["run"]), str(r["rc"]), str(r["minutes"]), " / ".join(r["summary"])[-120:])
    console.print(table)
    ok = sum(r["ok"] for r in record["runs"][: args.runs])
    console.print(f"{ok} of {args.runs} succeeded")
    return 0 if ok == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
