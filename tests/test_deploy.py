"""Tests of the deployment kit: deploy/compose/, deploy/kubernetes/ and the guide docs/deploy.md.

The container image itself is tested in tests/test_packaging.py. Kubernetes manifests are
rendered by a small kustomize subset below (checked against `kubectl kustomize` where kubectl
exists) and validated offline with kubernetes-validate.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import with_secret_files
from tests.test_packaging import healthcheck, instructions
from trtc_exporter import __version__
from trtc_exporter.config.model import parse_config_text

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS_YML = ROOT / "deploy" / "prometheus.yml"
ALERTMANAGER_YML = ROOT / "deploy" / "alertmanager.yml"
K8S = ROOT / "deploy" / "kubernetes"
K8S_TREES = {"base": K8S / "base", "overlay": K8S / "overlays" / "example",
             "ha": K8S / "overlays" / "ha"}
EXE = "trtc-transcription-exporter"
CONFIG_KEY = "trtc-exporter.yml"
# The oldest Kubernetes release the manifests promise to work on, and the newest schema shipped.
K8S_VERSIONS = ["1.28.0", kubernetes_validate.latest_version()]


# -- Compose ----------------------------------------------------------------------------------

def binds(service: str) -> dict[str, Path]:
    """Container path → host path of a service's bind mounts (host paths resolved); every bind
    is read-only. Named volumes (data a service keeps, e.g. Redis' append-only file) are not
    binds: they must be declared under the top-level ``volumes:``."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith((".", "/")):
            assert source in COMPOSE.get("volumes", {}), f"{service}: volume {source} undeclared"
            continue
        assert mode == ["ro"], f"{service}: mount {volume} read-only"
        mounts[target] = (COMPOSE_DIR / source).resolve()
    return mounts


def test_redis_keeps_its_data_in_a_named_volume() -> None:
    """The HA profile's Redis writes its append-only file to a volume, not a tmpfs: the shared
    target set survives a container restart."""
    assert "redis-data:/data" in SERVICES["redis"]["volumes"]
    assert "tmpfs" not in SERVICES["redis"]


def listen_port(service: str) -> int:
    """The port a service listens on: its --web.listen-address flag, else the image's EXPOSE."""
    for arg in SERVICES[service].get("command", []):
        if arg.startswith("--web.listen-address="):
            return int(arg.rpartition(":")[2])
    assert SERVICES[service]["image"].startswith(EXE)
    return int(instructions("EXPOSE")[0])


def published(service: str) -> list[int]:
    """Container ports a service publishes (host side bound to 127.0.0.1)."""
    ports = []
    for spec in SERVICES[service].get("ports", []):
        host, _, container = spec.rpartition(":")
        assert host.startswith("127.0.0.1:"), f"{service}: publish on 127.0.0.1 only"
        ports.append(int(container))
    return ports


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_compose_has_the_demo_stack() -> None:
    """The stack runs the exporter in demo mode with Prometheus, Alertmanager and Grafana."""
    assert {"trtc-exporter", "prometheus", "alertmanager", "grafana"} <= set(SERVICES)
    assert SERVICES["trtc-exporter"]["command"] == ["--demo"]
    build = SERVICES["trtc-exporter"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_images_are_pinned_by_tag() -> None:
    """Every image has an explicit tag (never latest); ours is the package version."""
    for name, service in SERVICES.items():
        image, _, tag = service["image"].rpartition(":")
        assert image and tag and tag != "latest", f"{name}: pin {service['image']} by tag"
        if image == EXE:
            assert tag == __version__


def test_grafana_image_matches_the_dashboards_target_version() -> None:
    """Grafana runs the version the dashboards are generated for (the SDK pin in pyproject)."""
    (sdk,) = PYPROJECT["project"]["optional-dependencies"]["dashboards"]
    assert SERVICES["grafana"]["image"] == "grafana/grafana:" + sdk.rpartition("!")[2]


def test_compose_mounts_exist_in_the_repository() -> None:
    """Every bind-mounted file is a file of this repository."""
    for name in SERVICES:
        for target, source in binds(name).items():
            assert source.is_file(), f"{name}: {source} (for {target}) does not exist"
            assert ROOT in source.parents


def test_compose_uses_the_e2e_configs_unchanged() -> None:
    """Prometheus and Alertmanager mount deploy/prometheus.yml and deploy/alertmanager.yml."""
    assert binds("prometheus")["/etc/prometheus/prometheus.yml"] == PROMETHEUS_YML
    assert binds("alertmanager")["/etc/alertmanager/alertmanager.yml"] == ALERTMANAGER_YML
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert ("--config.file=/etc/alertmanager/alertmanager.yml"
            in SERVICES["alertmanager"]["command"])


def test_prometheus_rule_files_resolve_to_the_bundled_rules() -> None:
    """Each rule_files entry, resolved in the container, is a mount of the same repository file."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text("utf-8"))
    mounts = binds("prometheus")
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        inside = os.path.normpath(PurePosixPath("/etc/prometheus") / rule_file)
        assert mounts.get(inside) == (PROMETHEUS_YML.parent / rule_file).resolve(), rule_file


def test_prometheus_targets_are_compose_services() -> None:
    """prometheus.yml's scrape and Alertmanager targets are service names on their ports."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text("utf-8"))
    scraped = [host_port(target) for job in config["scrape_configs"]
               for static in job["static_configs"] for target in static["targets"]]
    alerting = [host_port(target) for am in config["alerting"]["alertmanagers"]
                for static in am["static_configs"] for target in static["targets"]]
    assert ("trtc-exporter", listen_port("trtc-exporter")) in scraped
    assert alerting == [("alertmanager", listen_port("alertmanager"))]
    assert all(host in SERVICES for host, _ in scraped + alerting)


def test_alertmanager_webhook_reaches_the_receiver_service() -> None:
    """The webhook host of alertmanager.yml is the receiver's alias, and its script compiles."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text("utf-8"))
    urls = [hook["url"] for receiver in config["receivers"]
            for hook in receiver.get("webhook_configs", [])]
    receiver = SERVICES["alert-receiver"]
    aliases = receiver["networks"]["default"]["aliases"]
    (script,) = receiver["command"]
    port = re.search(r'HTTPServer\(\("", (\d+)\)', script)
    assert port
    for url in urls:
        host, _, rest = url.removeprefix("http://").partition(":")
        assert host in aliases and rest.startswith(f"{port[1]}/"), url
    compile(script, "alert-receiver", "exec")


def test_grafana_provisioning_matches_the_mounts() -> None:
    """Grafana's data source points at the Prometheus service and every dashboard is mounted."""
    mounts = binds("grafana")
    datasources = yaml.safe_load(mounts["/etc/grafana/provisioning/datasources/trtc.yml"]
                                 .read_text("utf-8"))
    (source,) = datasources["datasources"]
    assert source["url"] == f"http://prometheus:{listen_port('prometheus')}"
    providers = yaml.safe_load(mounts["/etc/grafana/provisioning/dashboards/trtc.yml"]
                               .read_text("utf-8"))
    (provider,) = providers["providers"]
    folder = provider["options"]["path"]
    mounted = {source.name for target, source in mounts.items()
               if target.startswith(folder + "/")}
    assert mounted == {path.name for path in (ROOT / "dashboards").glob("*.json")}
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home in mounts


def test_compose_ports_and_healthchecks_agree() -> None:
    """Each service publishes the port it listens on, and its health check asks that port."""
    for name in ("trtc-exporter", "prometheus", "alertmanager", "grafana"):
        port = 3000 if name == "grafana" else listen_port(name)
        assert published(name) == [port], name
        check = SERVICES[name]["healthcheck"]
        if "test" in check:
            assert f"http://127.0.0.1:{port}/" in " ".join(check["test"]), name
        else:  # the image's own HEALTHCHECK command, with compose's timings
            assert f"http://127.0.0.1:{port}/-/healthy" in healthcheck()[1][2]
    for name, service in SERVICES.items():
        for dependency, condition in service.get("depends_on", {}).items():
            needs_check = condition["condition"] == "service_healthy"
            assert not needs_check or not SERVICES[dependency].get("healthcheck", {}).get(
                "disable"), f"{name} waits for {dependency}, which has no health check"


def test_compose_exporter_runs_locked_down() -> None:
    """Containers of our image run with a read-only root, a /tmp tmpfs and no capabilities."""
    for name, service in SERVICES.items():
        if service["image"].startswith(EXE + ":"):
            assert service["read_only"] is True, name
            assert service["cap_drop"] == ["ALL"], name
            assert "no-new-privileges:true" in service["security_opt"], name
    assert SERVICES["trtc-exporter"]["tmpfs"] == ["/tmp"]


# -- Kubernetes: a kustomize subset -----------------------------------------------------------

def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]


def json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """Apply RFC 6902 add/replace/remove operations (the ones our patches use)."""
    for op in ops:
        *parents, last = [part.replace("~1", "/").replace("~0", "~")
                          for part in op["path"].split("/")[1:]]
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            if op["op"] == "add":
                node.insert(len(node) if last == "-" else int(last), op["value"])
            elif op["op"] == "replace":
                node[int(last)] = op["value"]
            else:
                del node[int(last)]
        elif op["op"] in ("add", "replace"):
            node[last] = op["value"]
        else:
            del node[last]


def matches(obj: dict[str, Any], target: dict[str, str]) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return all({"kind": obj["kind"], "name": obj["metadata"]["name"], "group": group}[key] == value
               for key, value in target.items())


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def kustomize_layer(directory: Path, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Kustomization or Component applied to the objects accumulated so far."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text("utf-8"))
    allowed = {"apiVersion", "kind", "resources", "components", "configMapGenerator",
               "patches", "images", "namespace"}
    assert set(spec) <= allowed, f"{directory}: this kustomize subset lacks {set(spec) - allowed}"
    for resource in spec.get("resources", []):
        path = directory / resource
        objects += kustomize_layer(path, []) if path.is_dir() else load_all(path)
    for component in spec.get("components", []):
        objects = kustomize_layer(directory / component, objects)
    for generator in spec.get("configMapGenerator", []):
        data = {}
        for entry in generator["files"]:
            key, _, source = entry.rpartition("=")
            data[key or entry] = (directory / (source or entry)).read_text("utf-8")
        existing = [o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == generator["name"]]
        if generator.get("behavior", "create") == "create":
            assert not existing
            objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": generator["name"]}, "data": data})
        else:
            existing[0]["data"] = data if generator["behavior"] == "replace" else {
                **existing[0]["data"], **data}
    for patch in spec.get("patches", []):
        for obj in objects:
            if matches(obj, patch["target"]):
                json_patch(obj, yaml.safe_load(patch["patch"]))
    for image in spec.get("images", []):
        for obj in objects:
            for container in containers(obj):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = (f"{image.get('newName', name)}:"
                                          f"{image.get('newTag', tag)}")
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization; generated ConfigMaps get a content hash suffix, as in kustomize."""
    objects = kustomize_layer(directory, [])
    renamed = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            digest = hashlib.sha256(json.dumps(obj["data"], sort_keys=True).encode()).hexdigest()
            renamed[obj["metadata"]["name"]] = obj["metadata"]["name"] + "-" + digest[:10]
            obj["metadata"]["name"] = renamed[obj["metadata"]["name"]]
    for obj in objects:
        for volume in obj.get("spec", {}).get("template", {}).get("spec", {}).get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = renamed[volume["configMap"]["name"]]
    return objects


RENDERED = {name: kustomize(path) for name, path in K8S_TREES.items()}


def of_kind(tree: str, kind: str) -> list[dict[str, Any]]:
    return [obj for obj in RENDERED[tree] if obj["kind"] == kind]


def exporters(tree: str, kind: str) -> list[dict[str, Any]]:
    """The exporter's objects of a kind (not the HA overlay's Redis)."""
    return [obj for obj in of_kind(tree, kind)
            if obj["metadata"]["labels"]["app.kubernetes.io/name"] == EXE]


def without_hash(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects sorted by kind and name, with ConfigMap hash suffixes cut off."""
    text = re.sub(r"(trtc-exporter-config)-[a-z0-9]{10}\b", r"\1", json.dumps(objects))
    return sorted(json.loads(text), key=lambda o: (o["kind"], o["metadata"]["name"]))


def shard_of(deployment: dict[str, Any]) -> tuple[int, int]:
    for arg in deployment["spec"]["template"]["spec"]["containers"][0]["args"]:
        if arg.startswith("--shard="):
            index, _, count = arg.removeprefix("--shard=").partition("/")
            return int(index), int(count)
    return 0, 1


def mounted_config(tree: str) -> str:
    (configmap,) = of_kind(tree, "ConfigMap")
    return str(configmap["data"][CONFIG_KEY])


# -- Kubernetes tests -------------------------------------------------------------------------

def test_prometheusrule_is_generated_from_alerts() -> None:
    """base/prometheusrule.yaml is exactly what deploy/kubernetes/generate.py makes of alerts/."""
    result = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    (rule,) = of_kind("base", "PrometheusRule")
    groups = [group for name in ("recording_rules.yml", "alerts.yml")
              for group in yaml.safe_load((ROOT / "alerts" / name).read_text("utf-8"))["groups"]]
    assert rule["spec"]["groups"] == groups


def test_every_manifest_is_part_of_a_kustomization() -> None:
    """Each YAML file under deploy/kubernetes/ is a kustomization or listed by one."""
    listed = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        listed.add(kustomization)
        spec = yaml.safe_load(kustomization.read_text("utf-8"))
        for entry in spec.get("resources", []) + spec.get("components", []):
            listed.add((kustomization.parent / entry).resolve())
        for generator in spec.get("configMapGenerator", []):
            listed.update((kustomization.parent / f.rpartition("=")[2]).resolve()
                          for f in generator["files"])
    files = {p.resolve() for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml")}
    assert files - {p.resolve() for p in listed} == set()


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_core_resources_pass_kubernetes_validate(tree: str, version: str) -> None:
    """Every core object validates strictly against the Kubernetes schemas (offline)."""
    core = [obj for obj in RENDERED[tree] if "monitoring.coreos.com" not in obj["apiVersion"]]
    assert {obj["kind"] for obj in core} >= {"Deployment", "Service", "ConfigMap"}
    for obj in core:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_servicemonitor_scrapes_the_service(tree: str) -> None:
    """The ServiceMonitor selects the Service by its labels and scrapes its named port."""
    (monitor,) = of_kind(tree, "ServiceMonitor")
    (service,) = exporters(tree, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings"}
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    interval, timeout = (int(endpoint[k].removesuffix("s")) for k in ("interval", "scrapeTimeout"))
    assert 0 < timeout <= interval


def test_servicemonitor_job_matches_the_rule_selector() -> None:
    """The ServiceMonitor sets the job label that trtcExporterSelector of alerts/config.yml
    selects, so TrtcExporterDown and TrtcExporterAbsent see the exporter's `up`."""
    settings = yaml.safe_load((ROOT / "alerts" / "config.yml").read_text("utf-8"))
    job = re.fullmatch(r'job="([^"]+)"', settings["trtcExporterSelector"])
    assert job, settings
    (monitor,) = of_kind("base", "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": job[1]}]


def test_prometheusrule_has_the_operator_structure() -> None:
    """PrometheusRule groups and rules use only fields the Prometheus Operator CRD defines."""
    (rule,) = of_kind("base", "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and set(rule["spec"]) == {"groups"}
    names = [group["name"] for group in rule["spec"]["groups"]]
    assert len(names) == len(set(names))
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}
        for entry in group["rules"]:
            assert ("record" in entry) != ("alert" in entry) and str(entry["expr"]).strip()
            allowed = {"record", "alert", "expr", "for", "keep_firing_for", "labels",
                       "annotations"}
            assert set(entry) <= allowed, entry


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_deployment_is_locked_down(tree: str) -> None:
    """Pods run as the image's non-root uid, read-only, without capabilities, seccomp default."""
    (user,) = instructions("USER")
    for deployment in of_kind(tree, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" \
            == user
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_deployment_probes_ports_and_resources(tree: str) -> None:
    """Probes ask /-/healthy and /-/ready on the exposed port; resources are the sized ones."""
    for deployment in exporters(tree, "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (port,) = container["ports"]
        assert port["containerPort"] == int(instructions("EXPOSE")[0])
        assert "--web.listen-address=:9877" in container["args"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy",
                                                         "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready",
                                                          "port": port["name"]}
        assert container["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                          "limits": {"cpu": "500m", "memory": "256Mi"}}
        name, _, tag = container["image"].rpartition(":")
        assert name.endswith(EXE) and tag == __version__


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_credentials_are_secret_files_named_by_the_config(tree: str) -> None:
    """Keys come from a mounted Secret whose files the config names; no env values anywhere."""
    config = parse_config_text(mounted_config(tree))
    for deployment in exporters(tree, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert "env" not in container and "envFrom" not in container
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        (secret,) = [v for v in pod["volumes"]
                     if v.get("secret", {}).get("secretName") == "trtc-exporter-credentials"]
        files = {f"{mounts[secret['name']]}/{item['path']}" for item in secret["secret"]["items"]}
        creds = config.api.credentials
        assert {creds.secret_id_file, creds.secret_key_file} == files
        (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
        config_file = f"{mounts[config_volume['name']]}/{CONFIG_KEY}"
        assert f"--config.file={config_file}" in container["args"]
    assert of_kind(tree, "Secret") == []


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_configmap_config_passes_config_check(tree: str, tmp_path: Path) -> None:
    """The ConfigMap's config passes `--config.check` (with its Secret's files present)."""
    text, env = with_secret_files(mounted_config(tree), tmp_path)
    path = tmp_path / CONFIG_KEY
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([EXE, "--config.file", str(path), "--config.check"],
                            capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("tree", ["base", "overlay"])
def test_replicas_split_targets_and_budget(tree: str) -> None:
    """N replicas are single-pod shards 0..N-1 of N, and the config gives each 1/N of the budget."""
    deployments = of_kind(tree, "Deployment")
    assert all(d["spec"]["replicas"] == 1 for d in deployments)
    shards = sorted(shard_of(d) for d in deployments)
    count = len(deployments)
    assert shards == [(index, count) for index in range(count)]
    assert parse_config_text(mounted_config(tree)).api.budget_share <= 1 / count + 1e-9
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
                 for d in deployments]
    assert len(set(selectors)) == count


def test_ha_overlay_runs_coordinated_replicas_with_redis() -> None:
    """The HA overlay: 2+ exporter replicas with coordination at the bundled Redis Service, its
    password from the Secret both pods mount, a PodDisruptionBudget, no shards."""
    (deployment,) = exporters("ha", "Deployment")
    assert deployment["spec"]["replicas"] >= 2 and shard_of(deployment) == (0, 1)
    config = parse_config_text(mounted_config("ha"))
    assert config.coordination.enabled and config.api.budget_share == 1
    (redis_service,) = [s for s in of_kind("ha", "Service") if s not in exporters("ha", "Service")]
    port = redis_service["spec"]["ports"][0]["port"]
    assert config.coordination.redis_url == \
        f"redis://{redis_service['metadata']['name']}:{port}/0"
    (redis_deployment,) = [d for d in of_kind("ha", "Deployment") if d is not deployment]
    assert redis_service["spec"]["selector"].items() <= \
        redis_deployment["spec"]["template"]["metadata"]["labels"].items()
    for pod, mount_name in ((deployment, "redis-password"), (redis_deployment, "password")):
        spec = pod["spec"]["template"]["spec"]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount_name]
        assert volume["secret"]["secretName"] == "trtc-exporter-redis"
        (container,) = spec["containers"]
        assert "env" not in container  # the password is a file, never an environment value
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert f"{mounts[mount_name]}/password" == "/run/secrets/redis/password"
    assert config.coordination.password_file == "/run/secrets/redis/password"
    (budget,) = of_kind("ha", "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    # the append-only file on a claim, not an emptyDir: registrations survive a new pod
    (claim,) = of_kind("ha", "PersistentVolumeClaim")
    data = {v["name"]: v for v in redis_deployment["spec"]["template"]["spec"]["volumes"]}
    assert data["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_shard_deployment_mirrors_the_base() -> None:
    """The second shard's Deployment is the base one but for its name, instance label and shard."""
    first, second = sorted(of_kind("overlay", "Deployment"), key=shard_of)

    def normalised(deployment: dict[str, Any]) -> dict[str, Any]:
        copied = copy.deepcopy(deployment)
        copied["metadata"]["name"] = "x"
        for labels in (copied["spec"]["selector"]["matchLabels"],
                       copied["spec"]["template"]["metadata"]["labels"]):
            labels.pop("app.kubernetes.io/instance")
        args = copied["spec"]["template"]["spec"]["containers"][0]["args"]
        args[:] = [arg for arg in args if not arg.startswith("--shard=")]
        return copied

    assert normalised(first) == normalised(second)


def test_overlay_adds_the_optional_objects() -> None:
    """The example overlay adds a PodDisruptionBudget and a NetworkPolicy for the exporter pods."""
    (budget,) = of_kind("overlay", "PodDisruptionBudget")
    (policy,) = of_kind("overlay", "NetworkPolicy")
    pod_labels = of_kind("overlay", "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    for selector in (budget["spec"]["selector"], policy["spec"]["podSelector"]):
        assert selector["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 9877, "protocol": "TCP"}]
    assert {obj["metadata"]["namespace"] for obj in RENDERED["overlay"]} == {"monitoring"}


@pytest.mark.parametrize("tree", list(K8S_TREES))
def test_renderer_agrees_with_kubectl_kustomize(tree: str) -> None:
    """The kustomize subset of these tests renders what `kubectl kustomize` renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed; the other tests use this file's kustomize subset")
    result = subprocess.run([kubectl, "kustomize", str(K8S_TREES[tree])], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert without_hash(rendered) == without_hash(RENDERED[tree])


# -- docs/deploy.md -------------------------------------------------------------------------

def deploy_section() -> str:
    """The deploy guide (docs/deploy.md; the README links to it)."""
    return (ROOT / "docs" / "deploy.md").read_text("utf-8")


def test_deploy_guide_covers_every_way_to_deploy() -> None:
    """docs/deploy.md has pip, container, compose and Kubernetes copy-paste blocks."""
    section = deploy_section()
    blocks = re.findall(r"```(?:sh|bash|console)\n(.*?)```", section, re.S)
    text = "\n".join(blocks)
    for needle in ("pip install", "docker build", "docker compose", "kubectl apply -k"):
        assert needle in text, f"docs/deploy.md: no code block with {needle!r}"


def test_deploy_guide_blocks_name_existing_files_and_the_version() -> None:
    """Paths in docs/deploy.md's code blocks exist, and image tags there are the package version."""
    blocks = "\n".join(re.findall(r"```\w*\n(.*?)```", deploy_section(), re.S))
    paths = set(re.findall(r"(?<![\w./-])((?:deploy|examples|dashboards|alerts)/[\w./-]*\w)",
                           blocks))
    assert paths, "docs/deploy.md names no file of the repository"
    for path in paths:
        assert (ROOT / path).exists(), f"docs/deploy.md: {path} does not exist"
    for tag in re.findall(rf"{EXE}:([\w.+-]+)", blocks):
        assert tag == __version__
    for line in blocks.splitlines():
        if line.startswith(f"{EXE} ") and "--config.file" in line:
            args = shlex.split(line.partition("#")[0])
            assert (ROOT / args[args.index("--config.file") + 1]).is_file(), line
