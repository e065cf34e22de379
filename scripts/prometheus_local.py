"""Point a Prometheus at the running local stack (`ucoder up`): write its prometheus.yml, or run it.

The stack picks free ports at every start, so this reads them from the stack's stack.json and
writes one scrape job per service, named `ucoder-<service>` like the jobs a ServiceMonitor gives
the Services of a Helm release named "ucoder". Run it again after each `ucoder up`.

Usage:
  python scripts/prometheus_local.py [--home DIR] [--out FILE] [--interval 5s]
  python scripts/prometheus_local.py --run [--port 9090]   # write, then exec /usr/bin/prometheus
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: make the repository's packages importable
    sys.path.insert(0, str(ROOT))

from ucoder_common.localstack import StackInfo, StackPaths, read_stack  # noqa: E402


def job_name(service: str) -> str:
    return f"ucoder-{service}"


def prometheus_config(info: StackInfo, interval: str = "5s") -> str:
    """prometheus.yml scraping every service of `info` on loopback every `interval`."""
    lines = [
        f"# Prometheus for the UCoder local stack in {info.home} (scripts/prometheus_local.py).",
        "global:",
        f"  scrape_interval: {interval}",
        f"  scrape_timeout: {interval}",
        f"  evaluation_interval: {interval}",
        "scrape_configs:",
    ]
    for name, proc in info.services.items():
        lines += [
            f"  - job_name: {job_name(name)}",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{proc.metrics_port}']",
        ]
    return "\n".join(lines) + "\n"


def prometheus_command(config: Path, storage: Path, port: int, binary: str = "prometheus") -> list[str]:
    """The command line that runs Prometheus on 127.0.0.1:`port` with `config`, keeping data in `storage`."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", help="the stack's home (default: $UCODER_HOME or ~/.ucoder)")
    parser.add_argument("--out", help="where to write prometheus.yml (default: HOME/prometheus.yml)")
    parser.add_argument("--interval", default="5s", help="scrape interval (default 5s)")
    parser.add_argument("--run", action="store_true", help="then run Prometheus in the foreground")
    parser.add_argument("--port", type=int, default=9090, help="Prometheus's port with --run (default 9090)")
    args = parser.parse_args(argv)
    paths = StackPaths(Path(args.home).expanduser()) if args.home else StackPaths.default()
    info = read_stack(paths)
    if info is None or not info.services:
        print(f"no local stack recorded in {paths.home}: start one with `ucoder up`", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else paths.home / "prometheus.yml"
    out.write_text(prometheus_config(info, args.interval))
    command = prometheus_command(out, paths.home / "prometheus", args.port)
    print(f"wrote {out}; run Prometheus with:\n  {' '.join(command)}")
    if args.run:
        binary = shutil.which("prometheus")
        if binary is None:
            print("prometheus not found: apt-get install prometheus (or make system-deps)", file=sys.stderr)
            return 1
        os.execv(binary, prometheus_command(out, paths.home / "prometheus", args.port, binary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
