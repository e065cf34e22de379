"""The Helm chart, rendered by the real Helm SDK (helm-python-sdk, Helm v4 in-process).

Every scenario under charts/ucoder/ci/ is rendered, linted, validated against the Kubernetes
OpenAPI schemas of several versions with `kubernetes-validate --strict`, and its objects are
checked for what the chart promises: gVisor executors that reach NATS only, GPUs only on the
sampler and trainer, non-root containers with read-only root filesystems, gRPC probes, the
autoscalers, the dashboard. Bad values must be refused with a message naming the key.

No cluster is involved: Helm renders offline. The official NATS chart (a dependency fetched by
`helm dependency update`) is not vendored, so lint reports it missing; that one message is expected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from ucoder_common.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ucoder"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
KUBE_VERSIONS = ("1.29.0", "1.33.0", "1.37.0")
SERVICES = ("orchestrator", "problemgen", "testsynth", "sampler", "executor", "clusterer", "trainer")
GPU_SERVICES = {"sampler", "trainer"}
CRD_KINDS = {"ScaledObject", "ServiceMonitor"}
MISSING_DEPENDENCY = "chart directory is missing these dependencies: nats"
RELEASE, NAMESPACE = "ucoder", "ml"

Manifest = dict[str, Any]


def scenario_values(scenario: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{scenario}-values.yaml").read_text()) or {}


def render(values: dict[str, Any], release: str = RELEASE) -> dict[str, str]:
    return helm.Chart.load(CHART).render(values, name=release, namespace=NAMESPACE, is_install=True)


def objects(rendered: dict[str, str]) -> list[Manifest]:
    return [
        doc
        for path, text in rendered.items()
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered(scenario: str) -> list[Manifest]:
    return objects(render(scenario_values(scenario)))


def find(docs: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = find(docs, kind, name)
    return found


def deployments(docs: list[Manifest]) -> dict[str, Manifest]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in find(docs, "Deployment")}


def bundled_nats(scenario: str) -> bool:
    return bool(scenario_values(scenario).get("nats", {}).get("enabled", True))


def grpc_tls(scenario: str) -> bool:
    return bool(scenario_values(scenario).get("grpcAuth", {}).get("tls", {}).get("enabled", False))


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for d in docs:
        if d["kind"] == "Deployment":
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            yield d["metadata"]["name"], d["spec"]


# ------------------------------------------------------------------------------ render, lint, validate


def test_there_are_the_scenarios_the_issue_names() -> None:
    assert {
        "defaults",
        "gpu-pools",
        "external-nats",
        "autoscaled-executors",
        "monitoring",
        "production",
    } <= set(SCENARIOS)


def test_every_scenario_lints_clean(scenario: str) -> None:
    for kube_version in ("v1.29.0", "v1.37.0"):
        report = helm.lint(CHART, scenario_values(scenario), strict=True, kube_version=kube_version)
        problems = [m for m in report["messages"] if m["severity"] >= 2 and m["error"] != MISSING_DEPENDENCY]
        assert problems == [], problems
        assert all(e == MISSING_DEPENDENCY for e in report["errors"]), report["errors"]


def test_every_manifest_validates_strictly_on_several_kubernetes_versions(
    scenario: str, rendered: list[Manifest], tmp_path: Path
) -> None:
    manifest = tmp_path / f"{scenario}.yaml"
    manifest.write_text(yaml.safe_dump_all(rendered))
    version_flags = [flag for v in KUBE_VERSIONS for flag in ("-k", v)]
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *version_flags, str(manifest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))]
    # Custom resources have no upstream schema: only those may be skipped, and they are
    # checked field by field in the tests below.
    warned = [line for line in lines if line.startswith("WARN")]
    assert all(any(kind in line for kind in CRD_KINDS) for line in warned), warned
    built_in = [d for d in rendered if d["kind"] not in CRD_KINDS]
    passed = [line for line in lines if line.startswith("INFO") and "passed" in line]
    assert len(passed) == len(built_in) * len(KUBE_VERSIONS)


def test_strict_validation_bites_on_an_unknown_field(tmp_path: Path) -> None:
    docs = objects(render({}))
    executor = deployments(docs)["executor"]
    executor["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True  # typo
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(yaml.safe_dump(executor))
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSIONS[0], str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "readOnlyRootFileSystem" in proc.stdout


# ------------------------------------------------------------------------------ objects


def test_one_deployment_service_account_service_and_pdb_per_service(
    rendered: list[Manifest], scenario: str
) -> None:
    for kind in ("Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"):
        names = sorted(d["metadata"]["name"] for d in find(rendered, kind))
        expected = [f"ucoder-{s}" for s in SERVICES]
        if kind == "NetworkPolicy" and bundled_nats(scenario):
            expected.append("ucoder-nats-ingress")  # the bundled NATS's ingress
        assert names == sorted(expected), kind
    tls = grpc_tls(scenario)
    for service, deployment in deployments(rendered).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "ucoder"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == service
        service_obj = one(rendered, "Service", f"ucoder-{service}")
        expected_ports = {"grpc": 50051, "metrics": 9090}
        if tls and service == "orchestrator":
            expected_ports["grpc-health"] = 50052
        assert {p["name"]: p["port"] for p in service_obj["spec"]["ports"]} == expected_ports


def test_every_container_is_non_root_with_a_read_only_root_filesystem(rendered: list[Manifest]) -> None:
    specs = list(pod_specs(rendered))
    assert len(specs) >= len(SERVICES) + 2  # the services and the helm-test pods
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["runAsNonRoot"] is True, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["privileged"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where
            # A read-only root needs somewhere to write temporary files.
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, where


def test_every_service_has_grpc_probes_on_its_grpc_port(rendered: list[Manifest], scenario: str) -> None:
    for service, deployment in deployments(rendered).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        # An orchestrator serving TLS is probed on its plaintext health-only port (kubelet's
        # gRPC probes cannot speak TLS).
        tls = grpc_tls(scenario) and service == "orchestrator"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == (50052 if tls else 50051), (service, probe)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": 50051, "metrics": 9090, **({"grpc-health": 50052} if tls else {})}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["UCODER_GRPC_PORT"] == "50051" and env["UCODER_METRICS_PORT"] == "9090"
        assert env["UCODER_GRPC_HOST"] == "0.0.0.0"


def test_gpu_limits_only_on_the_sampler_and_trainer(scenario: str, rendered: list[Manifest]) -> None:
    values = scenario_values(scenario)
    gpu_on = values.get("gpu", {}).get("enabled", True)
    for service, deployment in deployments(rendered).items():
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        limits = container["resources"].get("limits", {})
        if service in GPU_SERVICES and gpu_on:
            expected = values.get(service, {}).get("gpus", 1)
            assert limits["nvidia.com/gpu"] == expected, service
            assert any(t["effect"] == "NoSchedule" for t in spec["tolerations"]), service
            pool = values.get("gpu", {}).get("nodeSelector", {})
            assert spec.get("nodeSelector", {}) == pool, service
            assert deployment["spec"]["strategy"]["type"] == "Recreate"
        else:
            assert "nvidia.com/gpu" not in limits, service
            assert not any("gpu" in json.dumps(t) for t in spec.get("tolerations", [])), service


def test_gpu_pool_scenario_places_gpu_services_on_the_named_pool() -> None:
    docs = objects(render(scenario_values("gpu-pools")))
    by_service = deployments(docs)
    for service in GPU_SERVICES:
        spec = by_service[service]["spec"]["template"]["spec"]
        assert spec["nodeSelector"] == {"cloud.google.com/gke-nodepool": "a100-pool"}
        assert {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        # A model from a volume: no init step, the volume read-only at /models, the path in the env.
        assert "initContainers" not in spec
        (container,) = spec["containers"]
        assert {"name": "model", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[f"UCODER_{service.upper()}_MODEL"] == "/models/Qwen2.5-Coder-7B"
        cache = next(v for v in spec["volumes"] if v["name"] == "cache")
        assert cache["persistentVolumeClaim"]["claimName"] == f"ucoder-{service}-cache"
        assert spec["containers"][0]["image"].startswith("registry.example.com/ml/ucoder/")
    claims = {c["metadata"]["name"]: c for c in find(docs, "PersistentVolumeClaim")}
    assert set(claims) == {"ucoder-sampler-cache", "ucoder-trainer-cache"}
    assert claims["ucoder-sampler-cache"]["spec"]["storageClassName"] == "premium-rwo"
    assert (
        by_service["trainer"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][
            "nvidia.com/gpu"
        ]
        == 4
    )


def test_default_model_is_assembled_by_an_init_step_into_the_cache() -> None:
    for service, deployment in deployments(objects(render({}))).items():
        spec = deployment["spec"]["template"]["spec"]
        if service not in GPU_SERVICES:
            assert "initContainers" not in spec
            continue
        (init,) = spec["initContainers"]
        assert init["command"] == ["python", "-m", "ucoder_common.models"]
        assert {"name": "UCODER_CACHE_DIR", "value": "/cache"} in init["env"]
        assert {"name": "cache", "mountPath": "/cache"} in init["volumeMounts"]


def test_executor_runs_under_gvisor_without_nested_runsc(rendered: list[Manifest]) -> None:
    executor = deployments(rendered)["executor"]["spec"]["template"]["spec"]
    assert executor["runtimeClassName"] == "gvisor"
    env = {e["name"]: e.get("value") for e in executor["containers"][0]["env"]}
    assert env["UCODER_EXECUTOR_BACKEND"] == "process"
    assert env["UCODER_EXECUTOR_ALLOW_UNSANDBOXED"] == "1"
    others = [s for name, s in deployments(rendered).items() if name != "executor"]
    assert all("runtimeClassName" not in s["spec"]["template"]["spec"] for s in others)


def _policy(docs: list[Manifest], service: str) -> Manifest:
    return one(docs, "NetworkPolicy", f"ucoder-{service}")


def test_executor_reaches_nats_only(rendered: list[Manifest], scenario: str) -> None:
    policy = _policy(rendered, "executor")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "executor"
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    nats_rule, dns_rule = policy["egress"]
    assert nats_rule["ports"] == [{"port": 4222, "protocol": "TCP"}]
    if scenario_values(scenario).get("nats", {}).get("enabled", True):
        assert nats_rule["to"] == [
            {
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": RELEASE}
                }
            }
        ]
    else:
        assert nats_rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    # Name resolution of the NATS service, and nothing else.
    assert {p["port"] for p in dns_rule["ports"]} == {53}
    assert dns_rule["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_services_accept_only_their_callers(rendered: list[Manifest], scenario: str) -> None:
    test_peer = {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": "helm-test"}
        }
    }
    extra = scenario_values(scenario).get("networkPolicy", {}).get("orchestratorFrom", [])
    for service in SERVICES:
        rules = _policy(rendered, service)["spec"]["ingress"]
        if grpc_tls(scenario) and service == "orchestrator":
            grpc_rule, health_rule, metrics_rule = rules
            assert health_rule == {"ports": [{"port": "grpc-health", "protocol": "TCP"}], "from": [test_peer]}
        else:
            grpc_rule, metrics_rule = rules
        assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
        expected = [test_peer, *extra] if service == "orchestrator" else [test_peer]
        assert grpc_rule["from"] == expected, service
        assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
        assert all("namespaceSelector" in peer for peer in metrics_rule["from"])


def test_executor_replicas_are_independent_and_autoscaled_when_asked(
    rendered: list[Manifest], scenario: str
) -> None:
    values = scenario_values(scenario).get("executor", {})
    executor = deployments(rendered)["executor"]
    scaling = values.get("autoscaling", {})
    if not scaling.get("enabled"):
        assert executor["spec"]["replicas"] == values.get("replicas", 2)
        assert not find(rendered, "ScaledObject") and not find(rendered, "HorizontalPodAutoscaler")
        return
    # The autoscaler owns the replica count; a fixed one would fight it on every upgrade.
    assert "replicas" not in executor["spec"]
    if scaling["kind"] == "keda":
        scaled = one(rendered, "ScaledObject", "ucoder-executor")
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "ucoder-executor",
        }
        assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (
            scaling["minReplicas"],
            scaling["maxReplicas"],
        )
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        assert (meta["stream"], meta["consumer"]) == ("UCODER_WORK", "executor")
        assert meta["natsServerMonitoringEndpoint"] == f"ucoder-nats.{NAMESPACE}.svc:8222"
        assert meta["lagThreshold"] == str(scaling["lagThreshold"])
        assert meta["account"] == scaling.get("natsAccount", "$G")
        assert scaled["metadata"]["labels"]["app.kubernetes.io/component"] == "executor"
    else:
        hpa = one(rendered, "HorizontalPodAutoscaler", "ucoder-executor")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "ucoder-executor"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
            scaling["minReplicas"],
            scaling["maxReplicas"],
        )
        assert (
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
            == scaling["targetCPUUtilization"]
        )


def test_gvisor_runtime_class_is_created_only_when_asked(rendered: list[Manifest], scenario: str) -> None:
    runtime = scenario_values(scenario).get("executor", {}).get("runtimeClass", {})
    classes = find(rendered, "RuntimeClass")
    if not runtime.get("create"):
        assert classes == []
        return
    (runtime_class,) = classes
    assert runtime_class["metadata"]["name"] == "gvisor"
    assert runtime_class["handler"] == "runsc"
    assert runtime_class["scheduling"]["nodeSelector"] == runtime["nodeSelector"]


def test_nats_url_is_bundled_external_or_from_a_secret() -> None:
    bundled = deployments(objects(render({})))["clusterer"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "UCODER_NATS_URL", "value": "nats://ucoder-nats:4222"} in bundled["env"]
    # The official NATS chart names its service after a release that already says "nats".
    renamed = deployments(objects(render({}, release="nats-ucoder")))["clusterer"]
    assert {"name": "UCODER_NATS_URL", "value": "nats://nats-ucoder:4222"} in renamed["spec"]["template"][
        "spec"
    ]["containers"][0]["env"]
    external = objects(render(scenario_values("external-nats")))
    for service, deployment in deployments(external).items():
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["UCODER_NATS_URL"]["valueFrom"] == {
            "secretKeyRef": {"name": "ucoder-nats", "key": "url"}
        }, service
    by_url = objects(render({"nats": {"enabled": False}, "externalNats": {"url": "nats://nats.infra:4222"}}))
    env = deployments(by_url)["executor"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "UCODER_NATS_URL", "value": "nats://nats.infra:4222"} in env


def test_the_rendered_environment_is_valid_service_configuration(rendered: list[Manifest]) -> None:
    """Every UCODER_* variable the chart sets must be a setting the service accepts."""
    configs = _config_classes()
    for service, deployment in deployments(rendered).items():
        # A value from a Secret (the NATS URL or a credential) stands in as a placeholder.
        env = {
            e["name"]: e.get(
                "value", "nats://from-a-secret:4222" if e["name"] == "UCODER_NATS_URL" else "secret"
            )
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        try:
            cfg = load_config(configs[service], service, [], env)
        except ConfigError as exc:
            pytest.fail(f"{service}: {exc}")
        assert (cfg.grpc_port, cfg.metrics_port) == (50051, 9090)


def _config_classes() -> dict[str, type]:
    from services.clusterer.app import ClustererConfig
    from services.executor.app import ExecutorConfig
    from services.orchestrator.app import OrchestratorConfig
    from services.problemgen.app import ProblemGenConfig
    from services.sampler.app import SamplerConfig
    from services.testsynth.app import TestSynthConfig
    from services.trainer.app import TrainerConfig

    return {
        "orchestrator": OrchestratorConfig,
        "problemgen": ProblemGenConfig,
        "testsynth": TestSynthConfig,
        "sampler": SamplerConfig,
        "executor": ExecutorConfig,
        "clusterer": ClustererConfig,
        "trainer": TrainerConfig,
    }


def test_service_monitor_scrapes_every_service_when_asked(rendered: list[Manifest], scenario: str) -> None:
    wanted = scenario_values(scenario).get("monitoring", {}).get("serviceMonitor", {})
    monitors = find(rendered, "ServiceMonitor")
    if not wanted.get("enabled"):
        assert monitors == []
        return
    (monitor,) = monitors
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]
    assert selector["matchLabels"] == {
        "app.kubernetes.io/name": "ucoder",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert selector["matchExpressions"][0]["values"] == list(SERVICES)
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "10s"}]
    # Every service the monitor selects exposes the port it scrapes.
    for service in SERVICES:
        ports = one(rendered, "Service", f"ucoder-{service}")["spec"]["ports"]
        assert "metrics" in {p["name"] for p in ports}


def test_dashboard_configmap_carries_the_dashboard_json(rendered: list[Manifest], scenario: str) -> None:
    wanted = scenario_values(scenario).get("monitoring", {}).get("dashboard", {})
    (config_map,) = find(rendered, "ConfigMap", "ucoder-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == wanted.get("namespace", NAMESPACE)
    source = json.loads((CHART / "dashboards" / "ucoder.json").read_text())
    assert json.loads(config_map["data"]["ucoder.json"]) == source
    assert source["panels"], "the dashboard has no panels"


def test_helm_tests_check_health_and_a_nats_round_trip(rendered: list[Manifest], scenario: str) -> None:
    pods = {p["metadata"]["name"]: p for p in find(rendered, "Pod")}
    assert set(pods) == {"ucoder-test-health", "ucoder-test-nats-roundtrip"}
    for pod in pods.values():
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "helm-test"
    health = pods["ucoder-test-health"]["spec"]["containers"][0]["command"]
    assert health[:4] == ["python", "-m", "ucoder_common.checks", "health"]
    # An orchestrator serving TLS answers health on its plaintext health-only port.
    ports = {s: 50052 if s == "orchestrator" and grpc_tls(scenario) else 50051 for s in SERVICES}
    assert [a for a in health if a.startswith("ucoder-")] == [f"ucoder-{s}:{ports[s]}" for s in SERVICES]
    roundtrip = pods["ucoder-test-nats-roundtrip"]["spec"]["containers"][0]
    assert roundtrip["command"][3] == "nats-roundtrip"
    assert "UCODER_NATS_URL" in {e["name"] for e in roundtrip["env"]}


def test_notes_say_how_to_trigger_an_iteration_through_a_port_forward() -> None:
    notes = render({})["ucoder/templates/NOTES.txt"]
    assert "kubectl -n ml port-forward svc/ucoder-orchestrator 50051:50051" in notes
    assert "UCODER_ORCHESTRATOR=127.0.0.1:50051" in notes
    assert "ucoder iterate" in notes
    assert "helm test ucoder -n ml" in notes
    unsandboxed = render({"executor": {"runtimeClassName": ""}})["ucoder/templates/NOTES.txt"]
    assert "NOT isolated" in unsandboxed


# ------------------------------------------------------------------------------ who may talk to whom


def _env(container: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in container.get("env", [])}


def _secret_ref(entry: Manifest) -> tuple[str, str]:
    ref = entry["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def _nats_clients(docs: list[Manifest]) -> dict[str, Manifest]:
    """Every container that talks to NATS: the services and the helm-test round trip, by pod name."""
    clients = {name: spec for name, spec in pod_specs(docs) if not name.endswith("-test-health")}
    assert len(clients) == len(SERVICES) + 1
    return clients


def test_defaults_carry_no_credential_and_no_tls() -> None:
    docs = objects(render({}))
    for name, spec in pod_specs(docs):
        env = _env(spec["containers"][0])
        assert not {
            "UCODER_NATS_TOKEN",
            "UCODER_NATS_USER",
            "UCODER_GRPC_TOKEN",
            "UCODER_GRPC_TLS_CERT",
        } & set(env)
        assert not {"nats-tls", "grpc-tls"} & {v["name"] for v in spec.get("volumes", [])}, name


def test_the_production_example_takes_every_credential_from_secrets() -> None:
    values = scenario_values("production")
    docs = objects(render(values))
    for name, spec in _nats_clients(docs).items():
        (container,) = spec["containers"]
        env = _env(container)
        # NATS: the token from the Secret (never a literal value), over TLS with the mounted CA.
        assert _secret_ref(env["UCODER_NATS_TOKEN"]) == ("ucoder-nats-auth", "token"), name
        assert "value" not in env["UCODER_NATS_TOKEN"]
        assert env["UCODER_NATS_URL"]["value"] == "tls://ucoder-nats:4222", name
        assert env["UCODER_NATS_TLS_CA"]["value"] == "/etc/ucoder/nats-tls/ca.crt"
        assert {"name": "nats-tls", "mountPath": "/etc/ucoder/nats-tls", "readOnly": True} in container[
            "volumeMounts"
        ]
        volume = next(v for v in spec["volumes"] if v["name"] == "nats-tls")
        assert volume["secret"]["secretName"] == "ucoder-nats-ca"
    for service, deployment in deployments(docs).items():
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = _env(container)
        # Every service checks the bearer token; only the orchestrator serves TLS.
        assert _secret_ref(env["UCODER_GRPC_TOKEN"]) == ("ucoder-grpc-token", "token"), service
        if service != "orchestrator":
            assert "UCODER_GRPC_TLS_CERT" not in env and "grpc-tls" not in {
                v["name"] for v in spec["volumes"]
            }
            continue
        assert env["UCODER_GRPC_TLS_CERT"]["value"] == "/etc/ucoder/grpc-tls/tls.crt"
        assert env["UCODER_GRPC_TLS_KEY"]["value"] == "/etc/ucoder/grpc-tls/tls.key"
        assert env["UCODER_GRPC_HEALTH_PORT"]["value"] == "50052"
        assert "UCODER_GRPC_TLS_CLIENT_CA" not in env
        volume = next(v for v in spec["volumes"] if v["name"] == "grpc-tls")
        assert volume["secret"]["secretName"] == "ucoder-orchestrator-tls"
    # The bundled NATS is told to require the same token, read from the same Secret.
    assert values["nats"]["config"]["merge"]["authorization"]["token"] == "<< $UCODER_NATS_TOKEN >>"
    server_env = values["nats"]["container"]["env"]["UCODER_NATS_TOKEN"]
    assert server_env["valueFrom"]["secretKeyRef"] == {"name": "ucoder-nats-auth", "key": "token"}


def test_nats_user_and_password_and_mutual_tls_come_from_secrets() -> None:
    docs = objects(
        render(
            {
                "nats": {"enabled": False},
                "externalNats": {"url": "tls://nats.infra:4222"},
                "natsAuth": {
                    "type": "user",
                    "existingSecret": "nats-user",
                    "userKey": "name",
                    "tls": {"enabled": True, "secretName": "nats-client", "clientCertificate": True},
                },
                "grpcAuth": {"tls": {"enabled": True, "secretName": "orch-tls", "clientCA": True}},
            }
        )
    )
    for name, spec in _nats_clients(docs).items():
        env = _env(spec["containers"][0])
        assert _secret_ref(env["UCODER_NATS_USER"]) == ("nats-user", "name"), name
        assert _secret_ref(env["UCODER_NATS_PASSWORD"]) == ("nats-user", "password"), name
        assert "UCODER_NATS_TOKEN" not in env
        assert env["UCODER_NATS_URL"]["value"] == "tls://nats.infra:4222"
        assert env["UCODER_NATS_TLS_CERT"]["value"] == "/etc/ucoder/nats-tls/tls.crt"
        assert env["UCODER_NATS_TLS_KEY"]["value"] == "/etc/ucoder/nats-tls/tls.key"
    orchestrator = _env(deployments(docs)["orchestrator"]["spec"]["template"]["spec"]["containers"][0])
    assert orchestrator["UCODER_GRPC_TLS_CLIENT_CA"]["value"] == "/etc/ucoder/grpc-tls/ca.crt"
    assert "UCODER_GRPC_TOKEN" not in orchestrator  # mutual TLS alone
    assert not find(docs, "NetworkPolicy", "ucoder-nats-ingress")  # an external NATS is not ours to fence


def _selects(selector: Manifest, labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def test_nats_accepts_only_ucoder_pods_and_its_own_keda_and_prometheus_on_the_monitor(
    rendered: list[Manifest], scenario: str
) -> None:
    if not bundled_nats(scenario):
        assert not find(rendered, "NetworkPolicy", "ucoder-nats-ingress")
        return
    values = scenario_values(scenario)
    policy = one(rendered, "NetworkPolicy", "ucoder-nats-ingress")["spec"]
    nats_pod = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": RELEASE}
    assert policy["podSelector"] == {"matchLabels": nats_pod} and policy["policyTypes"] == ["Ingress"]
    client_rule, *monitor_rules = policy["ingress"]
    assert client_rule["ports"] == [{"port": 4222, "protocol": "TCP"}]
    # Every pod of this release that talks to NATS is admitted on the client port ...
    for name, _spec in _nats_clients(rendered).items():
        pod = next(d for d in rendered if d["metadata"]["name"] == name)
        labels = (
            pod["spec"]["template"]["metadata"]["labels"]
            if pod["kind"] == "Deployment"
            else pod["metadata"]["labels"]
        )
        assert any(_selects(peer["podSelector"], labels) for peer in client_rule["from"]), name
    # ... and so are NATS's own pods (nats-box); nothing from other namespaces or releases.
    assert any(_selects(peer["podSelector"], nats_pod) for peer in client_rule["from"])
    other_release = {"app.kubernetes.io/part-of": "ucoder", "app.kubernetes.io/instance": "other"}
    assert not any(_selects(peer["podSelector"], other_release) for peer in client_rule["from"])
    assert all(set(peer) == {"podSelector"} for peer in client_rule["from"])
    # The monitoring port: the KEDA operator only when KEDA scales the executor, and Prometheus.
    scaling = values.get("executor", {}).get("autoscaling", {})
    keda = scaling.get("enabled") and scaling.get("kind", "keda") == "keda"
    by_port = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in monitor_rules}
    keda_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "keda-operator"}},
    }
    assert (by_port.get((8222,)) == [keda_peer]) if keda else ((8222,) not in by_port)
    assert by_port[(8222, 7777)] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_the_keda_account_is_a_value() -> None:
    docs = objects(
        render({"executor": {"autoscaling": {"enabled": True, "kind": "keda", "natsAccount": "ACCOUNT_A"}}})
    )
    (trigger,) = one(docs, "ScaledObject", "ucoder-executor")["spec"]["triggers"]
    assert trigger["metadata"]["account"] == "ACCOUNT_A"


def test_credentials_without_their_secret_fail_naming_the_value() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"natsAuth\.existingSecret: name the Secret"):
        render({"natsAuth": {"type": "token"}})
    with pytest.raises(helm.HelmRenderError, match=r"natsAuth\.tls\.secretName"):
        render({"natsAuth": {"tls": {"enabled": True}}})
    with pytest.raises(helm.HelmRenderError, match=r"grpcAuth\.tls\.secretName"):
        render({"grpcAuth": {"tls": {"enabled": True}}})


# ------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"executor": {"replicaz": 3}}, "additional properties 'replicaz' not allowed"),
        ({"bogus": True}, "additional properties 'bogus' not allowed"),
        ({"executor": {"replicas": -1}}, "/executor/replicas': minimum: got -1, want 0"),
        ({"sampler": {"gpus": "two"}}, "/sampler/gpus': got string, want integer"),
        ({"executor": {"autoscaling": {"kind": "vpa"}}}, "/executor/autoscaling/kind"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser': minimum: got 0, want 1"),
        ({"externalNats": {"url": "http://nats:4222"}}, "/externalNats/url"),
        ({"orchestrator": {"settings": {"log-level": "x"}}}, "/orchestrator/settings"),
        ({"cache": {"type": "hostPath"}}, "/cache/type"),
        ({"natsAuth": {"type": "creds"}}, "/natsAuth/type"),
        ({"grpcAuth": {"token": {"secret": "x"}}}, "additional properties 'secret' not allowed"),
        ({"networkPolicy": {"natsMonitorPort": 0}}, "/networkPolicy/natsMonitorPort"),
        ({"executor": {"autoscaling": {"natsAccount": ""}}}, "/executor/autoscaling/natsAccount"),
    ],
)
def test_bad_values_are_refused_naming_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert message in str(caught.value)


def test_inconsistent_values_fail_with_a_readable_message() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"minReplicas \(5\) must not exceed maxReplicas \(2\)"):
        render({"executor": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}})
    with pytest.raises(helm.HelmRenderError, match=r"set nats\.enabled=true, externalNats\.url"):
        render({"nats": {"enabled": False}})
