"""`ucoder`: start a local stack, then trigger and watch self-training iterations.

    ucoder up [--model DIR]          start nats-server and the seven services on loopback
    ucoder status | down             inspect / stop that stack
    ucoder iterate [spec flags]      start an iteration and watch it to the end
    ucoder get ID | list | watch ID | cancel ID
    ucoder report ID [--json] [--html PATH] [--markdown PATH]   the iteration report of ID's run
    ucoder exec FILE --inputs FILE   run a candidate on test inputs through the executor
    ucoder scale SERVICE N [--min M] set a Helm release's replicas (or autoscaler bounds)
    ucoder status --kubernetes       a Helm release's services, replicas and pods

The orchestrator is found from --orchestrator, else $UCODER_ORCHESTRATOR, else the local
stack's stack.json (under $UCODER_HOME, default ~/.ucoder); the executor likewise from
--executor, else $UCODER_EXECUTOR, else the local stack. The bearer token sent to a service is
--grpc-token-file's, else the local stack's (for an address of the stack), else
$UCODER_GRPC_TOKEN; TLS is used with --grpc-ca / $UCODER_GRPC_CA (or --grpc-tls for the system's
roots), a client certificate with --grpc-cert/--grpc-key. Failures print one line
`ucoder: ...` on stderr: exit 2 for usage and gRPC errors, 1 for a failed/cancelled iteration
or a stack that cannot start, 130 on Ctrl-C. Set UCODER_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ucoder_cli import kube, render
from ucoder_common import grpc_auth, localstack
from ucoder_common.localstack import NATS, SERVICES, StackError, StackPaths
from ucoder_common.pb import (
    common_pb2,
    executor_pb2,
    executor_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from ucoder_common.phases import TERMINAL_PHASES

UNARY_TIMEOUT_S = 60.0
# How long `watch` keeps trying to reach a restarting orchestrator before giving up.
RECONNECT_S = 120.0
# Without a terminal, progress is printed as lines at most this often per stage.
PLAIN_EVERY_S = 10.0
SIGNATURE_MODES = {
    "output": common_pb2.SIGNATURE_MODE_OUTPUT,
    "pass": common_pb2.SIGNATURE_MODE_PASS,
}
# The clusterer's selection rules (the server validates them too).
SELECTION_RULES = ("paper", "random", "cluster", "low_ppl", "success_rate")


class CliError(Exception):
    """A failure shown as one line `ucoder: <message>`; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- helpers


def _paths(args: argparse.Namespace) -> StackPaths:
    if args.home:
        return StackPaths(Path(args.home).expanduser())
    return StackPaths.default()


def _service_address(args: argparse.Namespace, service: str, missing: str) -> str:
    """--<service>, else $UCODER_<SERVICE>, else that service in the local stack.

    `missing` is the message when no stack runs or it has no such service.
    """
    flag = getattr(args, service, None)
    if flag:
        return str(flag)
    env = os.environ.get(f"UCODER_{service.upper()}", "")
    if env:
        return env
    info = localstack.read_stack(_paths(args))
    if info is None or service not in info.services:
        raise CliError(missing)
    if not info.alive(service):
        proc = info.services[service]
        raise CliError(
            f"the local stack's {service} (pid {proc.pid}) is not running; "
            f"see {proc.log}, then `ucoder down && ucoder up`"
        )
    return info.address(service)


def orchestrator_address(args: argparse.Namespace) -> str:
    """--orchestrator, else $UCODER_ORCHESTRATOR, else the local stack's orchestrator."""
    return _service_address(args, "orchestrator", "no stack running: start one with `ucoder up`")


def executor_address(args: argparse.Namespace) -> str:
    """--executor, else $UCODER_EXECUTOR, else the local stack's executor."""
    return _service_address(
        args, "executor", "no executor running: start the stack with `ucoder up` or pass --executor HOST:PORT"
    )


def _flag_or_env(args: argparse.Namespace, flag: str, env: str) -> str:
    return str(getattr(args, flag, None) or os.environ.get(env, ""))


