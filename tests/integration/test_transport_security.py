"""TLS and credentials on the real wires: nats-server with TLS and a user, the real orchestrator
serving gRPC over TLS (and mutual TLS) with a bearer token, and the real CLI against it.

The certificates are made here (a throwaway CA, a server certificate for 127.0.0.1, client
certificates), with the `cryptography` package.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import free_port, wait_port
from ucoder_common import grpc_health, localstack
from ucoder_common.bus import Bus, NatsAuth
from ucoder_common.grpc_auth import ClientAuth, channel
from ucoder_common.pb import orchestrator_pb2, orchestrator_pb2_grpc

START_TIMEOUT_S = 60.0
TOKEN = "transport-test-token"
NATS_USER, NATS_PASSWORD = "ucoder", "nats-test-password"
LIST = orchestrator_pb2.ListIterationsRequest()


# ------------------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    out: Path,
    stem: str,
    common_name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(signer_cert.subject if signer_cert else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    pem = Pem(out / f"{stem}.crt", out / f"{stem}.key")
    pem.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem.key.chmod(0o600)
    return pem, cert, key


@dataclass(frozen=True)
class Certs:
    ca: Path
    server: Pem
    client: Pem
    stranger: Pem  # a client certificate from a CA nobody trusts


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    out = tmp_path_factory.mktemp("certs")
    ca_pem, ca_cert, ca_key = _issue(out, "ca", "ucoder test CA", None, None)
    server, _, _ = _issue(out, "server", "localhost", (ca_cert, ca_key), ExtendedKeyUsageOID.SERVER_AUTH)
    client, _, _ = _issue(out, "client", "ucoder-cli", (ca_cert, ca_key), ExtendedKeyUsageOID.CLIENT_AUTH)
    _, other_cert, other_key = _issue(out, "other-ca", "someone else's CA", None, None)
    stranger, _, _ = _issue(
        out, "stranger", "ucoder-cli", (other_cert, other_key), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return Certs(ca_pem.cert, server, client, stranger)


# ------------------------------------------------------------------------------ processes


@pytest.fixture(scope="module")
def tls_nats(certs: Certs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nats-server that requires TLS and a user; yields its tls:// URL (no credential in it)."""
    home = tmp_path_factory.mktemp("tls-nats")
    port = free_port()
    config = home / "nats.conf"
    config.write_text(
        f"tls {{\n  cert_file: {json.dumps(str(certs.server.cert))}\n"
        f"  key_file: {json.dumps(str(certs.server.key))}\n}}\n"
        f"authorization {{\n  user: {NATS_USER}\n  password: {json.dumps(NATS_PASSWORD)}\n}}\n"
    )
    cmd = [localstack.nats_server_binary(), "-c", str(config), "-a", "127.0.0.1", "-p", str(port)]
    cmd += ["-js", "-sd", str(home / "store")]
    with open(home / "nats.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        yield f"tls://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Orchestrator:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    health_port: int
    log: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _start_orchestrator(home: Path, nats_url: str, certs: Certs, settings: dict[str, str]) -> Orchestrator:
    """The real orchestrator over the TLS NATS with `settings` (UCODER_* names) in its environment."""
    ready = home / "ready.json"
    cmd = localstack.service_command("orchestrator", nats_url, free_port(), -1, ready)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCODER_")}
    env.update(
        UCODER_NATS_USER=NATS_USER,
        UCODER_NATS_PASSWORD=NATS_PASSWORD,
        UCODER_NATS_TLS_CA=str(certs.ca),
        UCODER_GRPC_TLS_CERT=str(certs.server.cert),
        UCODER_GRPC_TLS_KEY=str(certs.server.key),
        UCODER_GRPC_HEALTH_PORT="0",
        **settings,
    )
    log = home / "orchestrator.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=localstack.REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the orchestrator did not become SERVING:\n{localstack.log_tail(log, 40)}")
        time.sleep(0.1)
    ports = json.loads(ready.read_text())
    return Orchestrator(proc, ports["grpc_port"], ports["grpc_health_port"], log)


def _stop(orchestrator: Orchestrator) -> None:
    orchestrator.proc.terminate()
    try:
        orchestrator.proc.wait(20)
    except subprocess.TimeoutExpired:
        orchestrator.proc.kill()
        orchestrator.proc.wait()


@pytest.fixture(scope="module")
def tls_orchestrator(
    tls_nats: str, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orchestrator]:
    """TLS and a bearer token (the chart's production example)."""
    started = _start_orchestrator(
        tmp_path_factory.mktemp("tls-orch"), tls_nats, certs, {"UCODER_GRPC_TOKEN": TOKEN}
    )
    yield started
    _stop(started)


@pytest.fixture(scope="module")
def mtls_orchestrator(
    tls_nats: str, certs: Certs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orchestrator]:
    """Mutual TLS: clients must present a certificate the CA signed (no token)."""
    home = tmp_path_factory.mktemp("mtls-orch")
    started = _start_orchestrator(home, tls_nats, certs, {"UCODER_GRPC_TLS_CLIENT_CA": str(certs.ca)})
    yield started
    _stop(started)


def _list(address: str, auth: ClientAuth) -> grpc.StatusCode:
    """ListIterations over a channel presenting `auth`: OK or the code that stopped it."""
    with channel(address, auth) as chan:
        try:
            orchestrator_pb2_grpc.OrchestratorServiceStub(chan).ListIterations(LIST, timeout=10)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


# ------------------------------------------------------------------------------ NATS


