"""One grpc.health.v1 Check call, shared by the local stack, the CLI and the deployment checks."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

UNREACHABLE = "UNREACHABLE"


def check(address: str, timeout_s: float) -> tuple[str, str]:
    """The whole server's status at `address` and a detail for people.

    The status is SERVING, NOT_SERVING (any other reported status) or UNREACHABLE; the detail is
    the reported status name, or UNREACHABLE with the gRPC code that stopped the call.
    """
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            return UNREACHABLE, f"{UNREACHABLE} ({code.name if code else 'error'})"
    name = str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return ("SERVING" if name == "SERVING" else "NOT_SERVING"), name
