"""`ucoder scale` and `ucoder status --kubernetes` through the real CLI and the real `kubernetes` client.

No kube-apiserver runs on these machines. An in-memory Kubernetes API stands in for one: kmock's
KubernetesEmulator, served over HTTP on loopback in a background thread. It stores the objects
seeded here (shaped as charts/ucoder creates them: labels, selectors, KEDA ScaledObject, HPA,
pods with the status a cluster would report) and answers list/get/patch on them. The CLI reaches
it through a kubeconfig written to tmp_path, so config loading, the token, URLs, query strings,
PATCH content types and bodies are all the real client's; the tests assert on what the stand-in
received and stored, and on what the CLI printed and returned.

What kmock does not do like a real API server, and how these tests cope:
- it ignores `labelSelector` on lists and returns the whole namespace: the CLI filters by the
  chart's labels on its side as well, and the tests seed a second release to show it does;
- a PATCH to `deployments/NAME/scale` is merged into the Deployment itself and answered with the
  Deployment instead of a Scale object; for `{"spec": {"replicas": N}}` the stored Deployment
  ends up as on a real server, and the CLI does not read the answer;
- a reaction that answers a PATCH with 403 does not stop kmock from applying the patch to its
  stored object (it records changes before reactions run), so the 403 test checks the message
  and exit status, not the stored object;
- no controllers run: status fields (readyReplicas, container states) are seeded as given;
- a resource nobody declared or seeded answers 404, like a CRD that is not installed (that is
  how "KEDA not installed" is exercised; the built-in kinds are declared up front).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import pytest

from ucoder_cli.main import main
from ucoder_common.localstack import REPO_ROOT

NS = "ml"
OTHER_NS = "other-ns"
TOKEN = "test-token"
DEPLOYMENTS = kmock.resource("apps", "v1", "deployments")
PODS = kmock.resource("", "v1", "pods")
HPAS = kmock.resource("autoscaling", "v2", "horizontalpodautoscalers")
SCALED_OBJECTS = kmock.resource("keda.sh", "v1alpha1", "scaledobjects")
SERVICES = ("orchestrator", "problemgen", "testsynth", "sampler", "executor", "clusterer", "trainer")
CREATED = "2025-01-01T00:00:00Z"


@dataclass
class KubeApi:
    """The in-memory API server: `handler` holds the requests received and the objects stored."""

    handler: kmock.KubernetesEmulator
    url: str
    kubeconfig: Path

    def seed(self, resource: kmock.resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.handler.objects[resource, meta["namespace"], meta["name"]] = obj

    def stored(self, resource: kmock.resource, name: str, namespace: str = NS) -> dict[str, Any]:
        raw: dict[str, Any] = self.handler.objects[resource, namespace, name].raw
        return raw

    def patches(self) -> list[Any]:
        return list(self.handler["patch"])


def write_kubeconfig(path: Path, server: str) -> Path:
    """Two contexts on the same server: `kmock` (namespace ml, current) and `other` (other-ns)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [
            {"name": "kmock", "context": {"cluster": "kmock", "user": "tester", "namespace": NS}},
            {"name": "other", "context": {"cluster": "kmock", "user": "tester", "namespace": OTHER_NS}},
        ],
        "current-context": "kmock",
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    started = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async with kmock.KubernetesEmulator() as handler, kmock.Server(handler) as server:
            box.update(handler=handler, url=str(server.url).rstrip("/"), stop=asyncio.Event())
            box["loop"] = asyncio.get_running_loop()
            started.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10), "kmock did not start"
    handler = box["handler"]
    # Built-in kinds exist on every API server, even with no objects; KEDA's CRD only when seeded.
    for resource in ("apps/v1/deployments", "v1/pods", "autoscaling/v2/horizontalpodautoscalers"):
        handler.resources[resource] = {}
    yield KubeApi(handler, box["url"], write_kubeconfig(tmp_path / "kubeconfig", box["url"]))
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(10)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "UCODER_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables wide enough to keep names on one line
    monkeypatch.setenv("HOME", "/nonexistent-home")  # never the developer's ~/.kube/config


