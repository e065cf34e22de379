"""Who may call a service's gRPC API: TLS (optionally mutual) and a bearer token.

Server side, `service.build_server` uses `server_credentials(cfg)` (None: plaintext) and, when
`grpc_token` is set, `TokenInterceptor`: a call without metadata `authorization: Bearer TOKEN`,
or with another token, ends UNAUTHENTICATED before its handler runs. grpc.health.v1 stays open,
so probes and `ucoder status` need no credential. Client side, `channel` / `aio_channel` open a
channel to one address with a `ClientAuth` (the token rides on every call; TLS when a CA, a
client certificate or `tls` is given).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import Counter

from ucoder_common.config import ServiceConfig

AUTHORIZATION = "authorization"
SCHEME = "bearer"
# Answered without a token: health checks (Kubernetes probes, `ucoder status`, the helm test).
OPEN_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

REFUSED = Counter(
    "ucoder_grpc_unauthenticated",
    "gRPC calls refused with UNAUTHENTICATED, by reason (missing: no bearer token; wrong: another token).",
    ["reason"],
)

Metadata = Sequence[tuple[str, str | bytes]]


def token_check(metadata: Metadata | None, token: str) -> str:
    """ "" when `metadata` carries `authorization: Bearer <token>`, else why not: missing or wrong.

    The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
    """
    for key, value in metadata or ():
        if key != AUTHORIZATION:
            continue
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        scheme, _, credential = text.strip().partition(" ")
        if scheme.lower() != SCHEME or not credential:
            return "missing"
        return "" if hmac.compare_digest(credential.strip().encode(), token.encode()) else "wrong"
    return "missing"


_DETAILS = {
    "missing": "this server requires a token: send metadata `authorization: Bearer TOKEN`",
    "wrong": "wrong token",
}


def _refusal(handler: grpc.RpcMethodHandler, reason: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that ends the call UNAUTHENTICATED (request unread)."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, _DETAILS[reason])

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses every call but `OPEN_METHODS` that does not carry the bearer token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an empty token would let everyone in")
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in OPEN_METHODS:
            return handler  # an unknown method stays UNIMPLEMENTED
        reason = token_check(handler_call_details.invocation_metadata, self._token)
        if not reason:
            return handler
        REFUSED.labels(reason).inc()
        return _refusal(handler, reason)


def _read(path: str, setting_name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise OSError(f"{setting_name}: cannot read {path} ({exc.strerror or exc})") from None


def server_credentials(cfg: ServiceConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from cfg's grpc_tls_* files (mutual TLS with grpc_tls_client_ca); None: plaintext."""
    if not cfg.grpc_tls_cert:
        return None
    pair = (_read(cfg.grpc_tls_key, "grpc_tls_key"), _read(cfg.grpc_tls_cert, "grpc_tls_cert"))
    client_ca = _read(cfg.grpc_tls_client_ca, "grpc_tls_client_ca") if cfg.grpc_tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=bool(client_ca)
    )


def server_interceptors(cfg: ServiceConfig) -> list[grpc.aio.ServerInterceptor]:
    return [TokenInterceptor(cfg.grpc_token)] if cfg.grpc_token else []


# ---------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class ClientAuth:
    """What a client presents: a bearer token, and TLS (server CA, client certificate for mTLS)."""

    token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # The name the server's certificate must carry, when it differs from the address's host
    # (e.g. through `kubectl port-forward` to 127.0.0.1).
    server_name: str = ""
    # TLS with the system's roots when no ca_file is given.
    tls: bool = False

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.ca_file or self.cert_file)

    def metadata(self) -> list[tuple[str, str]]:
        return [(AUTHORIZATION, f"Bearer {self.token}")] if self.token else []

    def credentials(self) -> grpc.ChannelCredentials:
        if self.cert_file and not self.key_file:
            raise OSError("a client certificate needs its key too")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file, "CA file") if self.ca_file else None,
            private_key=_read(self.key_file, "client key") if self.key_file else None,
            certificate_chain=_read(self.cert_file, "client certificate") if self.cert_file else None,
        )

    def options(self) -> list[tuple[str, str]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


class _SyncToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds the bearer token to every call of a blocking channel."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), *self._metadata],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return continuation(self._details(details), request_iterator)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _AioToken:
    """Adds the bearer token to the calls of an asyncio channel (one subclass per kind of call:
    grpc.aio files an interceptor under the first kind it is an instance of only)."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self._metadata = metadata

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _AioUnaryUnary(_AioToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioUnaryStream(_AioToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _AioStreamUnary(_AioToken, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


class _AioStreamStream(_AioToken, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def channel(address: str, auth: ClientAuth | None = None) -> grpc.Channel:
    """A blocking channel to `address` that presents `auth` (None or empty: plaintext, no token)."""
    auth = auth or ClientAuth()
    if auth.uses_tls:
        raw = grpc.secure_channel(address, auth.credentials(), options=auth.options())
    else:
        raw = grpc.insecure_channel(address)
    metadata = auth.metadata()
    return grpc.intercept_channel(raw, _SyncToken(metadata)) if metadata else raw


def aio_channel(address: str, auth: ClientAuth | None = None) -> grpc.aio.Channel:
    """The asyncio twin of `channel`."""
    auth = auth or ClientAuth()
    metadata = auth.metadata()
    kinds = (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    interceptors = [kind(metadata) for kind in kinds] if metadata else None
    if auth.uses_tls:
        return grpc.aio.secure_channel(
            address, auth.credentials(), options=auth.options(), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, interceptors=interceptors)
