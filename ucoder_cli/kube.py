"""`ucoder scale` and `ucoder status --kubernetes`: the CLI acting on a Helm release of the chart.

Objects are found the way charts/ucoder labels them (app.kubernetes.io/part-of=ucoder,
instance=<release>, component=<service>), not by name, so any release name works.

The first half is pure: plain API objects (JSON dicts as the API server sends them) in,
plans and rows out; no client, no network. The second half (`connect`, `Cluster`) is the
only code that talks to the API server, through the `kubernetes` client; it returns the
same plain dicts and turns every failure into a one-line `KubeError`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the client is imported when a command needs it: the local CLI stays fast
    from kubernetes.client import ApiClient

Obj = Mapping[str, Any]

PART_OF = "ucoder"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
DEFAULT_RELEASE = "ucoder"
# Display order: the pipeline's order, the orchestrator first.
SERVICES: tuple[str, ...] = (
    "orchestrator",
    "problemgen",
    "testsynth",
    "sampler",
    "executor",
    "clusterer",
    "trainer",
)
# Stateless CPU workers: each replica pulls jobs from its stage's durable work-queue consumer, so
# extra replicas share the work. Not scalable here: the orchestrator (it owns the iteration state
# machine and runs stages in-process; a second one would drive iterations twice), and sampler and
# trainer (each replica claims a whole GPU on the GPU pool: size those with the chart's values).
SCALABLE: tuple[str, ...] = ("executor", "problemgen", "testsynth", "clusterer")
NOT_SCALABLE_WHY = {
    "orchestrator": "it owns the iteration state machine and must run as a single replica",
    "sampler": "each replica holds a GPU; change its replicas in the chart's values and `helm upgrade`",
    "trainer": "each replica holds a GPU; change its replicas in the chart's values and `helm upgrade`",
}
KEDA = ("keda.sh", "v1alpha1", "scaledobjects")
# Defaults the API servers apply when a field is absent.
DEPLOYMENT_DEFAULT_REPLICAS = 1
KEDA_DEFAULT_MIN, KEDA_DEFAULT_MAX = 0, 100
HPA_DEFAULT_MIN = 1
MERGE_PATCH = "application/merge-patch+json"
IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
HOME_KUBECONFIG = Path("~/.kube/config")
REQUEST_TIMEOUT_S = (10.0, 60.0)  # connect, read


class KubeError(Exception):
    """A failure shown as one line `ucoder: <message>`; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(" ".join(message.split()))  # one line
        self.code = code


# ---------------------------------------------------------------------------- pure: objects


def _get(obj: Obj | None, *path: str) -> Any:
    """obj[path[0]][path[1]]..., None where any step is missing."""
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def name_of(obj: Obj) -> str:
    return str(_get(obj, "metadata", "name") or "")


def labels_of(obj: Obj) -> Mapping[str, str]:
    labels = _get(obj, "metadata", "labels")
    return labels if isinstance(labels, Mapping) else {}


def release_labels(release: str, component: str | None = None) -> dict[str, str]:
    """The labels the chart puts on a release's objects (of one service when `component` is given)."""
    labels = {LABEL_PART_OF: PART_OF, LABEL_INSTANCE: release}
    if component is not None:
        labels[LABEL_COMPONENT] = component
    return labels


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def has_labels(obj: Obj, labels: Mapping[str, str]) -> bool:
    own = labels_of(obj)
    return all(own.get(k) == v for k, v in labels.items())


def releases_in(objects: Iterable[Obj]) -> list[str]:
    """The ucoder releases that objects belong to (for "did you mean" hints)."""
    found = {
        labels_of(o).get(LABEL_INSTANCE, "") for o in objects if labels_of(o).get(LABEL_PART_OF) == PART_OF
    }
    return sorted(r for r in found if r)