def client_auth(args: argparse.Namespace, address: str) -> grpc_auth.ClientAuth:
    """What to present to the service at `address`: the token and the TLS files (see the module doc)."""
    token_file = getattr(args, "grpc_token_file", None)
    if token_file:
        token = _read_text(token_file, "--grpc-token-file").strip()
    else:
        try:
            info = localstack.read_stack(_paths(args))
        except StackError:
            info = None  # an unreadable stack.json (shown by commands that use the stack)
        ours = info is not None and address in {info.address(name) for name in info.services}
        token = info.grpc_token if info is not None and ours else os.environ.get("UCODER_GRPC_TOKEN", "")
    return grpc_auth.ClientAuth(
        token=token,
        ca_file=_flag_or_env(args, "grpc_ca", "UCODER_GRPC_CA"),
        cert_file=_flag_or_env(args, "grpc_cert", "UCODER_GRPC_CERT"),
        key_file=_flag_or_env(args, "grpc_key", "UCODER_GRPC_KEY"),
        server_name=_flag_or_env(args, "grpc_server_name", "UCODER_GRPC_SERVER_NAME"),
        tls=bool(getattr(args, "grpc_tls", False))
        or os.environ.get("UCODER_GRPC_TLS", "") not in ("", "0", "false", "no"),
    )


def _channel(args: argparse.Namespace, address: str) -> grpc.Channel:
    try:
        return grpc_auth.channel(address, client_auth(args, address))
    except OSError as exc:  # an unreadable CA, certificate or key file
        raise CliError(str(exc)) from None


def _grpc_error(exc: grpc.RpcError, address: str, service: str = "orchestrator") -> CliError:
    code = exc.code() if hasattr(exc, "code") else None
    details = (exc.details() if hasattr(exc, "details") else "") or str(code)
    details = " ".join(str(details).split())  # one line
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = "start the stack with `ucoder up`"
        if service != "orchestrator":
            hint += f" or pass --{service} HOST:PORT"
        return CliError(f"{service} at {address} is unavailable ({details}); {hint}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"{service} at {address} did not answer in time ({details})")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return CliError(
            f"{service} at {address} refused the call ({code.name}: {details}); give its token with "
            "$UCODER_GRPC_TOKEN or --grpc-token-file (a local stack's is in its stack.json)"
        )
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        return CliError(details)
    name = code.name if code is not None else "UNKNOWN"
    return CliError(f"{name.lower()}: {details}")


class Client:
    """The orchestrator's gRPC API with CLI error mapping."""

    def __init__(self, address: str, channel: grpc.Channel) -> None:
        self.address = address
        self.channel = channel
        self.stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self.channel)

    @classmethod
    def of(cls, args: argparse.Namespace) -> Client:
        """The orchestrator the command's flags, environment or local stack name."""
        address = orchestrator_address(args)
        return cls(address, _channel(args, address))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.channel.close()

    def call(self, method: str, request: object) -> object:
        try:
            return getattr(self.stub, method)(request, timeout=UNARY_TIMEOUT_S)
        except grpc.RpcError as exc:
            raise _grpc_error(exc, self.address) from None


def _iteration_exit(it: orchestrator_pb2.Iteration) -> int:
    if it.phase == orchestrator_pb2.ITERATION_PHASE_COMPLETED:
        return 0
    if it.phase in TERMINAL_PHASES:
        what = render.phase_name(it.phase)
        print(
            f"ucoder: iteration {it.iteration_id} {what}: {it.error or 'no error recorded'}", file=sys.stderr
        )
        return 1
    return 0


def watch_iteration(client: Client, iteration_id: str, console: Console) -> orchestrator_pb2.Iteration:
    """Show progress bars until the iteration ends; returns its final state (without problems).

    Reconnects when the orchestrator goes away mid-watch (it may be restarted); the stream
    replays events from the start and the bars take absolute counts, so nothing double-counts.
    """
    bars = render.StageProgress(console)
    request = orchestrator_pb2.WatchIterationRequest(iteration_id=iteration_id)
    lost_since: float | None = None
    last_key: tuple[int, int] = (-1, -1)
    last_print = 0.0
    with bars.progress if console.is_terminal else contextlib.nullcontext():
        while True:
            try:
                for event in client.stub.WatchIteration(request):
                    lost_since = None
                    bars.update(event)
                    if not console.is_terminal:
                        # Plain lines for logs: on a new stage or phase, else at most every PLAIN_EVERY_S.
                        key = (event.stage, event.phase)
                        now = time.monotonic()
                        if key != last_key or now - last_print >= PLAIN_EVERY_S:
                            console.print(_plain_progress(event), markup=False)  # `[phase]` is text
                            last_key, last_print = key, now
                    if event.phase in TERMINAL_PHASES:
                        break
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code != grpc.StatusCode.UNAVAILABLE:
                    raise _grpc_error(exc, client.address) from None
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since > RECONNECT_S:
                    raise _grpc_error(exc, client.address) from None
                time.sleep(2.0)
                continue
            it = client.call("GetIteration", orchestrator_pb2.GetIterationRequest(iteration_id=iteration_id))
            assert isinstance(it, orchestrator_pb2.Iteration)
            if it.phase in TERMINAL_PHASES:
                bars.finish()
                return it
            time.sleep(1.0)  # the stream ended early (e.g. a restart): watch again


