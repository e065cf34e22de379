"""python -m services.trainer"""

from services.trainer.app import TrainerConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("trainer", TrainerConfig, build))
