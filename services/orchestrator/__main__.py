"""python -m services.orchestrator"""

from services.orchestrator.app import OrchestratorConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("orchestrator", OrchestratorConfig, build))
