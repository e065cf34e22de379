"""python -m services.clusterer"""

from services.clusterer.app import ClustererConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("clusterer", ClustererConfig, build))
