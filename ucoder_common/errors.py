"""Errors a service raises on purpose, and how they map to gRPC status codes."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An expected failure with a message safe to show the caller."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError):
    """A request field is malformed or out of range; the message starts with the field name."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    """A job ran past its service's own deadline. It would take as long again, so on the bus it
    is a dead letter at once, not retried."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Retry(Unavailable):
    """A transient failure (a dependency is down, a timeout).

    In a JetStream worker the job is redelivered later; over gRPC it is UNAVAILABLE.
    """


F = TypeVar("F", bound=Callable[..., Any])


def rpc(method: F) -> F:
    """Map ServiceError to its status code; any other exception becomes INTERNAL without a traceback.

    Works for unary methods (coroutines) and server-streaming ones (async generators).
    """
    name = method.__qualname__

    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(
            self: Any, request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except ServiceError as exc:
                await context.abort(exc.code, str(exc))
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("rpc failed", extra={"rpc": name})
                await context.abort(grpc.StatusCode.INTERNAL, f"{name} failed; see the service log")

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except ServiceError as exc:
            await context.abort(exc.code, str(exc))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("rpc failed", extra={"rpc": name})
            await context.abort(grpc.StatusCode.INTERNAL, f"{name} failed; see the service log")

    return unary_wrapper  # type: ignore[return-value]