# ---------------------------------------------------------------------------- objects as the chart makes them


def fullname(release: str) -> str:
    return release if "ucoder" in release else f"{release}-ucoder"


def labels(service: str, release: str = "ucoder") -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "ucoder",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": service,
        "app.kubernetes.io/part-of": "ucoder",
        "app.kubernetes.io/managed-by": "Helm",
    }


def deployment(
    service: str,
    release: str = "ucoder",
    replicas: int | None = 1,
    ready: int | None = None,
    namespace: str = NS,
) -> dict[str, Any]:
    """A chart Deployment; `replicas=None` is the autoscaled form (no spec.replicas in the chart).

    `ready` is what the cluster reports (default: all of them).
    """
    selector = {
        k: v for k, v in labels(service, release).items() if k.endswith(("name", "instance", "component"))
    }
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": labels(service, release)},
            "spec": {"containers": [{"name": service, "image": f"ucoder/{service}:0.1.0"}]},
        },
    }
    live = 1 if replicas is None else replicas
    if replicas is not None:
        spec["replicas"] = replicas
    ready = live if ready is None else ready
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{fullname(release)}-{service}",
            "namespace": namespace,
            "labels": labels(service, release),
        },
        "spec": spec,
        "status": {
            "replicas": live,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": live,
        },
    }


def pod(
    service: str,
    suffix: str,
    ready: bool = True,
    restarts: int = 0,
    waiting: str | None = None,
    node: str = "node-a",
) -> dict[str, Any]:
    state: dict[str, Any] = (
        {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": CREATED}}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"ucoder-{service}-{suffix}",
            "namespace": NS,
            "labels": labels(service),
            "creationTimestamp": CREATED,
        },
        "spec": {"nodeName": node, "containers": [{"name": service, "image": f"ucoder/{service}:0.1.0"}]},
        "status": {
            "phase": "Running" if not waiting else "Pending",
            "containerStatuses": [
                {"name": service, "ready": ready, "restartCount": restarts, "state": state, "image": "x"}
            ],
        },
    }


def scaled_object(min_count: int, max_count: int, target: str = "ucoder-executor") -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": target, "namespace": NS, "labels": labels("executor")},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": min_count,
            "maxReplicaCount": max_count,
            "triggers": [
                {"type": "nats-jetstream", "metadata": {"stream": "UCODER_WORK", "lagThreshold": "10"}}
            ],
        },
    }


def hpa(name: str, min_replicas: int, max_replicas: int, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS, **meta},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ucoder-executor"},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                }
            ],
        },
    }


def seed_release(api: KubeApi, release: str = "ucoder", **deployment_kw: Any) -> None:
    for service in SERVICES:
        api.seed(DEPLOYMENTS, deployment(service, release, **deployment_kw))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (`ucoder ARGS`): exit status, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ucoder: ")
    return lines[0]


# ---------------------------------------------------------------------------- scale


