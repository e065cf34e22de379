"""The bearer-token check and the settings it reads (no server; tests/integration has the real ones)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from ucoder_common import grpc_auth
from ucoder_common.bus import NatsAuth
from ucoder_common.config import ConfigError, ServiceConfig, load_config

TOKEN = "s3cret-Token_1"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([("authorization", f"Bearer {TOKEN}")], ""),
        ([("authorization", f"bearer {TOKEN}")], ""),  # the scheme is case-insensitive
        ([("x-other", "1"), ("authorization", f"Bearer {TOKEN}".encode())], ""),
        (None, "missing"),
        ([], "missing"),
        ([("authorization", TOKEN)], "missing"),  # no scheme
        ([("authorization", f"Basic {TOKEN}")], "missing"),
        ([("authorization", "Bearer ")], "missing"),
        ([("authorization", "Bearer guessed")], "wrong"),
        ([("authorization", f"Bearer {TOKEN}x")], "wrong"),
        ([("authorization", f"Bearer {TOKEN[:-1]}")], "wrong"),
        ([("Authorization", f"Bearer {TOKEN}")], "missing"),  # gRPC metadata keys are lower case
    ],
)
def test_token_check(metadata: Any, reason: str) -> None:
    assert grpc_auth.token_check(metadata, TOKEN) == reason


class _Details:
    def __init__(self, method: str, metadata: Any) -> None:
        self.method = method
        self.invocation_metadata = metadata


async def _passed(method: str, metadata: Any, handler: grpc.RpcMethodHandler | None) -> Any:
    async def continuation(_details: Any) -> grpc.RpcMethodHandler | None:
        return handler

    return await grpc_auth.TokenInterceptor(TOKEN).intercept_service(continuation, _Details(method, metadata))


def test_the_interceptor_passes_health_and_the_right_token_and_refuses_the_rest() -> None:
    async def handle(request: Any, context: Any) -> Any:
        return request

    stream = grpc.unary_stream_rpc_method_handler(handle)
    good = [("authorization", f"Bearer {TOKEN}")]
    assert asyncio.run(_passed("/ucoder.v1.OrchestratorService/WatchIteration", good, stream)) is stream
    for open_method in grpc_auth.OPEN_METHODS:
        assert asyncio.run(_passed(open_method, None, stream)) is stream
    assert asyncio.run(_passed("/no.such/Method", None, None)) is None  # stays UNIMPLEMENTED
    refused = asyncio.run(_passed("/ucoder.v1.OrchestratorService/WatchIteration", None, stream))
    assert refused is not stream
    # Same kind of handler (a stream stays a stream), and the request is not decoded.
    assert (refused.request_streaming, refused.response_streaming) == (False, True)
    assert refused.request_deserializer is None
    with pytest.raises(ValueError):
        grpc_auth.TokenInterceptor("")


def _config(**env: str) -> ServiceConfig:
    return load_config(ServiceConfig, "svc", [], {f"UCODER_{k.upper()}": v for k, v in env.items()})


def test_defaults_are_plaintext_without_a_token() -> None:
    cfg = _config()
    assert (cfg.grpc_token, cfg.grpc_tls_cert, cfg.grpc_tls_key, cfg.grpc_tls_client_ca) == ("", "", "", "")
    assert cfg.grpc_health_port == -1
    assert grpc_auth.server_credentials(cfg) is None and grpc_auth.server_interceptors(cfg) == []
    assert NatsAuth.from_config(cfg).connect_options() == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"grpc_tls_cert": "/c.pem"}, "grpc_tls_cert: needs grpc_tls_key"),
        ({"grpc_tls_key": "/k.pem"}, "grpc_tls_key: needs grpc_tls_cert"),
        ({"grpc_tls_client_ca": "/ca.pem"}, "grpc_tls_client_ca: needs grpc_tls_cert"),
        ({"grpc_token": "two words"}, "grpc_token: must be printable ASCII"),
        ({"grpc_token": "é"}, "grpc_token: must be printable ASCII"),
        ({"grpc_health_port": "-2"}, "grpc_health_port: must be -1..65535"),
        ({"nats_token": "t", "nats_user": "u"}, "nats_user: set one NATS credential at most"),
        ({"nats_password": "p"}, "nats_password: needs nats_user"),
        ({"nats_tls_key": "/k.pem"}, "nats_tls_key: needs nats_tls_cert"),
    ],
)
def test_inconsistent_credentials_are_refused_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(**env)


def test_unreadable_tls_files_stop_start_up_naming_the_setting(tmp_path: Any) -> None:
    cfg = _config(grpc_tls_cert=str(tmp_path / "none.pem"), grpc_tls_key=str(tmp_path / "none.key"))
    with pytest.raises(OSError, match="grpc_tls_key: cannot read"):
        grpc_auth.server_credentials(cfg)
    nats = NatsAuth(tls_ca=str(tmp_path / "no-ca.pem"))
    with pytest.raises(OSError, match="nats_tls_ca"):
        nats.connect_options()


def test_nats_credentials_become_connect_options() -> None:
    assert NatsAuth.from_config(_config(nats_user="u", nats_password="p")).connect_options() == {
        "user": "u",
        "password": "p",
    }
    assert NatsAuth(token="t").connect_options() == {"token": "t"}


def test_client_auth_sends_the_token_and_picks_tls() -> None:
    assert grpc_auth.ClientAuth().metadata() == [] and not grpc_auth.ClientAuth(token="t").uses_tls
    assert grpc_auth.ClientAuth(token="t").metadata() == [("authorization", "Bearer t")]
    assert grpc_auth.ClientAuth(ca_file="/ca.pem").uses_tls and grpc_auth.ClientAuth(tls=True).uses_tls
    assert grpc_auth.ClientAuth(server_name="orch.ml.svc").options() == [
        ("grpc.ssl_target_name_override", "orch.ml.svc")
    ]