def _plain_progress(event: orchestrator_pb2.ProgressEvent) -> str:
    total = event.total if event.total > 0 else "?"
    failed = f", {event.failed} failed" if event.failed else ""
    phase = render.phase_name(event.phase)
    return f"[{phase}] {render.stage_name(event.stage)}: {event.done}/{total}{failed}"


# ---------------------------------------------------------------------------- commands


def cmd_up(args: argparse.Namespace, console: Console) -> int:
    paths = _paths(args)
    services = tuple(s.strip() for s in args.services.split(",") if s.strip()) if args.services else SERVICES
    states: dict[str, str] = {}
    since: dict[str, float] = {}
    ended: dict[str, float] = {}

    def on_status(name: str, state: str) -> None:
        if states.get(name) != state:
            since.setdefault(name, time.monotonic())
            if state != "starting":
                ended[name] = time.monotonic()
            states[name] = state
            if not console.is_terminal:
                console.print(f"{name}: {state}")

    def start() -> localstack.StackInfo:
        return localstack.start_stack(
            paths, model=args.model or "", services=services, on_status=on_status, timeout_s=args.timeout
        )

    console.print(f"starting the local stack in {paths.home} (logs: {paths.logs})")
    if console.is_terminal:
        with Live(
            get_renderable=lambda: render.startup_table(states, since, ended),
            console=console,
            refresh_per_second=4,
            transient=False,
        ):
            info = start()
    else:
        info = start()
    console.print(f"[green]stack up[/green]: nats {info.nats_address}, logs in {paths.logs}")
    if info.orchestrator_address:
        console.print(f"orchestrator: {info.orchestrator_address}  (next: `ucoder iterate`)")
    return 0


def cmd_down(args: argparse.Namespace, console: Console) -> int:
    paths = _paths(args)
    if localstack.read_stack(paths) is None:
        console.print(f"no stack running (home {paths.home})")
        return 0
    localstack.stop_stack(paths, grace_s=args.grace)
    console.print("stack stopped")
    return 0


def _kube_options(args: argparse.Namespace) -> kube.KubeOptions:
    return kube.KubeOptions(
        release=args.release or kube.DEFAULT_RELEASE,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )


def cmd_scale(args: argparse.Namespace, console: Console) -> int:
    console.print(kube.scale(_kube_options(args), args.service, args.replicas, args.min), markup=False)
    return 0


def cmd_kube_status(args: argparse.Namespace, console: Console) -> int:
    status = kube.release_status(_kube_options(args))
    title = f"release {status.release} in namespace {status.namespace} ({status.server})"
    console.print(render.kube_services_table(status.services, title=title))
    if any(row.pods for row in status.services):
        console.print(render.kube_pods_table(status.services))
    bad = [f"{row.service} ({row.state})" for row in status.services if not row.ok]
    if bad:
        console.print(f"[yellow]not ready: {', '.join(bad)}[/yellow]")
        return 1
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    if args.kubernetes or args.namespace or args.release or args.kubeconfig or args.context:
        return cmd_kube_status(args, console)
    paths = _paths(args)
    info = localstack.read_stack(paths)
    if info is None:
        console.print(f"no stack running (home {paths.home}); start one with `ucoder up`")
        return 0
    rows = []
    for proc in localstack.iter_processes(info):
        alive = info.alive(proc.name)
        if not alive:
            state = "UNREACHABLE"
        elif proc.name == NATS:
            state = "SERVING" if localstack.port_open(proc.grpc_port) else "UNREACHABLE"
        else:
            state = localstack.health(info.address(proc.name), 1.0)
        rows.append(
            render.ServiceRow(proc.name, proc.pid, alive, state, proc.grpc_port, proc.metrics_port, proc.log)
        )
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started_unix))
    console.print(render.status_table(rows, title=f"local stack (started {started}, home {paths.home})"))
    if info.orchestrator_address:
        console.print(f"orchestrator: {info.orchestrator_address}")
    bad = [r.name for r in rows if r.health != "SERVING"]
    if bad:
        console.print(f"[yellow]not serving: {', '.join(bad)}[/yellow] (logs in {paths.logs})")
        return 1
    return 0


