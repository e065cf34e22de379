"""python -m services.sampler"""

from services.sampler.app import SamplerConfig, build
from ucoder_common.service import run_service

if __name__ == "__main__":
    raise SystemExit(run_service("sampler", SamplerConfig, build))