def test_scale_without_autoscaler_patches_the_deployment_scale(
    api: KubeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_release(api)
    seed_release(api, "staging")  # another release in the namespace: must stay untouched
    api.seed(DEPLOYMENTS, deployment("executor", replicas=2))  # the one to scale: 2 replicas

    code, out, err = run(capsys, "scale", "executor", "5", "--kubeconfig", str(api.kubeconfig))

    assert (code, err) == (0, "")
    assert out.strip() == "executor: Deployment ucoder-executor in namespace ml: replicas 2 -> 5"
    [patch] = api.patches()
    assert patch.url.path == "/apis/apps/v1/namespaces/ml/deployments/ucoder-executor/scale"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"] == f"Bearer {TOKEN}"  # the kubeconfig's user
    assert patch.data == {"spec": {"replicas": 5}}
    assert api.stored(DEPLOYMENTS, "ucoder-executor")["spec"]["replicas"] == 5
    assert api.stored(DEPLOYMENTS, "staging-ucoder-executor")["spec"]["replicas"] == 1
    [listing] = [r for r in api.handler["get"] if r.url.path.endswith("/deployments")]
    assert listing.params["labelSelector"] == "app.kubernetes.io/part-of=ucoder"


def test_scale_with_keda_patches_the_scaled_object_bounds(
    api: KubeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_release(api)
    api.seed(DEPLOYMENTS, deployment("executor", replicas=None))
    api.seed(SCALED_OBJECTS, scaled_object(1, 10))
    # KEDA's own HPA for the ScaledObject also targets the Deployment; patching it would be undone.
    keda_hpa = hpa(
        "keda-hpa-ucoder-executor",
        1,
        10,
        labels={"scaledobject.keda.sh/name": "ucoder-executor"},
        ownerReferences=[
            {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "name": "ucoder-executor"}
        ],
    )
    api.seed(HPAS, keda_hpa)
    kubeconfig = str(api.kubeconfig)

    code, out, err = run(capsys, "scale", "executor", "4", "--kubeconfig", kubeconfig)
    assert (code, err) == (0, "")
    assert out.strip() == (
        "executor: ScaledObject ucoder-executor in namespace ml: "
        "maxReplicaCount 10 -> 4, minReplicaCount 1 -> 1 (unchanged)"
    )
    code, out, err = run(capsys, "scale", "executor", "20", "--min", "3", "--kubeconfig", kubeconfig)
    assert (code, err) == (0, "")
    assert "maxReplicaCount 4 -> 20, minReplicaCount 1 -> 3" in out

    first, second = api.patches()
    assert first.url.path == "/apis/keda.sh/v1alpha1/namespaces/ml/scaledobjects/ucoder-executor"
    assert first.headers["Content-Type"] == "application/merge-patch+json"  # CRDs take no strategic merge
    assert first.data == {"spec": {"maxReplicaCount": 4}}
    assert second.data == {"spec": {"maxReplicaCount": 20, "minReplicaCount": 3}}
    spec = api.stored(SCALED_OBJECTS, "ucoder-executor")["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (3, 20)
    assert spec["triggers"][0]["type"] == "nats-jetstream"  # a merge patch keeps the rest
    assert "replicas" not in api.stored(DEPLOYMENTS, "ucoder-executor")["spec"]
    assert api.stored(HPAS, "keda-hpa-ucoder-executor")["spec"]["maxReplicas"] == 10


def chart_objects(scenario: str) -> list[dict[str, Any]]:
    """What charts/ucoder renders for a scenario of charts/ucoder/ci/, placed in namespace NS."""
    import helm_python as helm
    import yaml

    chart = REPO_ROOT / "charts" / "ucoder"
    values = yaml.safe_load((chart / "ci" / f"{scenario}-values.yaml").read_text()) or {}
    rendered = helm.Chart.load(chart).render(values, name="ucoder", namespace=NS, is_install=True)
    docs = [
        d for path, text in rendered.items() if path.endswith(".yaml") for d in yaml.safe_load_all(text) if d
    ]
    for doc in docs:
        doc["metadata"].setdefault("namespace", NS)
    return docs


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("defaults", "executor: Deployment ucoder-executor in namespace ml: replicas 2 -> 7"),
        (
            "autoscaled-executors",
            "executor: ScaledObject ucoder-executor in namespace ml: maxReplicaCount 40 -> 7",
        ),
        (
            "autoscaled-executors-hpa",
            "executor: HorizontalPodAutoscaler ucoder-executor in namespace ml: maxReplicas 12 -> 7",
        ),
    ],
)
def test_scale_acts_on_the_objects_the_chart_renders(
    api: KubeApi, capsys: pytest.CaptureFixture[str], scenario: str, expected: str
) -> None:
    """The CLI's labels and the chart's agree: seed the chart's own output, then scale."""
    kinds = {"Deployment": DEPLOYMENTS, "ScaledObject": SCALED_OBJECTS, "HorizontalPodAutoscaler": HPAS}
    seeded = 0
    for doc in chart_objects(scenario):
        if doc["kind"] in kinds:
            api.seed(kinds[doc["kind"]], doc)
            seeded += 1
    assert seeded >= 7

    code, out, err = run(capsys, "scale", "executor", "7", "--kubeconfig", str(api.kubeconfig))

    assert (code, err) == (0, "")
    assert out.strip().startswith(expected)
    [patch] = api.patches()
    assert patch.url.path.endswith("/ucoder-executor") or patch.url.path.endswith("/ucoder-executor/scale")


def test_scale_below_the_keda_minimum_lowers_it(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.seed(DEPLOYMENTS, deployment("executor", replicas=None))
    api.seed(SCALED_OBJECTS, scaled_object(6, 10))

    code, out, _ = run(capsys, "scale", "executor", "4", "--kubeconfig", str(api.kubeconfig))

    assert code == 0
    assert "maxReplicaCount 10 -> 4, minReplicaCount 6 -> 4" in out
    [patch] = api.patches()
    assert patch.data == {"spec": {"maxReplicaCount": 4, "minReplicaCount": 4}}


def test_scale_with_hpa_patches_max_replicas(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_release(api)
    api.seed(DEPLOYMENTS, deployment("executor", replicas=None))
    api.seed(HPAS, hpa("ucoder-executor", 2, 8, labels=labels("executor")))

    code, out, err = run(capsys, "scale", "executor", "3", "--kubeconfig", str(api.kubeconfig))

    assert (code, err) == (0, "")
    assert out.strip() == (
        "executor: HorizontalPodAutoscaler ucoder-executor in namespace ml: "
        "maxReplicas 8 -> 3, minReplicas 2 -> 2 (unchanged)"
    )
    [patch] = api.patches()
    assert patch.url.path == "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/ucoder-executor"
    assert patch.data == {"spec": {"maxReplicas": 3}}
    assert api.stored(HPAS, "ucoder-executor")["spec"]["maxReplicas"] == 3


def test_scale_to_the_current_count_sends_nothing(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.seed(DEPLOYMENTS, deployment("executor", replicas=3))

    code, out, _ = run(capsys, "scale", "executor", "3", "--kubeconfig", str(api.kubeconfig))

    assert code == 0
    assert "replicas 3 -> 3 (unchanged); nothing to change" in out
    assert api.patches() == []


def test_scale_a_cpu_worker_other_than_the_executor(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_release(api)

    code, out, _ = run(capsys, "scale", "testsynth", "2", "--kubeconfig", str(api.kubeconfig))

    assert code == 0
    assert "testsynth: Deployment ucoder-testsynth in namespace ml: replicas 1 -> 2" in out
    assert api.stored(DEPLOYMENTS, "ucoder-testsynth")["spec"]["replicas"] == 2


def test_scale_wrong_release_is_a_readable_error(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_release(api)
    seed_release(api, "staging")

    code, out, err = run(
        capsys, "scale", "executor", "3", "--release", "prod", "--kubeconfig", str(api.kubeconfig)
    )

    assert code == 2
    assert out == ""
    line = one_line_error(err)
    assert "no executor deployment found for release prod in namespace ml" in line
    assert "ucoder releases there: staging, ucoder (pass --release)" in line
    assert api.patches() == []


def test_scale_in_an_empty_namespace_names_the_namespace(
    api: KubeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_release(api)  # in ml; the `other` context points at other-ns

    code, _, err = run(
        capsys, "scale", "executor", "3", "--context", "other", "--kubeconfig", str(api.kubeconfig)
    )

    assert code == 2
    line = one_line_error(err)
    assert "for release ucoder in namespace other-ns" in line
    assert "no ucoder release there" in line
    [listing] = list(api.handler["get"])
    assert listing.url.path == "/apis/apps/v1/namespaces/other-ns/deployments"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("executor", "-1"), "N must be 0 or more, not -1"),
        (("executor", "three"), "N must be a whole number of replicas, not 'three'"),
        (("executor", "2.5"), "N must be a whole number of replicas, not '2.5'"),
        (("executor", "2", "--min", "-3"), "--min must be 0 or more, not -3"),
        (("executor", "2", "--min", "3"), "--min 3 is above N 2"),
        (("sampler", "2"), "sampler cannot be scaled with `ucoder scale`: each replica holds a GPU"),
        (("orchestrator", "2"), "orchestrator cannot be scaled with `ucoder scale`"),
        (
            ("nats", "2"),
            "unknown service 'nats'; scalable services: executor, problemgen, testsynth, clusterer",
        ),
    ],
)
def test_scale_rejects_bad_arguments_before_any_request(
    api: KubeApi, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    seed_release(api)

    code, out, err = run(capsys, "scale", *args, "--kubeconfig", str(api.kubeconfig))

    assert (code, out) == (2, "")
    assert message in one_line_error(err)
    assert len(api.handler) == 0  # no request reached the API server


def test_scale_min_without_autoscaler_is_an_error(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.seed(DEPLOYMENTS, deployment("executor", replicas=2))

    code, _, err = run(capsys, "scale", "executor", "4", "--min", "1", "--kubeconfig", str(api.kubeconfig))

    assert code == 2
    assert "--min applies to an autoscaled deployment; ucoder-executor has no KEDA ScaledObject or HPA" in (
        one_line_error(err)
    )
    assert api.patches() == []


def test_scale_forbidden_is_a_readable_error(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.seed(DEPLOYMENTS, deployment("executor", replicas=2))
    message = (
        'deployments.apps "ucoder-executor" is forbidden: User "system:serviceaccount:ml:viewer" '
        'cannot patch resource "deployments/scale" in API group "apps" in the namespace "ml"'
    )
    status = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403}
    api.handler["patch", DEPLOYMENTS] << 403 << (status | {"message": message})

    code, _, err = run(capsys, "scale", "executor", "4", "--kubeconfig", str(api.kubeconfig))

    assert code == 2
    line = one_line_error(err)
    assert line.startswith(
        "ucoder: forbidden: cannot patch deployments/ucoder-executor/scale in namespace ml: "
    )
    assert line.endswith(message)


def test_scale_unreachable_server_is_a_readable_error(tmp_path: Path) -> None:
    """As a user runs it (a subprocess): a kubeconfig whose server does not listen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "UCODER_DEBUG"))}

    result = subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", "scale", "executor", "3", "--kubeconfig", str(kubeconfig)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert f"cannot reach the Kubernetes API at http://127.0.0.1:{port}" in line
    assert "Connection refused" in line
    assert f"kubeconfig {kubeconfig}" in line


def test_bad_kubeconfig_is_a_readable_error(
    api: KubeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    code, _, err = run(capsys, "scale", "executor", "3", "--kubeconfig", str(missing))
    assert code == 2
    assert one_line_error(err) == f"ucoder: kubeconfig {missing}: no such file"

    broken = tmp_path / "broken.yaml"
    broken.write_text("clusters: [\n", encoding="utf-8")
    code, _, err = run(capsys, "scale", "executor", "3", "--kubeconfig", str(broken))
    assert code == 2
    assert one_line_error(err) == f"ucoder: kubeconfig {broken}: not valid YAML at line 2"

    code, _, err = run(capsys, "status", "-k", "--kubeconfig", str(api.kubeconfig), "--context", "nope")
    assert code == 2
    assert "Expected object with name nope" in one_line_error(err)
    assert len(api.handler) == 0

    code, _, err = run(capsys, "status", "--kubernetes")  # no flag, no $KUBECONFIG, no ~/.kube/config
    assert code == 2
    assert "no Kubernetes configuration: pass --kubeconfig, set $KUBECONFIG" in one_line_error(err)


def test_kubeconfig_from_the_environment(
    api: KubeApi, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api.seed(DEPLOYMENTS, deployment("executor", replicas=1))
    monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # $KUBECONFIG wins over in-cluster

    code, out, _ = run(capsys, "scale", "executor", "2")

    assert code == 0
    assert "replicas 1 -> 2" in out


# ---------------------------------------------------------------------------- status


def seed_running_release(api: KubeApi) -> None:
    seed_release(api)
    seed_release(api, "staging")
    api.seed(DEPLOYMENTS, deployment("executor", replicas=None))
    api.seed(SCALED_OBJECTS, scaled_object(1, 10))
    for service in SERVICES:
        api.seed(
            PODS,
            pod(service, "abc12", node=f"gpu-{service}" if service in ("sampler", "trainer") else "cpu-1"),
        )
    test_pod = pod("executor", "health-test")
    test_pod["metadata"]["annotations"] = {"helm.sh/hook": "test"}  # `helm test`: not a service pod
    api.seed(PODS, test_pod)


def test_status_of_a_ready_release(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_running_release(api)

    code, out, err = run(capsys, "status", "--kubernetes", "--kubeconfig", str(api.kubeconfig))

    assert (code, err) == (0, "")
    assert f"release ucoder in namespace ml ({api.url})" in out
    rows = {s: line for s in SERVICES for line in out.splitlines() if f" ucoder-{s} " in line}
    for service in SERVICES:
        assert "ready" in rows[service] and "not ready" not in rows[service]
    assert "KEDA 1-10" in rows["executor"]
    assert "ucoder-sampler-abc12" in out and "gpu-sampler" in out
    assert "Running" in out and "1/1" in out
    assert "health-test" not in out
    assert "staging" not in out
    [pod_list] = [r for r in api.handler["get"] if r.url.path.endswith("/pods")]
    assert pod_list.params["labelSelector"] == (
        "app.kubernetes.io/instance=ucoder,app.kubernetes.io/part-of=ucoder"
    )


def test_status_exits_1_when_a_service_is_not_ready(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_running_release(api)
    api.seed(DEPLOYMENTS, deployment("sampler", replicas=1, ready=0))
    api.seed(PODS, pod("sampler", "abc12", ready=False, restarts=4, waiting="CrashLoopBackOff", node="gpu-1"))

    code, out, _ = run(capsys, "status", "--kubernetes", "--kubeconfig", str(api.kubeconfig))

    assert code == 1
    sampler_row = next(line for line in out.splitlines() if "ucoder-sampler " in line)
    assert "not ready" in sampler_row
    pod_row = next(line for line in out.splitlines() if "ucoder-sampler-abc12" in line)
    assert "CrashLoopBackOff" in pod_row and "0/1" in pod_row and " 4 " in pod_row
    assert "not ready: sampler (not ready)" in out


def test_status_flags_imply_kubernetes_and_select_the_namespace(
    api: KubeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    for service in SERVICES:
        api.seed(DEPLOYMENTS, deployment(service, "prod", namespace=OTHER_NS))

    code, out, _ = run(
        capsys, "status", "--release", "prod", "--namespace", OTHER_NS, "--kubeconfig", str(api.kubeconfig)
    )

    assert code == 0
    assert "release prod in namespace other-ns" in out
    assert "prod-ucoder-executor" in out
    assert all(
        r.url.path.startswith("/apis/apps/v1/namespaces/other-ns/")
        for r in api.handler["get"]
        if "apps" in r.url.path
    )


def test_status_of_a_missing_release(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_release(api, "staging")

    code, out, err = run(capsys, "status", "-k", "--kubeconfig", str(api.kubeconfig))

    assert (code, out) == (2, "")
    assert one_line_error(err) == (
        "ucoder: no deployments found for release ucoder in namespace ml; "
        "ucoder releases there: staging (pass --release)"
    )


def test_status_forbidden_list_is_a_readable_error(api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
    seed_release(api)
    (
        api.handler["list", PODS]
        << 403
        << {"kind": "Status", "code": 403, "message": 'pods is forbidden: User "x"'}
    )

    code, _, err = run(capsys, "status", "-k", "--kubeconfig", str(api.kubeconfig))

    assert code == 2
    assert (
        one_line_error(err)
        == 'ucoder: forbidden: cannot list pods in namespace ml: pods is forbidden: User "x"'
    )
