"""Undecodable request frames are INVALID_ARGUMENT, not UNKNOWN.

grpcio decodes a request before any handler runs; when the bytes are no protobuf of the method's
request type, the decoder's exception becomes UNKNOWN (a crash, to the caller). `DecodeGuard`
wraps every method's decoder: bytes it cannot decode become an `Undecodable` marker, and the
wrapped handler answers it INVALID_ARGUMENT naming the field `request` before the service's
own handler sees anything.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

OWN_METHODS = "/ucoder."
"""Method paths of UCoder's services (package ucoder.v1)."""


@dataclass(frozen=True)
class Undecodable:
    """What a guarded decoder returns for bytes it could not decode."""

    method: str
    error: str


def _details(bad: Undecodable) -> str:
    return f"request: not a valid protobuf request of {bad.method} ({bad.error[:80]})"


def guard(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with a decoder that never raises. Unary requests of UCoder's own services only
    (their streaming answers are async generators); others, such as grpc.health.v1's Watch,
    which writes to its context, are left as they are."""
    decode = handler.request_deserializer
    if decode is None or handler.request_streaming or not method.startswith(OWN_METHODS):
        return handler
    if handler.response_streaming and not inspect.isasyncgenfunction(handler.unary_stream):
        return handler

    def safe_decode(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # DecodeError, or whatever a decoder raises on garbage
            return Undecodable(method, f"{type(exc).__name__}: {exc}")

    if handler.response_streaming:
        stream = handler.unary_stream

        async def unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _details(request))
            async for item in stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=safe_decode, response_serializer=handler.response_serializer
        )

    unary = handler.unary_unary

    async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _details(request))
        return await unary(request, context)

    return grpc.unary_unary_rpc_method_handler(
        unary_unary, request_deserializer=safe_decode, response_serializer=handler.response_serializer
    )


class DecodeGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Applies `guard` to every method of the server."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return guard(handler, handler_call_details.method)
