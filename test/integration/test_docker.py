"""docker/: the compose file describes the same stack as scripts/stack."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from stack_support import ROOT

COMPOSE = os.path.join(ROOT, "docker", "docker-compose.yml")


def load():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def test_compose_has_every_service_with_health_checks_and_start_order():
    services = load()["services"]
    assert set(services) == {"kafka", "minio", "postgres", "postgrest", "web", "airflow", "metrics"}
    for name, svc in services.items():
        assert "healthcheck" in svc and svc["healthcheck"]["test"], f"{name} has no health check"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    deps = {n: {d: c["condition"] for d, c in s.get("depends_on", {}).items()} for n, s in services.items()}
    assert deps["postgres"] == {"kafka": "service_healthy", "minio": "service_healthy"}
    assert deps["postgrest"] == {"postgres": "service_healthy"}
    assert deps["web"] == {"postgrest": "service_healthy"}
    assert deps["airflow"] == {"postgres": "service_healthy"}
    assert deps["metrics"] == {"postgres": "service_healthy"}


def test_compose_is_in_step_with_the_local_stack():
    services = load()["services"]
    stack = open(os.path.join(ROOT, "scripts", "stack")).read()
    kafka_version = re.search(r"^KAFKA_VERSION=(\S+)", stack, re.M).group(1)
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version}"
    postgrest_version = re.search(r"^POSTGREST_NPM_VERSION=(\d+\.\d+\.\d+)", stack, re.M).group(1)
    assert services["postgrest"]["image"] == f"postgrest/postgrest:v{postgrest_version}"
    charts = re.search(r"^CHARTS_NPM_VERSION=(\S+)", stack, re.M).group(1)
    charts_sha = re.search(r"^CHARTS_NPM_SHA256=(\S+)", stack, re.M).group(1)
    web = open(os.path.join(ROOT, "docker", "Dockerfile.web")).read()
    assert f"CHARTS_NPM_VERSION={charts}" in web and f"CHARTS_NPM_SHA256={charts_sha}" in web
    assert "shared_preload_libraries=stocks_stream" in open(os.path.join(ROOT, "docker", "Dockerfile.postgres")).read()
    airflow_pin = re.search(r"apache-airflow==(\S+)", open(os.path.join(ROOT, "dags", "requirements.txt")).read()).group(1)
    assert airflow_pin in open(os.path.join(ROOT, "docker", "Dockerfile.airflow")).read()
    conf = open(os.path.join(ROOT, "docker", "postgrest.conf")).read()
    for key in ("db-schemas", "db-anon-role", "db-max-rows", "db-pool"):
        assert re.search(rf"^{key}\s*=", conf, re.M), key
    assert os.path.exists(os.path.join(ROOT, "docker", ".env.example"))


def compose_client():
    """`docker compose` (v2 plugin) or Debian's `docker-compose`; no engine is needed for `config`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    return None


def test_docker_compose_config_accepts_the_file():
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client on this machine")
    env = dict(os.environ, POSTGRES_PASSWORD="x", MINIO_ROOT_USER="x", MINIO_ROOT_PASSWORD="x",
               PGRST_AUTHENTICATOR_PASSWORD="x", STOCKS_AIRFLOW_PASSWORD="x", STOCKS_DBT_PASSWORD="x",
               METRICS_EXPORTER_PASSWORD="x")
    run = subprocess.run(client + ["-f", COMPOSE, "config", "-q"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    # a file with a required variable missing is refused
    env.pop("POSTGRES_PASSWORD")
    bad = subprocess.run(client + ["-f", COMPOSE, "config", "-q"], env=env, capture_output=True, text=True,
                         cwd=os.path.dirname(COMPOSE))
    assert bad.returncode != 0 and "POSTGRES_PASSWORD" in bad.stderr