def _spec(args: argparse.Namespace) -> orchestrator_pb2.IterationSpec:
    return orchestrator_pb2.IterationSpec(
        num_problems=args.problems,
        tests_per_problem=args.tests,
        samples_per_problem=args.samples,
        rho=args.rho,
        tau=args.tau,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        signature_mode=SIGNATURE_MODES.get(args.signature_mode or "", common_pb2.SIGNATURE_MODE_UNSPECIFIED),
        selection_rule=args.selection_rule or "",
        min_confidence=args.min_confidence,
        model=args.model or "",
        train_epochs=args.epochs,
        evaluation=orchestrator_pb2.EvalSpec(problems=args.eval_problems, samples=args.eval_samples),
        skip_evaluation=args.no_eval,
        skip_training=args.no_train,
        iterations=args.iterations,
        patience=args.patience,
        sampling=common_pb2.SamplingPolicy(
            mode=args.sampling or "", round_size=args.round_size, risk=args.risk
        ),
    )


def _cancel_running(client: Client, console: Console) -> None:
    """Cancel every iteration still running, e.g. one left by a stack stopped mid-iteration (the
    orchestrator resumes those when it restarts, and runs one iteration at a time)."""
    reply = client.call("ListIterations", orchestrator_pb2.ListIterationsRequest())
    assert isinstance(reply, orchestrator_pb2.ListIterationsResponse)
    for running in reply.iterations:
        if running.phase != orchestrator_pb2.ITERATION_PHASE_RUNNING:
            continue
        try:
            client.call(
                "CancelIteration", orchestrator_pb2.CancelIterationRequest(iteration_id=running.iteration_id)
            )
        except CliError as exc:
            if "already ended" not in str(exc):
                raise
            continue  # it ended by itself between the list and the cancel: nothing to replace
        console.print(f"cancelled iteration {running.iteration_id}, which was still running (--replace)")


def cmd_iterate(args: argparse.Namespace, console: Console) -> int:
    spec = _spec(args)
    with Client.of(args) as client:
        if args.replace:
            _cancel_running(client, console)
        it = client.call("StartIteration", orchestrator_pb2.StartIterationRequest(spec=spec))
        assert isinstance(it, orchestrator_pb2.Iteration)
        console.print(f"iteration [bold]{it.iteration_id}[/bold] started ({render.spec_line(it.spec)})")
        if args.no_watch:
            console.print(f"watch it with `ucoder watch {it.iteration_id}`")
            return 0
        return _watch_and_report(client, it.iteration_id, console, args.report)


def _show_run_report(client: Client, iteration_id: str, console: Console, html_path: str | None) -> None:
    """After a watched run: its report's warnings, and the HTML page written to `html_path`.

    The iteration's outcome is what the command reports; a report that cannot be fetched is a
    note here, not a failure.
    """
    try:
        reply = client.call("GetReport", orchestrator_pb2.GetReportRequest(iteration_id=iteration_id))
        assert isinstance(reply, orchestrator_pb2.IterationReport)
        report = json.loads(reply.json)
    except (CliError, ValueError) as exc:
        console.print(f"(no iteration report: {exc})", markup=False)
        return
    console.print(render.warnings_panel(report))
    if html_path:
        _write_text(html_path, reply.html, "--report")
        console.print(f"report with plots: {html_path}", markup=False)
    console.print(f"the run's report: `ucoder report {iteration_id}` (while the stack runs)", markup=False)


def _watch_and_report(
    client: Client, iteration_id: str, console: Console, report_html: str | None = None
) -> int:
    """Watch an iteration and, when it belongs to a run, the run's following iterations."""
    while True:
        try:
            final = watch_iteration(client, iteration_id, console)
        except KeyboardInterrupt:
            raise CliError(
                f"stopped watching; iteration {iteration_id} keeps running "
                f"(`ucoder watch {iteration_id}` resumes, `ucoder cancel {iteration_id}` stops it)",
                code=130,
            ) from None
        console.print(render.result_table(final))
        code = _iteration_exit(final)
        if code or not final.next_iteration_id:
            if final.phase in TERMINAL_PHASES:
                _show_run_report(client, final.iteration_id, console, report_html)
            return code
        iteration_id = final.next_iteration_id
        console.print(
            f"run {final.run_id or final.iteration_id}: iteration [bold]{iteration_id}[/bold] follows"
        )


