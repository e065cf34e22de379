"""The pure half of ucoder_cli.kube: API objects (plain dicts) in, scale plans and status rows out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ucoder_cli import kube, render
from ucoder_cli.kube import Autoscaler, KubeError, KubeOptions
from ucoder_common import localstack

NOW = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)


def labels(service: str, release: str = "ucoder") -> dict[str, str]:
    return kube.release_labels(release, service) | {"app.kubernetes.io/name": "ucoder"}


def deployment(service: str, release: str = "ucoder", **spec: Any) -> dict[str, Any]:
    name = f"{release if 'ucoder' in release else release + '-ucoder'}-{service}"
    return {"metadata": {"name": name, "labels": labels(service, release)}, "spec": spec}


def scaled_object(
    name: str, target: str, obj_labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": obj_labels or {}},
        "spec": {"scaleTargetRef": {"name": target}, **spec},
    }


def hpa(name: str, target: str, obj_labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    obj = scaled_object(name, target, obj_labels, **spec)
    obj["spec"]["scaleTargetRef"]["kind"] = "Deployment"
    return obj


# ---------------------------------------------------------------------------- arguments


def test_display_order_covers_exactly_the_seven_services() -> None:
    assert sorted(kube.SERVICES) == sorted(localstack.SERVICES)
    assert set(kube.SCALABLE) | set(kube.NOT_SCALABLE_WHY) == set(kube.SERVICES)
    assert not set(kube.SCALABLE) & set(kube.NOT_SCALABLE_WHY)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), (" 12 ", 12)])
def test_parse_count_accepts_whole_numbers(text: str, value: int) -> None:
    assert kube.parse_count(text, "N") == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "N must be 0 or more, not -1"),
        ("x", "whole number"),
        ("1.5", "whole number"),
        ("", "whole number"),
    ],
)
def test_parse_count_rejects(text: str, message: str) -> None:
    with pytest.raises(KubeError, match=message):
        kube.parse_count(text, "N")


def test_check_scalable() -> None:
    for service in kube.SCALABLE:
        kube.check_scalable(service)
    with pytest.raises(KubeError, match=r"trainer cannot be scaled .* holds a GPU"):
        kube.check_scalable("trainer")
    with pytest.raises(KubeError, match="unknown service 'web'"):
        kube.check_scalable("web")


# ---------------------------------------------------------------------------- finding objects


def test_find_deployment_by_labels_not_by_name() -> None:
    mine = deployment("executor", "prod")
    mine["metadata"]["name"] = "renamed"
    found = kube.find_deployment(
        [deployment("executor", "staging"), deployment("sampler", "prod"), mine], "prod", "executor", "ml"
    )
    assert found is mine


def test_find_deployment_hints() -> None:
    with pytest.raises(KubeError, match="releases there: a, b \\(pass --release\\)"):
        kube.find_deployment(
            [deployment("executor", "a"), deployment("executor", "b")], "c", "executor", "ml"
        )
    with pytest.raises(KubeError, match=r"release x in namespace ml .*; the release is there without it"):
        kube.find_deployment([deployment("sampler", "x")], "x", "executor", "ml")
    with pytest.raises(KubeError, match="no ucoder release there"):
        kube.find_deployment([], "x", "executor", "ml")
    twice = [
        deployment("executor"),
        deployment("executor") | {"metadata": {"name": "b", "labels": labels("executor")}},
    ]
    with pytest.raises(KubeError, match=r"several executor deployments .*: b, ucoder-executor"):
        kube.find_deployment(twice, "ucoder", "executor", "ml")


def test_autoscaler_found_by_scale_target_or_labels() -> None:
    dep = deployment("executor")
    by_ref = scaled_object("any-name", "ucoder-executor", minReplicaCount=2, maxReplicaCount=9)
    assert kube.autoscaler_for(dep, [by_ref], []) == Autoscaler("ScaledObject", "any-name", 2, 9)
    by_labels = hpa("h", "something-else", labels("executor"), minReplicas=3, maxReplicas=5)
    assert kube.autoscaler_for(dep, [], [by_labels]) == Autoscaler("HorizontalPodAutoscaler", "h", 3, 5)
    other = scaled_object("s", "ucoder-sampler", labels("sampler"))
    other_release = hpa("h2", "staging-ucoder-executor", labels("executor", "staging"), maxReplicas=4)
    assert kube.autoscaler_for(dep, [other], [other_release]) is None


def test_autoscaler_defaults_and_keda_before_its_own_hpa() -> None:
    dep = deployment("executor")
    so = scaled_object("so", "ucoder-executor")  # no bounds: KEDA's defaults 0 and 100
    keda_hpa = hpa("keda-hpa-so", "ucoder-executor", {"scaledobject.keda.sh/name": "so"}, maxReplicas=100)
    assert kube.autoscaler_for(dep, [so], [keda_hpa]) == Autoscaler("ScaledObject", "so", 0, 100)
    # Without the ScaledObject in the list (e.g. just deleted), KEDA's HPA is still not ours to patch.
    owned = hpa("keda-hpa-so", "ucoder-executor", maxReplicas=100)
    owned["metadata"]["ownerReferences"] = [{"kind": "ScaledObject", "name": "so"}]
    assert kube.autoscaler_for(dep, [], [owned]) is None
    plain = hpa("h", "ucoder-executor", maxReplicas=6)
    assert kube.autoscaler_for(dep, [], [plain]) == Autoscaler("HorizontalPodAutoscaler", "h", 1, 6)


def test_two_autoscalers_for_one_deployment_is_an_error() -> None:
    dep = deployment("executor")
    with pytest.raises(KubeError, match="several ScaledObjects target deployment ucoder-executor: a, b"):
        kube.autoscaler_for(
            dep, [scaled_object("a", "ucoder-executor"), scaled_object("b", "ucoder-executor")], []
        )


# ---------------------------------------------------------------------------- plans


def test_plan_deployment_replicas() -> None:
    plan = kube.plan_scale(deployment("executor", replicas=2), None, 5, None, "ml")
    assert plan.patch == {"spec": {"replicas": 5}}
    assert plan.describe() == "Deployment ucoder-executor in namespace ml: replicas 2 -> 5"
    # No spec.replicas: the API server's default of 1.
    assert kube.plan_scale(deployment("executor"), None, 0, None, "ml").changes == (("replicas", 1, 0),)
    same = kube.plan_scale(deployment("executor", replicas=3), None, 3, None, "ml")
    assert same.patch is None
    assert same.describe().endswith("replicas 3 -> 3 (unchanged); nothing to change")
    with pytest.raises(KubeError, match="--min applies to an autoscaled deployment"):
        kube.plan_scale(deployment("executor", replicas=3), None, 3, 1, "ml")


@pytest.mark.parametrize(
    ("autoscaler", "n", "m", "patch"),
    [
        (Autoscaler("ScaledObject", "so", 1, 10), 4, None, {"maxReplicaCount": 4}),
        (Autoscaler("ScaledObject", "so", 6, 10), 4, None, {"maxReplicaCount": 4, "minReplicaCount": 4}),
        (Autoscaler("ScaledObject", "so", 1, 10), 20, 0, {"maxReplicaCount": 20, "minReplicaCount": 0}),
        (Autoscaler("ScaledObject", "so", 1, 10), 10, 1, None),
        (Autoscaler("HorizontalPodAutoscaler", "h", 2, 8), 3, None, {"maxReplicas": 3}),
        (Autoscaler("HorizontalPodAutoscaler", "h", 2, 8), 8, 5, {"minReplicas": 5}),
    ],
)
def test_plan_autoscaler_bounds(
    autoscaler: Autoscaler, n: int, m: int | None, patch: dict[str, int] | None
) -> None:
    plan = kube.plan_scale(deployment("executor"), autoscaler, n, m, "ml")
    assert plan.kind == autoscaler.kind and plan.name == autoscaler.name
    assert plan.patch == ({"spec": patch} if patch else None)


@pytest.mark.parametrize(
    ("autoscaler", "n", "m", "message"),
    [
        (Autoscaler("ScaledObject", "so", 0, 10), 0, None, "N is its maximum and must be at least 1"),
        (Autoscaler("ScaledObject", "so", 0, 10), 3, 4, "--min 4 is above the maximum 3"),
        (Autoscaler("HorizontalPodAutoscaler", "h", 1, 8), 3, 0, "an HPA's minimum must be at least 1"),
    ],
)
def test_plan_autoscaler_rejects(autoscaler: Autoscaler, n: int, m: int | None, message: str) -> None:
    with pytest.raises(KubeError, match=message):
        kube.plan_scale(deployment("executor"), autoscaler, n, m, "ml")


def test_plan_describe_lists_old_and_new() -> None:
    plan = kube.plan_scale(deployment("executor"), Autoscaler("ScaledObject", "so", 6, 10), 4, None, "ml")
    assert (
        plan.describe() == "ScaledObject so in namespace ml: maxReplicaCount 10 -> 4, minReplicaCount 6 -> 4"
    )


# ---------------------------------------------------------------------------- status rows


def pod(service: str, name: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels(service), "creationTimestamp": "2025-01-01T11:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "meta", "state"),
    [
        ({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}, {}, "Running"),
        ({"phase": "Pending"}, {}, "Pending"),
        ({}, {}, "Unknown"),
        (
            {
                "phase": "Running",
                "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
            },
            {},
            "CrashLoopBackOff",
        ),
        (
            {"phase": "Running", "containerStatuses": [{"state": {"terminated": {"reason": "OOMKilled"}}}]},
            {},
            "OOMKilled",
        ),
        (
            {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"reason": "Completed"}}}]},
            {},
            "Succeeded",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}],
            },
            {},
            "Init:PodInitializing",
        ),
        ({"phase": "Running"}, {"deletionTimestamp": "2025-01-01T11:59:00Z"}, "Terminating"),
    ],
)
def test_pod_state_like_kubectl(status: dict[str, Any], meta: dict[str, Any], state: str) -> None:
    obj = pod("executor", "p", **status)
    obj["metadata"].update(meta)
    assert kube.pod_state(obj) == state


def test_pod_status_counts() -> None:
    obj = pod(
        "executor",
        "p",
        phase="Running",
        containerStatuses=[{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 3}],
    )
    assert kube.pod_status(obj, NOW) == kube.PodStatus("p", "Running", 1, 2, 5, "n1", 3600.0)


def test_service_statuses() -> None:
    deployments = [
        deployment("executor", replicas=3)
        | {"status": {"readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3}},
        deployment("sampler", replicas=1) | {"status": {"readyReplicas": 0, "availableReplicas": 0}},
        deployment("trainer", replicas=0),
        deployment("clusterer", replicas=0),
        deployment("reranker", replicas=1)
        | {"status": {"readyReplicas": 1, "availableReplicas": 1}},  # an 8th
        deployment("executor", "staging", replicas=9),  # another release: ignored
    ]
    so = scaled_object("so", "ucoder-clusterer", minReplicaCount=0, maxReplicaCount=4)
    test_pod = pod("executor", "ucoder-test-health", phase="Succeeded")
    test_pod["metadata"]["annotations"] = {"helm.sh/hook": "test"}
    pods = [pod("executor", "ucoder-executor-b"), pod("executor", "ucoder-executor-a"), test_pod]

    rows = kube.service_statuses("ucoder", deployments, pods, [so], [], NOW)

    by = {r.service: r for r in rows}
    assert [r.service for r in rows] == [*kube.SERVICES, "reranker"]
    assert (by["executor"].state, by["executor"].desired, by["executor"].ready) == ("ready", 3, 3)
    assert [p.name for p in by["executor"].pods] == ["ucoder-executor-a", "ucoder-executor-b"]
    assert by["sampler"].state == "not ready"
    assert by["trainer"].state == "scaled to 0" and not by["trainer"].ok
    assert by["clusterer"].state == "idle" and by["clusterer"].ok  # KEDA with minimum 0
    assert by["orchestrator"].state == "missing" and not by["orchestrator"].ok
    assert by["reranker"].ok
    assert [r.service for r in rows if not r.ok] == [
        "orchestrator",
        "problemgen",
        "testsynth",
        "sampler",
        "trainer",
    ]


# ---------------------------------------------------------------------------- configuration


def test_choose_config_order(tmp_path: Path) -> None:
    home = tmp_path / "config"
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert kube.choose_config(KubeOptions(kubeconfig="/k"), {"KUBECONFIG": "/e"}, home) == kube.ConfigChoice(
        False, "/k"
    )
    assert kube.choose_config(KubeOptions(), {"KUBECONFIG": "/e", **in_pod}, home) == kube.ConfigChoice(
        False, "/e"
    )
    assert kube.choose_config(KubeOptions(), in_pod, home) == kube.ConfigChoice(True)
    with pytest.raises(KubeError, match="no Kubernetes configuration"):
        kube.choose_config(KubeOptions(), {}, home)
    home.write_text("{}")
    assert kube.choose_config(KubeOptions(), {}, home) == kube.ConfigChoice(False, str(home))
    # A context names a kubeconfig entry, so it is not the pod's service account.
    assert kube.choose_config(KubeOptions(context="c"), in_pod, home) == kube.ConfigChoice(False, str(home))


def test_context_namespace() -> None:
    contexts = [{"name": "a", "context": {"namespace": "ns-a"}}, {"name": "b", "context": {}}]
    assert kube.context_namespace(contexts, contexts[0], None) == "ns-a"
    assert kube.context_namespace(contexts, contexts[0], "b") is None
    assert kube.context_namespace(contexts, None, "missing") is None


def test_network_reason_finds_the_os_error() -> None:
    inner = ConnectionRefusedError(111, "Connection refused")
    outer = RuntimeError("pool gave up")
    outer.__cause__ = inner
    assert kube._network_reason(outer) == "Connection refused"
    assert kube._network_reason(TimeoutError("timed out")) == "timed out"
    assert kube._network_reason(ValueError("x")) == "ValueError"


# ---------------------------------------------------------------------------- rendering


def test_tables_render() -> None:
    rows = [
        kube.ServiceStatus(
            "executor",
            "ucoder-executor",
            desired=2,
            ready=1,
            available=1,
            updated=2,
            autoscaler=Autoscaler("ScaledObject", "so", 1, 10),
            pods=(kube.PodStatus("ucoder-executor-x", "CrashLoopBackOff", 0, 1, 7, "", 3 * 86400.0),),
        ),
        kube.ServiceStatus("trainer", ""),
    ]
    services = render.to_text(render.kube_services_table(rows, "release ucoder"), width=160)
    executor = next(line for line in services.splitlines() if "ucoder-executor" in line)
    assert [c.strip() for c in executor.split("│")[1:-1]] == [
        "executor",
        "ucoder-executor",
        "2",
        "1",
        "2",
        "1",
        "KEDA 1-10",
        "not ready",
    ]
    trainer = next(line for line in services.splitlines() if "trainer" in line)
    assert "missing" in trainer and " - " in trainer
    pods = render.to_text(render.kube_pods_table(rows), width=160)
    line = next(line for line in pods.splitlines() if "ucoder-executor-x" in line)
    assert [c.strip() for c in line.split("│")[1:-1]] == [
        "executor",
        "ucoder-executor-x",
        "CrashLoopBackOff",
        "0/1",
        "7",
        "-",
        "3d",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (42, "42.0s"), (3 * 3600 + 60, "3h 01m"), (5 * 86400, "5d")]
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert render.format_age(seconds) == text