async def test_nats_takes_a_tls_client_with_the_ca_and_the_user(tls_nats: str, certs: Certs) -> None:
    bus = await Bus.connect(
        tls_nats,
        name="ucoder-test-tls",
        auth=NatsAuth(user=NATS_USER, password=NATS_PASSWORD, tls_ca=str(certs.ca)),
    )
    await bus.close()


@pytest.mark.parametrize(
    ("what", "user", "password", "trust_ca"),
    [
        ("no CA (the system's roots)", NATS_USER, NATS_PASSWORD, False),
        ("no credential", "", "", True),
        ("a wrong password", NATS_USER, "guessed", True),
    ],
)
async def test_nats_refuses_a_client_without_the_ca_or_the_user(
    tls_nats: str, certs: Certs, what: str, user: str, password: str, trust_ca: bool
) -> None:
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        errors.append(exc)

    auth = NatsAuth(user=user, password=password, tls_ca=str(certs.ca) if trust_ca else "")
    with pytest.raises(Exception) as caught:  # nats-py raises several types for one refusal
        nc = await nats.connect(
            tls_nats, allow_reconnect=False, connect_timeout=3, error_cb=record, **auth.connect_options()
        )
        await nc.close()
    text = f"{caught.value} {errors}".lower()
    assert ("certificate" in text) if not trust_ca else ("authorization" in text), (what, text)


# ------------------------------------------------------------------------------ gRPC over TLS


def test_a_tls_client_with_the_ca_and_the_token_is_served(
    tls_orchestrator: Orchestrator, certs: Certs
) -> None:
    # The orchestrator got here through the TLS NATS with its user: its NATS settings work too.
    assert (
        _list(tls_orchestrator.address, ClientAuth(token=TOKEN, ca_file=str(certs.ca))) == grpc.StatusCode.OK
    )


@pytest.mark.parametrize(
    ("what", "auth", "code"),
    [
        ("plaintext", ClientAuth(token=TOKEN), grpc.StatusCode.UNAVAILABLE),
        ("TLS without the CA", ClientAuth(token=TOKEN, tls=True), grpc.StatusCode.UNAVAILABLE),
        ("TLS without the token", ClientAuth(ca_file="CA"), grpc.StatusCode.UNAUTHENTICATED),
        (
            "TLS with a wrong token",
            ClientAuth(token="guessed", ca_file="CA"),
            grpc.StatusCode.UNAUTHENTICATED,
        ),
    ],
)
def test_a_client_without_tls_the_ca_or_the_token_is_refused(
    tls_orchestrator: Orchestrator, certs: Certs, what: str, auth: ClientAuth, code: grpc.StatusCode
) -> None:
    if auth.ca_file == "CA":
        auth = ClientAuth(token=auth.token, ca_file=str(certs.ca))
    assert _list(tls_orchestrator.address, auth) == code, what


def test_health_is_open_on_the_tls_port_and_plaintext_on_the_health_port(
    tls_orchestrator: Orchestrator, certs: Certs
) -> None:
    # Kubernetes gRPC probes cannot speak TLS: they use the plaintext health-only port.
    assert tls_orchestrator.health_port > 0
    assert grpc_health.check(f"127.0.0.1:{tls_orchestrator.health_port}", 5.0) == ("SERVING", "SERVING")
    with channel(tls_orchestrator.address, ClientAuth(ca_file=str(certs.ca))) as chan:
        reply = health_pb2_grpc.HealthStub(chan).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # The health port serves health only: the API is not reachable around TLS and the token.
    code = _list(f"127.0.0.1:{tls_orchestrator.health_port}", ClientAuth(token=TOKEN))
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_mutual_tls_takes_only_a_certificate_the_ca_signed(
    mtls_orchestrator: Orchestrator, certs: Certs
) -> None:
    ca = str(certs.ca)
    address = mtls_orchestrator.address
    signed = ClientAuth(ca_file=ca, cert_file=str(certs.client.cert), key_file=str(certs.client.key))
    assert _list(address, signed) == grpc.StatusCode.OK
    assert _list(address, ClientAuth(ca_file=ca)) == grpc.StatusCode.UNAVAILABLE  # no client certificate
    stranger = ClientAuth(ca_file=ca, cert_file=str(certs.stranger.cert), key_file=str(certs.stranger.key))
    assert _list(address, stranger) == grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------------------------------------ the CLI


def _ucoder(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UCODER_")}
    environ.update(UCODER_HOME=str(home), COLUMNS="160", **env)
    return subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", *args],
        cwd=localstack.REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_talks_tls_with_the_token_and_refuses_in_one_line(
    tls_orchestrator: Orchestrator, certs: Certs, tmp_path: Path
) -> None:
    target = ("--orchestrator", tls_orchestrator.address)
    ok = _ucoder(tmp_path, "list", *target, "--grpc-ca", str(certs.ca), UCODER_GRPC_TOKEN=TOKEN)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "no iterations yet" in ok.stdout

    wrong = tmp_path / "token"
    wrong.write_text("guessed\n")
    refused = _ucoder(
        tmp_path, "list", *target, "--grpc-token-file", str(wrong), UCODER_GRPC_CA=str(certs.ca)
    )
    assert refused.returncode == 2 and refused.stdout == ""
    (line,) = refused.stderr.splitlines()
    assert line.startswith(
        f"ucoder: orchestrator at {tls_orchestrator.address} refused the call (UNAUTHENTICATED"
    )

    plaintext = _ucoder(tmp_path, "list", *target, UCODER_GRPC_TOKEN=TOKEN)
    assert plaintext.returncode == 2
    assert len(plaintext.stderr.splitlines()) == 1 and "unavailable" in plaintext.stderr, plaintext.stderr
