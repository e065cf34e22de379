"""python -m services.testsynth"""

from services.testsynth.app import TestSynthConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("testsynth", TestSynthConfig, build))
