"""python -m services.executor"""

from services.executor.app import ExecutorConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("executor", ExecutorConfig, build))
