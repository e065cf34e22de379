from __future__ import annotations

from dataclasses import dataclass

import pytest

from ucoder_common.config import ConfigError, ServiceConfig, build_parser, load_config, setting


@dataclass
class ExampleConfig(ServiceConfig):
    """Example service."""

    workers: int = setting(2, "How many workers.")
    rho: float = setting(0.8, "Threshold.")
    enabled: bool = setting(False, "A switch.")

    def validate(self) -> None:
        super().validate()
        if self.workers < 1:
            raise ConfigError(f"workers: must be >= 1, got {self.workers}")


def test_defaults() -> None:
    cfg = load_config(ExampleConfig, "example", [], {})
    assert cfg.workers == 2 and cfg.rho == 0.8 and cfg.enabled is False
    assert cfg.nats_url == "nats://127.0.0.1:4222"


def test_env_then_flags_override() -> None:
    env = {
        "UCODER_EXAMPLE_WORKERS": "5",
        "UCODER_NATS_URL": "nats://10.0.0.1:4222",
        "UCODER_EXAMPLE_ENABLED": "yes",
    }
    cfg = load_config(ExampleConfig, "example", ["--workers", "7", "--rho", "0.5"], env)
    assert cfg.workers == 7
    assert cfg.rho == 0.5
    assert cfg.enabled is True
    assert cfg.nats_url == "nats://10.0.0.1:4222"


def test_unknown_env_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="UCODER_EXAMPLE_WORKRES"):
        load_config(ExampleConfig, "example", [], {"UCODER_EXAMPLE_WORKRES": "3"})


def test_other_services_env_is_ignored() -> None:
    cfg = load_config(ExampleConfig, "example", [], {"UCODER_SAMPLER_MODEL": "/x", "HOME": "/root"})
    assert cfg.workers == 2


def test_unknown_flag_is_rejected() -> None:
    with pytest.raises(ConfigError, match="--wrokers"):
        load_config(ExampleConfig, "example", ["--wrokers", "3"], {})


def test_malformed_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="UCODER_EXAMPLE_WORKERS: expected int"):
        load_config(ExampleConfig, "example", [], {"UCODER_EXAMPLE_WORKERS": "many"})
    with pytest.raises(ConfigError, match="--enabled"):
        load_config(ExampleConfig, "example", ["--enabled", "perhaps"], {})


def test_validation_runs() -> None:
    with pytest.raises(ConfigError, match="workers: must be >= 1"):
        load_config(ExampleConfig, "example", ["--workers", "0"], {})
    with pytest.raises(ConfigError, match="grpc_port"):
        load_config(ExampleConfig, "example", ["--grpc-port", "70000"], {})
    with pytest.raises(ConfigError, match="nats_url"):
        load_config(ExampleConfig, "example", ["--nats-url", "http://x"], {})


@dataclass
class PercentConfig(ServiceConfig):
    share: float = setting(0.2, "Steer above this share (the paper: 20%).")


def test_help_with_a_percent_sign_renders() -> None:
    # argparse %-formats help strings: an unescaped "20%" made `--help` crash.
    text = build_parser(PercentConfig, "demo").format_help()
    assert "(the paper: 20%)" in text
    assert "UCODER_DEMO_SHARE" in text
