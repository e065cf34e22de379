"""Typed service configuration from environment variables and command-line flags.

Every service has one dataclass of settings: `ServiceConfig` (what all services share)
plus the service's own fields. Each field documents itself through `metadata["help"]`.
Values come from, in increasing priority: the field default, the environment
(`UCODER_<FIELD>` for shared fields, `UCODER_<SERVICE>_<FIELD>` for the service's own),
then flags (`--field-name VALUE`). Unknown flags and unknown `UCODER_<SERVICE>_*`
variables are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar


class ConfigError(ValueError):
    """A setting is unknown, malformed or out of range; the message names it."""


def setting(default: Any, help: str) -> Any:
    """A config field with its help text (shown by --help and in the docs)."""
    return field(default=default, metadata={"help": help})


@dataclass
class ServiceConfig:
    """Settings every service shares."""

    nats_url: str = setting("nats://127.0.0.1:4222", "NATS server URL (JetStream enabled).")
    nats_token: str = setting(
        "",
        "Token the NATS server requires (empty = none). The local stack generates one and passes it "
        "in the environment (UCODER_NATS_TOKEN), never on a command line.",
    )
    nats_user: str = setting("", "User name the NATS server requires (with nats_password; empty = none).")
    nats_password: str = setting(
        "", "Password of nats_user; give it in the environment (UCODER_NATS_PASSWORD), not as a flag."
    )
    nats_tls_ca: str = setting(
        "", "CA bundle (PEM) that signs the NATS server's certificate; empty = the system's (tls:// URLs)."
    )
    nats_tls_cert: str = setting("", "Client certificate (PEM) for a NATS server that requires one.")
    nats_tls_key: str = setting("", "Private key (PEM) of nats_tls_cert.")
    grpc_host: str = setting("127.0.0.1", "Address the gRPC server binds to.")
    grpc_port: int = setting(0, "gRPC port; 0 picks a free one (see --ready-file).")
    grpc_token: str = setting(
        "",
        "Token every gRPC call must carry as metadata `authorization: Bearer TOKEN` (grpc.health.v1 "
        "stays open); empty = none. The local stack generates one (UCODER_GRPC_TOKEN).",
    )
    grpc_tls_cert: str = setting(
        "", "Server certificate chain (PEM): with grpc_tls_key, gRPC is served over TLS."
    )
    grpc_tls_key: str = setting("", "Private key (PEM) of grpc_tls_cert.")
    grpc_tls_client_ca: str = setting(
        "", "CA bundle (PEM): when set, clients must present a certificate it signed (mutual TLS)."
    )
    grpc_health_port: int = setting(
        -1,
        "A second, plaintext port serving grpc.health.v1 only (Kubernetes gRPC probes cannot speak TLS); "
        "-1 = none, 0 = a free one.",
    )
    metrics_port: int = setting(0, "Prometheus /metrics port; 0 picks a free one, -1 disables it.")
    log_level: str = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")
    log_format: str = setting("json", "Log format: json (one object per line) or text.")
    ready_file: str = setting("", "When set, a JSON file with the bound ports written once serving.")
    shutdown_grace_s: float = setting(10.0, "Seconds in-flight RPCs and jobs get to finish on SIGTERM.")

    def validate(self) -> None:
        """Checks across fields; subclasses extend it and call super().validate()."""
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"log_level: must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"log_format: must be json or text, got {self.log_format!r}")
        if not 0 <= self.grpc_port <= 65535:
            raise ConfigError(f"grpc_port: must be 0..65535, got {self.grpc_port}")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port: must be -1..65535, got {self.metrics_port}")
        if not self.nats_url.startswith(("nats://", "tls://")):
            raise ConfigError(f"nats_url: must start with nats:// or tls://, got {self.nats_url!r}")
        if self.shutdown_grace_s < 0:
            raise ConfigError(f"shutdown_grace_s: must be >= 0, got {self.shutdown_grace_s}")
        if not -1 <= self.grpc_health_port <= 65535:
            raise ConfigError(f"grpc_health_port: must be -1..65535, got {self.grpc_health_port}")
        self._validate_credentials()

    def _validate_credentials(self) -> None:
        if self.nats_token and self.nats_user:
            raise ConfigError("nats_user: set one NATS credential at most, nats_token is set too")
        if self.nats_password and not self.nats_user:
            raise ConfigError("nats_password: needs nats_user")
        _pair("nats_tls_cert", self.nats_tls_cert, "nats_tls_key", self.nats_tls_key)
        _pair("grpc_tls_cert", self.grpc_tls_cert, "grpc_tls_key", self.grpc_tls_key)
        if self.grpc_tls_client_ca and not self.grpc_tls_cert:
            raise ConfigError("grpc_tls_client_ca: needs grpc_tls_cert and grpc_tls_key (mutual TLS is TLS)")
        if self.grpc_token and not TOKEN_CHARS.fullmatch(self.grpc_token):
            # gRPC metadata values are printable ASCII; a space would split "Bearer TOKEN".
            raise ConfigError("grpc_token: must be printable ASCII without spaces")


# What a bearer token may hold (RFC 6750's b64token is narrower; any visible ASCII is accepted).
TOKEN_CHARS = re.compile(r"[!-~]+")


def _pair(first: str, first_value: str, second: str, second_value: str) -> None:
    if bool(first_value) != bool(second_value):
        given, missing = (first, second) if first_value else (second, first)
        raise ConfigError(f"{given}: needs {missing} too")


ConfigT = TypeVar("ConfigT", bound=ServiceConfig)

_SHARED_FIELDS = frozenset(f.name for f in dataclasses.fields(ServiceConfig))


def _field_type(cls: type, f: dataclasses.Field[Any]) -> type:
    hints = typing.get_type_hints(cls)
    hint = hints[f.name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    if not isinstance(hint, type):
        raise TypeError(f"config field {f.name} has an unsupported type {hint!r}")
    return hint


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if issubclass(kind, enum.Enum):
            return kind(raw)
        if kind in (int, float, str):
            return kind(raw)
    except ValueError:
        expected = kind.__name__ if not issubclass(kind, enum.Enum) else "|".join(str(m.value) for m in kind)
        raise ConfigError(f"{name}: expected {expected}, got {raw!r}") from None
    raise TypeError(f"config field {name} has an unsupported type {kind!r}")


def env_name(service: str, field_name: str) -> str:
    """The environment variable that sets a field."""
    if field_name in _SHARED_FIELDS:
        return f"UCODER_{field_name.upper()}"
    return f"UCODER_{service.upper()}_{field_name.upper()}"


def build_parser(cls: type[ConfigT], service: str) -> argparse.ArgumentParser:
    """An argparse parser whose options are the fields of `cls` (help from the field docs)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{service}",
        description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None,
        argument_default=argparse.SUPPRESS,
    )
    for f in dataclasses.fields(cls):
        kind = _field_type(cls, f)
        help_text = f"{f.metadata.get('help', '')} [env {env_name(service, f.name)}; default {f.default!r}]"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %; a "20%" would break --help
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, metavar=kind.__name__.upper(), help=help_text
        )
    return parser


def load_config(
    cls: type[ConfigT],
    service: str,
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigT:
    """Build and validate `cls` from defaults, the environment and flags.

    Raises ConfigError (one readable line) for unknown or malformed settings.
    """
    environ = os.environ if environ is None else environ
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}

    own_prefix = f"UCODER_{service.upper()}_"
    known_env = {env_name(service, name): name for name in fields}
    for key, raw in environ.items():
        if key in known_env:
            name = known_env[key]
            values[name] = _convert(key, raw, _field_type(cls, fields[name]))
        elif key.startswith(own_prefix):
            raise ConfigError(f"{key}: unknown setting for the {service} service")

    parser = build_parser(cls, service)
    try:
        namespace, unknown = parser.parse_known_args(list(argv or []))
    except SystemExit as exc:  # argparse exits on --help and on malformed flags
        if exc.code == 0:
            raise
        raise ConfigError("invalid command-line flags") from None
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown flag for the {service} service")
    for name, raw in vars(namespace).items():
        values[name] = _convert(f"--{name.replace('_', '-')}", raw, _field_type(cls, fields[name]))

    cfg = cls(**values)
    cfg.validate()
    return cfg