def parse_count(text: str, what: str) -> int:
    """A replica count typed by the user: a non-negative integer."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise KubeError(f"{what} must be a whole number of replicas, not {text!r}") from None
    if value < 0:
        raise KubeError(f"{what} must be 0 or more, not {value}")
    return value


def check_scalable(service: str) -> None:
    if service in SCALABLE:
        return
    if service in NOT_SCALABLE_WHY:
        raise KubeError(f"{service} cannot be scaled with `ucoder scale`: {NOT_SCALABLE_WHY[service]}")
    raise KubeError(f"unknown service {service!r}; scalable services: {', '.join(SCALABLE)}")


def find_deployment(deployments: Sequence[Obj], release: str, service: str, namespace: str) -> Obj:
    """The one Deployment of `service` in `release`; `deployments` may hold other releases' too."""
    wanted = release_labels(release, service)
    matches = [d for d in deployments if has_labels(d, wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(name_of(d) for d in matches))
        raise KubeError(
            f"several {service} deployments for release {release} in namespace {namespace}: {names}"
        )
    raise KubeError(
        f"no {service} deployment found for release {release} in namespace {namespace} "
        f"(labels {label_selector(wanted)}); {release_hint(deployments, release)}"
    )


def release_hint(deployments: Sequence[Obj], release: str) -> str:
    """What to try when `release` is not where the user looked."""
    releases = releases_in(deployments)
    if release in releases:
        return "the release is there without it"
    if releases:
        return f"ucoder releases there: {', '.join(releases)} (pass --release)"
    return "no ucoder release there (pass --namespace or --context, or install the chart)"


@dataclass(frozen=True)
class Autoscaler:
    """A KEDA ScaledObject or an autoscaling/v2 HPA that sets a Deployment's replicas."""

    kind: str  # "ScaledObject" | "HorizontalPodAutoscaler"
    name: str
    min_replicas: int
    max_replicas: int

    @property
    def is_keda(self) -> bool:
        return self.kind == "ScaledObject"

    @property
    def min_field(self) -> str:
        return "minReplicaCount" if self.is_keda else "minReplicas"

    @property
    def max_field(self) -> str:
        return "maxReplicaCount" if self.is_keda else "maxReplicas"

    @property
    def bounds(self) -> str:
        """ "KEDA 1-10" / "HPA 2-8"."""
        return f"{'KEDA' if self.is_keda else 'HPA'} {self.min_replicas}-{self.max_replicas}"


def _targets(autoscaler: Obj, deployment: Obj) -> bool:
    """Whether `autoscaler` scales `deployment`: by the chart's labels or by its scaleTargetRef."""
    ref = _get(autoscaler, "spec", "scaleTargetRef") or {}
    by_ref = ref.get("name") == name_of(deployment) and ref.get("kind", "Deployment") == "Deployment"
    wanted = {k: labels_of(deployment).get(k) for k in (LABEL_PART_OF, LABEL_INSTANCE, LABEL_COMPONENT)}
    by_labels = all(wanted.values()) and has_labels(autoscaler, {k: str(v) for k, v in wanted.items()})
    return by_ref or by_labels


def _owned_by_scaled_object(hpa: Obj) -> bool:
    # KEDA runs a ScaledObject through an HPA of its own (keda-hpa-<name>); patching that HPA is
    # undone by KEDA, so the ScaledObject is what gets patched.
    owners = _get(hpa, "metadata", "ownerReferences") or []
    by_owner = any(o.get("kind") == "ScaledObject" for o in owners)
    return by_owner or "scaledobject.keda.sh/name" in labels_of(hpa)


def autoscaler_for(deployment: Obj, scaled_objects: Sequence[Obj], hpas: Sequence[Obj]) -> Autoscaler | None:
    """The autoscaler of `deployment` (a ScaledObject before an HPA), None when it has none."""
    keda = [s for s in scaled_objects if _targets(s, deployment)]
    hpa = [h for h in hpas if _targets(h, deployment) and not _owned_by_scaled_object(h)]
    for kind, found in (("ScaledObject", keda), ("HorizontalPodAutoscaler", hpa)):
        if len(found) > 1:
            names = ", ".join(sorted(name_of(o) for o in found))
            raise KubeError(f"several {kind}s target deployment {name_of(deployment)}: {names}")
    if keda:
        spec = keda[0].get("spec") or {}
        return Autoscaler(
            "ScaledObject",
            name_of(keda[0]),
            int(spec.get("minReplicaCount", KEDA_DEFAULT_MIN)),
            int(spec.get("maxReplicaCount", KEDA_DEFAULT_MAX)),
        )
    if hpa:
        spec = hpa[0].get("spec") or {}
        return Autoscaler(
            "HorizontalPodAutoscaler",
            name_of(hpa[0]),
            int(spec.get("minReplicas", HPA_DEFAULT_MIN)),
            int(spec.get("maxReplicas", 0)),
        )
    return None


def desired_replicas(deployment: Obj) -> int:
    value = _get(deployment, "spec", "replicas")
    return DEPLOYMENT_DEFAULT_REPLICAS if value is None else int(value)


# ---------------------------------------------------------------------------- pure: scale


@dataclass(frozen=True)
class ScalePlan:
    """What `ucoder scale` sends: a merge patch for one object (None when nothing changes)."""

    kind: str  # "Deployment" (its scale subresource) | "ScaledObject" | "HorizontalPodAutoscaler"
    name: str
    namespace: str
    changes: tuple[tuple[str, int, int], ...]  # (field, old, new)
    patch: dict[str, Any] | None

    def describe(self) -> str:
        """One line: "ScaledObject ucoder-executor in namespace ml: maxReplicaCount 10 -> 4, ..."."""
        parts = [
            f"{f} {old} -> {new}" + (" (unchanged)" if old == new else "") for f, old, new in self.changes
        ]
        tail = "" if self.patch else "; nothing to change"
        return f"{self.kind} {self.name} in namespace {self.namespace}: {', '.join(parts)}{tail}"


def plan_scale(
    deployment: Obj,
    autoscaler: Autoscaler | None,
    replicas: int,
    min_replicas: int | None,
    namespace: str,
) -> ScalePlan:
    """The patch that gives the service `replicas` replicas, or an autoscaler maximum of `replicas`.

    With an autoscaler, `min_replicas` sets its minimum; when it is None the minimum is kept,
    lowered to `replicas` when above it (the bounds must stay ordered).
    """
    if replicas < 0 or (min_replicas is not None and min_replicas < 0):
        raise KubeError("replica counts must be 0 or more")
    if autoscaler is None:
        if min_replicas is not None:
            raise KubeError(
                f"--min applies to an autoscaled deployment; {name_of(deployment)} has no "
                "KEDA ScaledObject or HPA (set N alone to set its replicas)"
            )
        old = desired_replicas(deployment)
        patch = {"spec": {"replicas": replicas}} if old != replicas else None
        return ScalePlan("Deployment", name_of(deployment), namespace, (("replicas", old, replicas),), patch)

    what = f"{autoscaler.kind} {autoscaler.name}"
    if replicas < 1:
        raise KubeError(
            f"{what} scales deployment {name_of(deployment)}: N is its maximum and must be at least 1"
        )
    new_min = min(autoscaler.min_replicas, replicas) if min_replicas is None else min_replicas
    if new_min > replicas:
        raise KubeError(f"--min {new_min} is above the maximum {replicas}")
    if not autoscaler.is_keda and new_min < 1:
        raise KubeError(f"{what}: an HPA's minimum must be at least 1 (KEDA can scale to 0, an HPA cannot)")
    changes = (
        (autoscaler.max_field, autoscaler.max_replicas, replicas),
        (autoscaler.min_field, autoscaler.min_replicas, new_min),
    )
    spec = {f: new for f, old, new in changes if old != new}
    return ScalePlan(autoscaler.kind, autoscaler.name, namespace, changes, {"spec": spec} if spec else None)


# ---------------------------------------------------------------------------- pure: status


@dataclass(frozen=True)
class PodStatus:
    """One pod as `ucoder status --kubernetes` shows it."""

    name: str
    state: str  # the phase, or what keeps it from running (CrashLoopBackOff, Terminating, ...)
    ready: int  # containers ready
    containers: int
    restarts: int
    node: str
    age_s: float | None


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the release: its Deployment's replica counts, autoscaler and pods."""

    service: str
    deployment: str  # "" when the release has no Deployment for it
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    autoscaler: Autoscaler | None = None
    pods: tuple[PodStatus, ...] = field(default=())

    @property
    def state(self) -> str:
        if not self.deployment:
            return "missing"
        if self.desired == 0:
            # KEDA with a minimum of 0 stops idle executors on purpose; by hand it is an outage.
            scaled_to_zero_by_design = self.autoscaler is not None and self.autoscaler.min_replicas == 0
            return "idle" if scaled_to_zero_by_design else "scaled to 0"
        if self.ready >= self.desired and self.available >= self.desired:
            return "ready"
        return "not ready"

    @property
    def ok(self) -> bool:
        return self.state in ("ready", "idle")


def _parse_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def pod_state(pod: Obj) -> str:
    """Like kubectl's STATUS column: Terminating, Init:<reason>, a container's waiting reason, the phase."""
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for init in status.get("initContainerStatuses") or []:
        reason = _get(init, "state", "waiting", "reason")
        if reason:
            return f"Init:{reason}"
    phase = str(status.get("phase") or "Unknown")
    for container in status.get("containerStatuses") or []:
        reason = _get(container, "state", "waiting", "reason") or (
            _get(container, "state", "terminated", "reason") if phase != "Succeeded" else None
        )
        if reason:
            return str(reason)
    return phase


def pod_status(pod: Obj, now: dt.datetime) -> PodStatus:
    statuses = _get(pod, "status", "containerStatuses") or []
    containers = len(_get(pod, "spec", "containers") or []) or len(statuses)
    created = _parse_time(_get(pod, "metadata", "creationTimestamp"))
    return PodStatus(
        name=name_of(pod),
        state=pod_state(pod),
        ready=sum(1 for c in statuses if c.get("ready")),
        containers=containers,
        restarts=sum(int(c.get("restartCount") or 0) for c in statuses),
        node=str(_get(pod, "spec", "nodeName") or ""),
        age_s=(now - created).total_seconds() if created is not None else None,
    )


def _is_hook(pod: Obj) -> bool:
    # `helm test` pods carry the release's labels too; they are not part of a service.
    annotations = _get(pod, "metadata", "annotations") or {}
    return "helm.sh/hook" in annotations


def service_statuses(
    release: str,
    deployments: Sequence[Obj],
    pods: Sequence[Obj],
    scaled_objects: Sequence[Obj],
    hpas: Sequence[Obj],
    now: dt.datetime,
) -> list[ServiceStatus]:
    """One row per service (the seven, then any other component the release has), in pipeline order."""
    mine = [d for d in deployments if has_labels(d, release_labels(release))]
    by_component: dict[str, list[Obj]] = {}
    for d in mine:
        by_component.setdefault(labels_of(d).get(LABEL_COMPONENT, ""), []).append(d)
    extra = sorted(c for c in by_component if c and c not in SERVICES)
    rows: list[ServiceStatus] = []
    for service in (*SERVICES, *extra):
        for_service = sorted(by_component.get(service, []), key=name_of)
        service_pods = tuple(
            sorted(
                (
                    pod_status(p, now)
                    for p in pods
                    if has_labels(p, release_labels(release, service)) and not _is_hook(p)
                ),
                key=lambda p: p.name,
            )
        )
        if not for_service:
            rows.append(ServiceStatus(service, "", pods=service_pods))
            continue
        for d in for_service:  # one per service from the chart; more are shown, not merged
            status = d.get("status") or {}
            rows.append(
                ServiceStatus(
                    service=service,
                    deployment=name_of(d),
                    desired=desired_replicas(d),
                    ready=int(status.get("readyReplicas") or 0),
                    available=int(status.get("availableReplicas") or 0),
                    updated=int(status.get("updatedReplicas") or 0),
                    autoscaler=autoscaler_for(d, scaled_objects, hpas),
                    pods=service_pods,
                )
            )
    return rows


# ---------------------------------------------------------------------------- pure: configuration


@dataclass(frozen=True)
class KubeOptions:
    """The flags shared by the cluster commands."""

    release: str = DEFAULT_RELEASE
    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None


@dataclass(frozen=True)
class ConfigChoice:
    """Where the client's credentials come from: a kubeconfig file (list) or the pod's service account."""

    in_cluster: bool
    kubeconfig: str = ""  # a path, or $KUBECONFIG's os.pathsep-separated list

    def describe(self) -> str:
        return "in-cluster service account" if self.in_cluster else f"kubeconfig {self.kubeconfig}"


def choose_config(opts: KubeOptions, environ: Mapping[str, str], home_kubeconfig: Path) -> ConfigChoice:
    """--kubeconfig, else $KUBECONFIG, else in-cluster (in a pod, without --context), else ~/.kube/config."""
    if opts.kubeconfig:
        return ConfigChoice(False, opts.kubeconfig)
    if environ.get("KUBECONFIG"):
        return ConfigChoice(False, environ["KUBECONFIG"])
    if environ.get("KUBERNETES_SERVICE_HOST") and not opts.context:
        return ConfigChoice(True)
    if home_kubeconfig.is_file():
        return ConfigChoice(False, str(home_kubeconfig))
    raise KubeError(
        f"no Kubernetes configuration: pass --kubeconfig, set $KUBECONFIG or create {home_kubeconfig} "
        "(inside a pod, KUBERNETES_SERVICE_HOST selects the service account)"
    )


def context_namespace(contexts: Sequence[Obj], current: Obj | None, wanted: str | None) -> str | None:
    """The namespace of the kubeconfig context in use (--context, else the current one)."""
    context = current
    if wanted:
        context = next((c for c in contexts if c.get("name") == wanted), None)
    ns = _get(context, "context", "namespace")
    return str(ns) if ns else None


# ---------------------------------------------------------------------------- I/O: the API server


def _api_message(exc: Any) -> str:
    """The `message` of the Status an API server sends with an error, else its HTTP reason."""
    try:
        body = json.loads(exc.body or "")
        message = body.get("message") if isinstance(body, dict) else None
    except (TypeError, ValueError):
        message = None
    return str(message or exc.reason or "no details")


def _network_reason(exc: BaseException) -> str:
    """Why a request got no answer, from the chain of causes: "Connection refused", "timed out"."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.strerror:
            return e.strerror
        if "Timeout" in type(e).__name__:  # urllib3's connect/read timeouts, socket timeouts
            return "timed out"
        reason = getattr(e, "reason", None)
        todo.extend([e.__cause__, e.__context__, reason if isinstance(reason, BaseException) else None])
    return type(exc).__name__


class Cluster:
    """The few API calls the CLI makes, returning plain JSON dicts (the API's wire form)."""

    def __init__(self, api: ApiClient, namespace: str, source: str) -> None:
        from kubernetes import client

        self.api = api
        self.namespace = namespace
        self.source = source
        self.server = str(api.configuration.host)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.custom = client.CustomObjectsApi(api)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, what: str, call: Callable[[], Any], missing_ok: bool = False) -> Any:
        """Run one request; `what` names it in errors ("list deployments"). 404 -> None if `missing_ok`."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        try:
            return call()
        except ApiException as exc:
            if exc.status == 404 and missing_ok:
                return None
            where = f"{what} in namespace {self.namespace}"
            if exc.status == 401:
                raise KubeError(
                    f"the API server at {self.server} rejected the credentials from {self.source} ({where})"
                ) from None
            if exc.status == 403:
                raise KubeError(f"forbidden: cannot {where}: {_api_message(exc)}") from None
            raise KubeError(f"cannot {where}: {exc.status} {exc.reason}: {_api_message(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(
                f"cannot reach the Kubernetes API at {self.server} ({_network_reason(exc)}); "
                f"check the cluster and {self.source}"
            ) from None

    def _items(self, what: str, call: Callable[[], Any], missing_ok: bool = False) -> list[dict[str, Any]]:
        response = self._call(what, call, missing_ok)
        if response is None:
            return []
        # Lists arrive as a urllib3 response (`_preload_content=False`): plain JSON, no model classes.
        body = response if isinstance(response, dict) else json.loads(response.data)
        return list(body.get("items") or [])

    def deployments(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return self._items(
            "list deployments",
            lambda: self.apps.list_namespaced_deployment(
                self.namespace,
                label_selector=label_selector(labels),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
        )

    def pods(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return self._items(
            "list pods",
            lambda: self.core.list_namespaced_pod(
                self.namespace,
                label_selector=label_selector(labels),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT_S,
            ),
        )

    def scaled_objects(self) -> list[dict[str, Any]]:
        """The namespace's KEDA ScaledObjects; none when KEDA's CRD is not installed (404)."""
        group, version, plural = KEDA
        return self._items(
            "list KEDA scaledobjects",
            lambda: self.custom.list_namespaced_custom_object(
                group, version, self.namespace, plural, _request_timeout=REQUEST_TIMEOUT_S
            ),
            missing_ok=True,
        )

    def hpas(self) -> list[dict[str, Any]]:
        return self._items(
            "list horizontalpodautoscalers",
            lambda: self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                self.namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_S
            ),
            missing_ok=True,
        )

    def apply(self, plan: ScalePlan) -> None:
        """Send a plan's merge patch (explicitly merge-patch: CRDs reject strategic merge patches)."""
        if plan.patch is None:
            return
        body = plan.patch
        options: dict[str, Any] = {
            "_content_type": MERGE_PATCH,
            "_preload_content": False,
            "_request_timeout": REQUEST_TIMEOUT_S,
        }
        if plan.kind == "Deployment":  # the scale subresource, as `kubectl scale` does
            self._call(
                f"patch deployments/{plan.name}/scale",
                lambda: self.apps.patch_namespaced_deployment_scale(
                    plan.name, self.namespace, body, **options
                ),
            )
        elif plan.kind == "ScaledObject":
            group, version, plural = KEDA
            self._call(
                f"patch scaledobjects/{plan.name}",
                lambda: self.custom.patch_namespaced_custom_object(
                    group, version, self.namespace, plural, plan.name, body, **options
                ),
            )
        else:
            self._call(
                f"patch horizontalpodautoscalers/{plan.name}",
                lambda: self.autoscaling.patch_namespaced_horizontal_pod_autoscaler(
                    plan.name, self.namespace, body, **options
                ),
            )


def connect(opts: KubeOptions, environ: Mapping[str, str] | None = None) -> Cluster:
    """A client for the cluster `opts` names, and the namespace to act in."""
    import yaml
    from kubernetes import client, config

    environ = os.environ if environ is None else environ
    choice = choose_config(opts, environ, HOME_KUBECONFIG.expanduser())
    configuration = client.Configuration()
    namespace = opts.namespace
    try:
        if choice.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
            if not namespace and IN_CLUSTER_NAMESPACE_FILE.is_file():
                namespace = IN_CLUSTER_NAMESPACE_FILE.read_text(encoding="utf-8").strip()
        else:
            paths = [p for p in choice.kubeconfig.split(os.pathsep) if p]
            missing = [p for p in paths if not Path(p).expanduser().is_file()]
            if missing and len(missing) == len(paths):
                raise KubeError(f"kubeconfig {choice.kubeconfig}: no such file")
            config.load_kube_config(
                config_file=choice.kubeconfig,
                context=opts.context,
                client_configuration=configuration,
                persist_config=False,
            )
            if not namespace:
                contexts, current = config.list_kube_config_contexts(config_file=choice.kubeconfig)
                namespace = context_namespace(contexts, current, opts.context)
    except config.ConfigException as exc:
        raise KubeError(f"{choice.describe()}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KubeError(f"{choice.describe()}: not valid YAML{where}") from None
    except (OSError, ValueError) as exc:  # an unreadable file, a malformed entry
        raise KubeError(f"{choice.describe()}: cannot load ({exc})") from None
    return Cluster(client.ApiClient(configuration), namespace or "default", choice.describe())


# ---------------------------------------------------------------------------- commands' I/O


def scale(opts: KubeOptions, service: str, replicas_text: str, min_text: str | None) -> str:
    """`ucoder scale SERVICE N [--min M]`: validate, read, plan, patch; returns the line to print."""
    check_scalable(service)
    replicas = parse_count(replicas_text, "N")
    min_replicas = parse_count(min_text, "--min") if min_text is not None else None
    if min_replicas is not None and min_replicas > replicas:
        raise KubeError(f"--min {min_replicas} is above N {replicas}")
    with connect(opts) as cluster:
        # All of the namespace's ucoder deployments: the wanted one, or other releases for the hint.
        deployments = cluster.deployments({LABEL_PART_OF: PART_OF})
        deployment = find_deployment(deployments, opts.release, service, cluster.namespace)
        autoscaler = autoscaler_for(deployment, cluster.scaled_objects(), cluster.hpas())
        plan = plan_scale(deployment, autoscaler, replicas, min_replicas, cluster.namespace)
        cluster.apply(plan)
    return f"{service}: {plan.describe()}"


@dataclass(frozen=True)
class ReleaseStatus:
    release: str
    namespace: str
    server: str
    services: list[ServiceStatus]


def release_status(opts: KubeOptions, now: dt.datetime | None = None) -> ReleaseStatus:
    """`ucoder status --kubernetes`: the release's Deployments, autoscalers and pods."""
    with connect(opts) as cluster:
        deployments = cluster.deployments({LABEL_PART_OF: PART_OF})
        if not any(has_labels(d, release_labels(opts.release)) for d in deployments):
            raise KubeError(
                f"no deployments found for release {opts.release} in namespace {cluster.namespace}; "
                + release_hint(deployments, opts.release)
            )
        pods = cluster.pods(release_labels(opts.release))
        rows = service_statuses(
            opts.release,
            deployments,
            pods,
            cluster.scaled_objects(),
            cluster.hpas(),
            now or dt.datetime.now(dt.UTC),
        )
        return ReleaseStatus(opts.release, cluster.namespace, cluster.server, rows)