def cmd_watch(args: argparse.Namespace, console: Console) -> int:
    with Client.of(args) as client:
        return _watch_and_report(client, args.iteration_id, console, args.report)


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    spec = orchestrator_pb2.EvalSpec(
        problems=args.problems,
        samples=args.samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        ks=args.k or [],
    )
    request = orchestrator_pb2.EvaluateRequest(spec=spec)
    if args.version is not None:
        request.model_version = args.version
    result: orchestrator_pb2.EvalResult | None = None
    progress = Progress(
        TextColumn("HumanEval {task.fields[version]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with (
        Client.of(args) as client,
        progress if console.is_terminal else contextlib.nullcontext(),
    ):
        task = progress.add_task("eval", total=None, version="")
        try:
            for update in client.stub.Evaluate(request):
                progress.update(
                    task,
                    completed=update.done,
                    total=update.total or None,
                    version=f"v{update.model_version}",
                )
                if update.HasField("result"):
                    result = update.result
        except grpc.RpcError as exc:
            raise _grpc_error(exc, client.address) from None
    if result is None:
        raise CliError("the orchestrator ended the evaluation without a result")
    if args.json:
        sys.stdout.write(json_format.MessageToJson(result, preserving_proto_field_name=True) + "\n")
    else:
        console.print(render.eval_table(result))
    return 0


def cmd_get(args: argparse.Namespace, console: Console) -> int:
    with Client.of(args) as client:
        request = orchestrator_pb2.GetIterationRequest(
            iteration_id=args.iteration_id, include_problems=args.include_problems
        )
        it = client.call("GetIteration", request)
    assert isinstance(it, orchestrator_pb2.Iteration)
    if args.json:
        sys.stdout.write(json_format.MessageToJson(it, preserving_proto_field_name=True) + "\n")
    else:
        console.print(render.result_table(it))
    return 0


def _write_text(path: str, text: str, what: str) -> None:
    try:
        Path(path).expanduser().write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{what} {path}: cannot write ({exc.strerror or exc})") from None


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    with Client.of(args) as client:
        reply = client.call("GetReport", orchestrator_pb2.GetReportRequest(iteration_id=args.iteration_id))
    assert isinstance(reply, orchestrator_pb2.IterationReport)
    try:
        report = json.loads(reply.json)
    except ValueError as exc:
        raise CliError(f"the orchestrator sent an unreadable report ({exc})", code=1) from None
    if args.html:
        _write_text(args.html, reply.html, "--html")
    if args.markdown:
        _write_text(args.markdown, reply.markdown, "--markdown")
    if args.json:
        sys.stdout.write(reply.json.rstrip("\n") + "\n")
        return 0
    for renderable in render.report_renderables(report):
        console.print(renderable)
    written = [f"{what} {path}" for what, path in (("HTML", args.html), ("Markdown", args.markdown)) if path]
    if written:
        console.print(f"wrote {', '.join(written)}", markup=False)
    elif reply.objects:
        console.print(f"stored as {', '.join(reply.objects)} (Object Store)", markup=False)
    return 0


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    with Client.of(args) as client:
        reply = client.call("ListIterations", orchestrator_pb2.ListIterationsRequest())
    assert isinstance(reply, orchestrator_pb2.ListIterationsResponse)
    if not reply.iterations:
        console.print("no iterations yet; start one with `ucoder iterate`")
        return 0
    console.print(render.iterations_table(list(reply.iterations)))
    return 0


def cmd_cancel(args: argparse.Namespace, console: Console) -> int:
    with Client.of(args) as client:
        request = orchestrator_pb2.CancelIterationRequest(iteration_id=args.iteration_id)
        it = client.call("CancelIteration", request)
    assert isinstance(it, orchestrator_pb2.Iteration)
    console.print(f"iteration {it.iteration_id}: {render.phase_name(it.phase)}")
    return 0


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"{what} {path}: cannot read ({reason})") from None


