"""python -m services.problemgen"""

from services.problemgen.app import ProblemGenConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("problemgen", ProblemGenConfig, build))
