"""The Kubernetes example (deploy/kubernetes/) fits the daemon: the probes' paths and
port, the config's mount path, the Secret's keys and the grace period agree with what
the image and the configuration say, and a real `jobd run` on the ConfigMap's own
configuration answers every path the manifests point at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jobd.config.durations import parse_duration_s
from tests.acceptance import daemon_harness as h

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "deploy" / "kubernetes"
port, daemon_for = h.port, h.daemon_for  # fixtures
IMAGE_CONFIG = "/etc/jobd/jobd.yaml"  # the Dockerfile's JOBD_CONFIG


def manifests() -> dict[str, dict[str, Any]]:
    """Every object in the folder by kind (one of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in found, f"two {doc['kind']} objects"
            found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, Any]]:
    return manifests()


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (only,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def jobd_yaml(objects: dict[str, dict[str, Any]]) -> str:
    return str(objects["ConfigMap"]["data"]["jobd.yaml"])


def test_manifests_agree_with_the_image_and_the_config(objects: dict[str, dict[str, Any]]) -> None:
    """Liveness asks /healthz and readiness /readyz on the port admin.listen names; the
    config is mounted where $JOBD_CONFIG points; every secretKeyRef names a key of the
    example Secret; the grace period is above engine.shutdown_grace; the Service and the
    scrape annotations reach the same port and /metrics; kustomize lists the files."""
    main = container(objects)
    config = yaml.safe_load(jobd_yaml(objects))
    admin_port = int(config["admin"]["listen"].rpartition(":")[2])
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"admin": admin_port}

    probes = {kind: main[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert main["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in [*probes.values(), main["startupProbe"]["httpGet"]]:
        assert ports.get(probe["port"], probe["port"]) == admin_port

    env = {e["name"]: e for e in main["env"]}
    assert env["JOBD_CONFIG"]["value"] == IMAGE_CONFIG
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (mount,) = [m for m in main["volumeMounts"] if m["name"] == "config"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    (item,) = volume["configMap"]["items"]
    assert item["key"] == "jobd.yaml"
    assert f"{mount['mountPath']}/{item['path']}" == IMAGE_CONFIG

    secret = objects["Secret"]
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in env.values()
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert {r["name"] for r in refs} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs} == set(secret["stringData"])
    needed = {"DATABASE_URL", "JOBD_ADMIN_TOKEN"}
    assert needed <= {r["key"] for r in refs}
    assert all(f"${{{name}}}" in jobd_yaml(objects) for name in needed)

    grace_s = parse_duration_s(config["engine"]["shutdown_grace"])
    assert pod["terminationGracePeriodSeconds"] >= grace_s + 15

    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == admin_port
    assert annotations["prometheus.io/path"] == "/metrics"
    (service_port,) = objects["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in ("admin", admin_port)
    selector = objects["Service"]["spec"]["selector"]
    assert (
        selector.items() <= objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    )

    kustomize = objects["Kustomization"]["resources"]
    assert sorted(kustomize) == ["configmap.yaml", "deployment.yaml", "service.yaml"]


def test_daemon_on_the_configmap_serves_every_probed_path(
    database_url: str,
    port: int,
    tmp_path: Path,
    daemon_for: Any,
    objects: dict[str, dict[str, Any]],
) -> None:
    """`jobd run` on the ConfigMap's configuration (its listener moved to a free loopback
    port, its webhook host to a closed loopback port, secrets from the environment as the
    Deployment gives them) starts, and every path the probes and the scrape annotation
    name answers 200 there, the probes without the admin token."""
    db = database_url
    h.sql(db, "CREATE TABLE public.orders (id int PRIMARY KEY, processed boolean);")
    text = jobd_yaml(objects)
    assert "0.0.0.0:8370" in text and "https://api.example.com" in text
    text = text.replace("0.0.0.0:8370", f"127.0.0.1:{port}")
    text = text.replace("https://api.example.com", "http://127.0.0.1:9")
    config = tmp_path / "jobd.yaml"
    config.write_text(text)
    env = {
        "DATABASE_URL": db,
        "JOBD_ADMIN_TOKEN": "k8s-test-token",
        "ORDERS_API_TOKEN": "unused",
        "POD_NAME": "jobd-7d4b9c-x2x9q",
    }
    daemon = daemon_for(config, env=env)
    ready = daemon.start()
    assert ready["node_id"].startswith("jobd-7d4b9c-x2x9q")

    main = container(objects)
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    paths = {
        main[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    paths.add(annotations["prometheus.io/path"])
    answers = {
        path: h.wait_for(lambda p=path: h.http(port, p)[0] == 200, what=path) for path in paths
    }
    assert answers == dict.fromkeys(paths, True)
    assert "jobd_queue_depth" in h.http(port, "/metrics")[1]
    assert daemon.stop() == 0