def default_entry_point(source: str) -> str | None:
    """The last top-level `def` of `source` (found by text when it does not parse), else None."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        # Still worth sending: the executor reports the compile_error outcome.
        names = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", source, flags=re.MULTILINE)
        return names[-1] if names else None
    defs = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    return defs[-1] if defs else None


def read_literals(path: str, what: str, as_args: bool) -> list[str]:
    """One Python literal per line of `path` (blank and `#` lines skipped), normalised.

    With `as_args`, each must be a tuple of positional arguments; any other literal `x`
    becomes the one-argument tuple `(x,)`.
    """
    literals: list[str] = []
    for number, line in enumerate(_read_text(path, what).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            node = ast.parse(text, mode="eval").body
            value = ast.literal_eval(node)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise CliError(f"{path}:{number}: not a Python literal: {text[:60]}") from None
        literal = ast.unparse(node)
        if as_args and not isinstance(value, tuple):
            literal = f"({literal},)"
        literals.append(literal)
    return literals


def cmd_exec(args: argparse.Namespace, console: Console) -> int:
    source = _read_text(args.file, "candidate file")
    entry_point = args.entry_point or default_entry_point(source)
    if not entry_point:
        raise CliError(f"{args.file}: no top-level `def` found; name the function with --entry-point")
    inputs = read_literals(args.inputs, "inputs file", as_args=True)
    if not inputs:
        raise CliError(f"{args.inputs}: no inputs (one literal tuple per line, like `(1, 2)`)")
    expected = [""] * len(inputs)
    if args.expected:
        expected = read_literals(args.expected, "expected file", as_args=False)
        if len(expected) != len(inputs):
            raise CliError(
                f"{args.expected}: {len(expected)} expected values for {len(inputs)} inputs in {args.inputs}"
            )
    request = executor_pb2.ExecuteRequest(
        problem_id="cli",
        entry_point=entry_point,
        candidates=[common_pb2.Candidate(candidate_id=Path(args.file).name, code=source)],
        tests=[
            common_pb2.TestCase(test_id=str(i), args_literal=a, expected_literal=e)
            for i, (a, e) in enumerate(zip(inputs, expected, strict=True))
        ],
        timeout_per_test_s=args.timeout,
        memory_limit_mb=args.memory_mb,
    )
    address = executor_address(args)
    # Every input may run up to its timeout (the executor's default is a few seconds).
    deadline = UNARY_TIMEOUT_S + len(inputs) * (args.timeout or 10.0)
    with _channel(args, address) as channel:
        stub = executor_pb2_grpc.ExecutorServiceStub(channel)
        try:
            reply = stub.Execute(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise _grpc_error(exc, address, "executor") from None
    if args.json:
        sys.stdout.write(json_format.MessageToJson(reply, preserving_proto_field_name=True) + "\n")
        return 0
    if reply.error:
        raise CliError(f"executor: {reply.error}", code=1)
    console.print(render.exec_table(request, reply, title=f"{args.file} :: {entry_point}"))
    console.print(render.exec_summary(request, reply), markup=False)
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ucoder",
        description="UCoder: self-training code models without external data.",
    )
    parser.add_argument("--home", help="stack home (default $UCODER_HOME or ~/.ucoder)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace, Console], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def credentials(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--grpc-token-file",
            metavar="FILE",
            help="file holding the bearer token (default: the local stack's for its addresses, "
            "else $UCODER_GRPC_TOKEN)",
        )
        p.add_argument(
            "--grpc-ca", metavar="FILE", help="CA (PEM) of the server's TLS certificate ($UCODER_GRPC_CA)"
        )
        p.add_argument(
            "--grpc-tls", action="store_true", help="TLS with the system's CAs ($UCODER_GRPC_TLS=1)"
        )
        p.add_argument(
            "--grpc-cert", metavar="FILE", help="client certificate for mutual TLS ($UCODER_GRPC_CERT)"
        )
        p.add_argument("--grpc-key", metavar="FILE", help="key of --grpc-cert ($UCODER_GRPC_KEY)")
        p.add_argument(
            "--grpc-server-name",
            metavar="NAME",
            help="name the server's certificate carries, when not the address's host, e.g. through a "
            "port-forward ($UCODER_GRPC_SERVER_NAME)",
        )

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--orchestrator",
            metavar="HOST:PORT",
            help="orchestrator address (default $UCODER_ORCHESTRATOR, else the local stack)",
        )
        credentials(p)

    up = add("up", cmd_up, "start nats-server and the services on loopback")
    up.add_argument("--model", metavar="DIR", help="base model directory (default: the services' default)")
    up.add_argument(
        "--services",
        metavar="A,B",
        help=f"comma-separated subset to start (default all: {','.join(SERVICES)})",
    )
    up.add_argument(
        "--timeout", type=float, default=900.0, metavar="S", help="seconds to wait for SERVING (default 900)"
    )

    down = add("down", cmd_down, "stop the local stack")
    down.add_argument("--grace", type=float, default=20.0, metavar="S", help="seconds before SIGKILL")

    def cluster(p: argparse.ArgumentParser, implies: str = "") -> None:
        p.add_argument(
            "--namespace",
            "-n",
            metavar="NS",
            help="namespace of the release (default: the kubeconfig context's namespace, in a pod its "
            f"own namespace, else default){implies}",
        )
        p.add_argument(
            "--release", metavar="NAME", help=f"Helm release name (default {kube.DEFAULT_RELEASE}){implies}"
        )
        p.add_argument(
            "--kubeconfig",
            metavar="FILE",
            help="kubeconfig file (default $KUBECONFIG; in a pod the service account; else ~/.kube/config)"
            + implies,
        )
        p.add_argument(
            "--context", metavar="NAME", help=f"kubeconfig context (default: the current one){implies}"
        )

    status = add(
        "status",
        cmd_status,
        "show the local stack's processes, health and ports; with --kubernetes, a Helm release's "
        "services, replicas and pods",
    )
    status.add_argument(
        "--kubernetes",
        "-k",
        action="store_true",
        help="show the Helm release in a Kubernetes cluster instead of the local stack "
        "(exit 1 when a service is not fully ready)",
    )
    cluster(status, implies=" (implies --kubernetes)")

    scale = add(
        "scale",
        cmd_scale,
        "set a service's replicas in a Helm release; when a KEDA ScaledObject or an HPA scales it, "
        "set the autoscaler's maximum (and --min) instead",
    )
    scale.add_argument(
        "service",
        metavar="SERVICE",
        help=f"one of {', '.join(kube.SCALABLE)} (the orchestrator runs alone; sampler and trainer "
        "hold GPUs: size them with the chart's values)",
    )
    scale.add_argument("replicas", metavar="N", help="replicas, or the autoscaler's maximum")
    scale.add_argument(
        "--min",
        metavar="M",
        help="the autoscaler's minimum (default: keep it, lowered to N if above N)",
    )
    cluster(scale)

    it = add("iterate", cmd_iterate, "start a self-training iteration and watch it")
    it.add_argument("--problems", type=int, default=4, metavar="N", help="problems to generate (default 4)")
    it.add_argument("--tests", type=int, default=16, metavar="N", help="tests per problem (default 16)")
    it.add_argument("--samples", type=int, default=8, metavar="N", help="candidates per problem (default 8)")
    it.add_argument("--rho", type=float, default=0.0, metavar="F", help="reliability filter (0 = 0.8)")
    it.add_argument("--tau", type=int, default=0, metavar="N", help="minimum cluster size (0 = 2)")
    it.add_argument(
        "--selection-rule",
        choices=SELECTION_RULES,
        help="paper (default): the hierarchical consensus rule; random, cluster, low_ppl, "
        "success_rate: the paper's ablation baselines",
    )
    it.add_argument(
        "--min-confidence",
        type=float,
        metavar="F",
        help="abstain when the consensus confidence is below F (0 = never; default: the clusterer's, 0.95)",
    )
    it.add_argument("--temperature", type=float, default=0.0, metavar="F", help="sampling temperature")
    it.add_argument("--max-tokens", type=int, default=0, metavar="N", help="token budget per candidate")
    it.add_argument("--signature-mode", choices=sorted(SIGNATURE_MODES), help="execution signature")
    it.add_argument("--model", metavar="DIR", help="base model the sampler serves")
    it.add_argument("--epochs", type=int, default=0, metavar="N", help="training epochs (0 = 1)")
    it.add_argument(
        "--iterations", type=int, default=1, metavar="N", help="iterations in this run (default 1)"
    )
    it.add_argument(
        "--patience",
        type=int,
        default=0,
        metavar="N",
        help="stop the run after N iterations in a row without a better HumanEval pass@1 (0 = 2)",
    )
    it.add_argument(
        "--eval-problems",
        type=int,
        default=0,
        metavar="N",
        help="HumanEval problems measured after each iteration (0 = all 164)",
    )
    it.add_argument(
        "--eval-samples", type=int, default=0, metavar="N", help="completions per problem (0 = 1)"
    )
    it.add_argument("--no-eval", action="store_true", help="skip the HumanEval step (no early stopping)")
    it.add_argument(
        "--no-train",
        action="store_true",
        help="generate, execute and select only: the selections are the result, no adapter is trained",
    )
    it.add_argument(
        "--sampling",
        choices=("adaptive", "fixed"),
        help="adaptive (default): sample in rounds, stop when more samples could not change the "
        "consensus; fixed: always --samples per problem (the paper's rule)",
    )
    it.add_argument("--round-size", type=int, default=0, metavar="N", help="samples per round (0 = 16)")
    it.add_argument(
        "--risk",
        type=float,
        default=0.0,
        metavar="F",
        help="stop sampling when the estimated chance of a different decision is at most F (0 = 0.1)",
    )
    it.add_argument("--no-watch", action="store_true", help="print the id and return at once")
    it.add_argument(
        "--replace",
        action="store_true",
        help="cancel an iteration that is still running (e.g. left by a stopped stack) instead of failing",
    )
    it.add_argument(
        "--report",
        metavar="PATH",
        help="when the run ends, write its iteration report (HTML with plots) to PATH",
    )
    remote(it)

    ev = add("eval", cmd_eval, "measure a model version's HumanEval pass@k (generation via the sampler)")
    ev.add_argument(
        "--version", type=int, metavar="N", help="registry version (default: the current one; 0 = base)"
    )
    ev.add_argument("--problems", type=int, default=0, metavar="N", help="evenly spaced subset (0 = all 164)")
    ev.add_argument("--samples", type=int, default=0, metavar="N", help="completions per problem (0 = 1)")
    ev.add_argument("--temperature", type=float, default=0.0, metavar="F", help="0 = greedy (default)")
    ev.add_argument("--max-tokens", type=int, default=0, metavar="N", help="per completion (0 = 384)")
    ev.add_argument("--k", type=int, action="append", metavar="K", help="also report pass@K (repeatable)")
    ev.add_argument("--json", action="store_true", help="print the EvalResult message as JSON")
    remote(ev)

    get = add("get", cmd_get, "show one iteration")
    get.add_argument("iteration_id")
    get.add_argument("--json", action="store_true", help="print the Iteration message as JSON")
    get.add_argument("--include-problems", action="store_true", help="include per-problem state (large)")
    remote(get)

    remote(add("list", cmd_list, "list iterations"))

    rep = add(
        "report",
        cmd_report,
        "show the iteration report of an iteration's run so far: problem diversity and consensus per "
        "iteration, HumanEval pass@1, and the paper's failure signatures as warnings",
    )
    rep.epilog = "warnings: " + render.report_thresholds_line()
    rep.add_argument("iteration_id")
    rep.add_argument("--json", action="store_true", help="print the report as JSON (schema 1)")
    rep.add_argument("--html", metavar="PATH", help="write the report with its plots as one HTML page")
    rep.add_argument("--markdown", metavar="PATH", help="write the readable summary as Markdown")
    remote(rep)

    watch = add("watch", cmd_watch, "watch an iteration's progress until it ends")
    watch.add_argument("iteration_id")
    watch.add_argument(
        "--report",
        metavar="PATH",
        help="when the run ends, write its iteration report (HTML with plots) to PATH",
    )
    remote(watch)

    cancel = add("cancel", cmd_cancel, "cancel a running iteration")
    cancel.add_argument("iteration_id")
    remote(cancel)

    ex = add("exec", cmd_exec, "run a candidate solution on test inputs through the executor (debugging)")
    ex.add_argument("file", metavar="FILE", help="Python source of the candidate")
    ex.add_argument(
        "--inputs",
        required=True,
        metavar="FILE",
        help="one Python literal tuple of arguments per line, like (1, [2, 3]); a non-tuple literal x "
        "is taken as (x,); blank lines and lines starting with # are skipped",
    )
    ex.add_argument(
        "--entry-point", metavar="NAME", help="function to call (default: the last top-level def in FILE)"
    )
    ex.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        metavar="S",
        help="seconds per input, at most 60 (0 = the executor's default)",
    )
    ex.add_argument(
        "--memory-mb",
        type=int,
        default=0,
        metavar="N",
        help="memory limit in MB, at least 32 (0 = the executor's default)",
    )
    ex.add_argument(
        "--expected",
        metavar="FILE",
        help="one expected return value (a Python literal) per input, same format; fills `passed`",
    )
    ex.add_argument(
        "--executor",
        metavar="HOST:PORT",
        help="executor address (default $UCODER_EXECUTOR, else the local stack)",
    )
    ex.add_argument("--json", action="store_true", help="print the ExecuteResponse message as JSON")
    credentials(ex)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ucoder`; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    debug = os.environ.get("UCODER_DEBUG", "") not in ("", "0")
    try:
        code: int = args.func(args, console)
        return code
    except CliError as exc:
        print(f"ucoder: {exc}", file=sys.stderr)
        return exc.code
    except StackError as exc:
        print(f"ucoder: {exc}", file=sys.stderr)
        return 1
    except kube.KubeError as exc:
        print(f"ucoder: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("ucoder: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        if debug:
            raise
        print(f"ucoder: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the CLI's promise: one line, never a traceback
        if debug:
            raise
        print(
            f"ucoder: internal error: {type(exc).__name__}: {exc} (UCODER_DEBUG=1 shows more)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
