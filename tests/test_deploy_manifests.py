"""The Kubernetes manifests agree with the code: variable names, secrets, probes,
and the web pod's settings pass Django's deploy checks.

No cluster runs here, so the manifests are read as YAML, not applied.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_hardening import production_env

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
SECRET_VARIABLES = ("SECRET_KEY", "FERNET_KEYS", "DATABASE_URL", "REDIS_URL")
# The same controller defaults must reach every pod that reads them: the web
# pod shows them as "controller default", the worker sends with them, beat
# schedules the checks.
SHARED_VARIABLES = (
    "FW_EVENT_SMTP_SERVER_ADDR",
    "FW_EVENT_SMTP_SERVER_PORT",
    "FW_EVENT_SMTP_SERVER_USERNAME",
    "FW_EVENT_SMTP_SERVER_PASSWORD",
    "FW_EVENT_SMTP_SERVER_USE_TLS",
    "FW_EVENT_SMTP_SERVER_USE_INSECURE",
    "ACCOUNT_CREATION_STRATEGY",
    "ES_USER_NAME",
    "ES_PASSWORD",
    "ELASTIC_SEARCH_FQDN",
)


def documents() -> list[dict]:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend(d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d)
    return docs


def workload(name: str) -> dict:
    return next(d for d in documents() if d["metadata"]["name"] == name)


def containers(doc: dict) -> list[dict]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def all_containers() -> list[tuple[str, dict]]:
    return [
        (f"{doc['metadata']['name']}/{c['name']}", c)
        for doc in documents()
        if doc["kind"] in ("Deployment", "Job")
        for c in containers(doc)
    ]


def config_map() -> dict[str, str]:
    doc = next(d for d in documents() if d["kind"] == "ConfigMap")
    return doc["data"]


def main_container(name: str) -> dict:
    return workload(name)["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def test_every_listed_manifest_is_read():
    kinds = sorted(d["kind"] for d in documents())
    assert kinds.count("Deployment") == 3
    assert "Job" in kinds and "ConfigMap" in kinds and "Ingress" in kinds


def test_every_variable_in_the_manifests_is_a_documented_one():
    documented = set(
        re.findall(
            r"^#?\s*([A-Z][A-Z0-9_]+)=",
            (ROOT / ".env.example").read_text(),
            re.MULTILINE,
        )
    )
    used = set(config_map())
    for _name, container in all_containers():
        used.update(env_of(container))
    assert used - documented == set()


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_secrets_come_from_secrets_in_every_container(name):
    assert name not in config_map()
    for where, container in all_containers():
        assert {"configMapRef": {"name": "opsconsole"}} in container["envFrom"], where
        source = env_of(container)[name]
        assert "value" not in source, where
        assert source["valueFrom"]["secretKeyRef"]["name"] == "opsconsole", where


def test_controller_password_comes_from_a_secret_and_every_pod_agrees():
    pods = {
        name: env_of(main_container(name))
        for name in ("opsconsole-web", "opsconsole-worker", "opsconsole-beat")
    }
    reference = pods["opsconsole-worker"]
    password = reference["FW_EVENT_SMTP_SERVER_PASSWORD"]
    assert "secretKeyRef" in password["valueFrom"]
    assert "secretKeyRef" in reference["ES_PASSWORD"]["valueFrom"]
    for name, env in pods.items():
        for variable in SHARED_VARIABLES:
            assert env.get(variable) == reference[variable], (name, variable)


def test_web_probes_use_the_health_endpoints():
    web = main_container("opsconsole-web")
    port_names = {p["name"] for p in web["ports"]}
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert web[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize(
    "name", ["opsconsole-web", "opsconsole-worker", "opsconsole-beat"]
)
def test_a_pod_whose_process_exits_is_started_again(name):
    doc = workload(name)
    assert doc["kind"] == "Deployment"
    assert doc["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    # Kubernetes restarts a container when its main process ends: that process
    # is the program itself, not a shell that could outlive it.
    assert main_container(name)["command"][0] in {"celery", "gunicorn"}


def test_a_worker_that_no_longer_answers_over_the_broker_is_restarted():
    worker = main_container("opsconsole-worker")
    probe = worker["livenessProbe"]
    assert "celery -A opsconsole inspect ping" in probe["exec"]["command"][-1]
    # It asks this pod's worker, whose node name is Celery's default.
    assert "--destination celery@$HOSTNAME" in probe["exec"]["command"][-1]
    assert not {"--hostname", "-n"} & set(worker["command"])
    assert probe["failureThreshold"] * probe["periodSeconds"] <= 300


def test_the_ingress_host_is_an_allowed_host():
    ingress = next(d for d in documents() if d["kind"] == "Ingress")
    hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
    allowed = set(config_map()["ALLOWED_HOSTS"].split(","))
    assert hosts <= allowed
    assert all(f"https://{h}" in config_map()["CSRF_TRUSTED_ORIGINS"] for h in hosts)


def test_the_web_pods_settings_pass_the_deploy_checks(tmp_path):
    env = production_env()
    env.update(config_map())
    for name, item in env_of(main_container("opsconsole-web")).items():
        if "value" in item:
            env[name] = item["value"]
    # Stand-ins for the Secrets' values (the checks open no connection).
    env.update(
        SECRET_KEY=secrets.token_urlsafe(64),
        FERNET_KEYS=secrets.token_urlsafe(32),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        FW_EVENT_SMTP_SERVER_PASSWORD=secrets.token_urlsafe(16),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
