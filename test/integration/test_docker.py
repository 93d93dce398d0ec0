"""docker/: the compose file describes the same stack as scripts/stack, and
its images, built here by scripts/docker-stack from a locally made Debian
base, run the demo: the simulator feeds Kafka, the archive worker writes
bronze to MinIO, load_bronze() and refresh_gold() fill silver and gold,
PostgREST answers over HTTP and nginx serves the chart page, each in its
container (docs/containers.md)."""
import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from http_helpers import http
from stack_support import ROOT, sql, sql_value, wait_until

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
    postgrest_version = re.search(r"^POSTGREST_NPM_VERSION=(\S+)", stack, re.M).group(1)
    postgrest = open(os.path.join(ROOT, "docker", "Dockerfile.postgrest")).read()
    postgrest_sha = re.search(r"^POSTGREST_NPM_SHA256=(\S+)", stack, re.M).group(1)
    assert f"POSTGREST_NPM_VERSION={postgrest_version}" in postgrest and f"POSTGREST_NPM_SHA256={postgrest_sha}" in postgrest
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
    """Debian's `docker-compose` (1.29, the one scripts/docker-stack runs), else
    the `docker compose` plugin; no engine is needed for `config`."""
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_docker_compose_config_accepts_the_file_and_moves_the_ports(tmp_path):
    client = compose_client()
    if client is None:
        pytest.fail("no docker compose client: scripts/stack install puts Debian's docker-compose on the machine")
    env = dict(os.environ, STOCKS_SECRETS_DIR=str(tmp_path), STOCKS_WEB_PORT="28999", STOCKS_PG_PORT="25999")
    run = subprocess.run(client + ["-f", COMPOSE, "config"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    config = yaml.safe_load(run.stdout)
    assert {"127.0.0.1:28999:8080", "127.0.0.1:25999:5432"} <= {
        p.removesuffix("/tcp") if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}"
        for svc in config["services"].values() for p in svc.get("ports", [])}
    assert config["secrets"]["postgres_password"]["file"] == str(tmp_path / "postgres_password")


def test_no_password_is_a_variable_of_the_compose_file():
    for name, svc in load()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            assert not re.search(r"PASSWORD$|_KEY$|SECRET", key) and "${" not in str(value), (name, key)


# --- the images built and run (scripts/docker-stack) -------------------------

DOCKER_STACK = os.path.join(ROOT, "scripts", "docker-stack")
# published ports of their own: the local stack's +50 (scripts/stack takes +0
# to +3 of each hundred), so neither this clone's stack nor another's meets them
LOCAL = {"PG": 25432, "POSTGREST": 23000, "WEB": 28080, "METRICS": 29187}
PORTS = {k: int(os.environ.get(f"STOCKS_STREAM_{k}_PORT", v)) + 50 for k, v in LOCAL.items()}
PROJECT = "ss_test_" + hashlib.sha1(ROOT.encode()).hexdigest()[:8]
SERVICES = ["kafka", "minio", "postgres", "postgrest", "web", "metrics"]
DOCKER_ENV = dict(os.environ, STOCKS_STREAM_DOCKER_PROJECT=PROJECT,
                  **{f"STOCKS_{k}_PORT": str(v) for k, v in PORTS.items()})


def docker_stack(*args, timeout=600, check=True):
    run = subprocess.run([DOCKER_STACK, *args], env=DOCKER_ENV, capture_output=True, text=True, timeout=timeout)
    if check:
        assert run.returncode == 0, f"scripts/docker-stack {' '.join(args)}:\n{run.stdout[-3000:]}{run.stderr[-5000:]}"
    return run


def secret(name):
    env = dict(line.split("=", 1) for line in docker_stack("env").stdout.replace("export ", "").split())
    with open(os.path.join(env["STOCKS_SECRETS_DIR"], name)) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def containers():
    """The compose stack, built and started; stopped (volumes dropped, the
    daemon stopped) however the module ends.  Needs root and Debian's dockerd:
    CI runs as root, and a machine without them fails here, never skips."""
    if os.geteuid() != 0:
        pytest.fail("the container stack needs root to run dockerd (scripts/docker-stack); CI runs as root")
    try:
        # cold: the base, the stand-ins and every layer (tens of minutes); warm: the layer cache
        docker_stack("up", *SERVICES, timeout=3600)
        yield
    finally:
        docker_stack("stop", timeout=300, check=False)


def csql(query, params=None):
    """SQL on the container's PostgreSQL, over its published port."""
    return sql(query, params, host="127.0.0.1", port=PORTS["PG"], user="postgres", dbname="stocks",
               password=secret("postgres_password"))


def url(service, path):
    return f"http://127.0.0.1:{PORTS[service]}{path}"


@pytest.fixture(scope="module")
def demo(containers):
    """The demo's pipeline: the simulator into topic market, archived to the
    bucket bronze by a batch-mode pipeline, loaded and rolled up by hand;
    beside it a Parquet pipeline on the same topic (the image's extension is
    built with lake/parquet_ffi)."""
    csql("SELECT stocks_stream.create_source('market_feed', 'simulator', ARRAY['AAPL', 'MSFT'], 'market',"
         " options => '{\"seed\": 42, \"rate\": 200, \"quote_every\": 10}')")
    csql("SELECT stocks_stream.start_source('market_feed')")
    csql("SELECT stocks_stream.create_pipeline('market_bronze', 'market', 'bronze',"
         " batch_max_messages => 2000, batch_max_age_ms => 3000)")
    csql("SELECT stocks_stream.create_pipeline('market_parquet', 'market', 'lake', format => 'parquet',"
         " batch_max_age_ms => 3000)")
    csql("SELECT stocks_stream.start_pipeline(name) FROM stocks_stream.pipelines")
    wait_until(lambda: csql("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = 'market_bronze'")[0][0] >= 2,
               180, "two objects archived to MinIO by the container's archive worker")
    loaded = csql("SELECT coalesce(sum(rows_loaded), 0) FROM stocks_stream.load_bronze()")[0][0]
    candles = csql("SELECT stocks_stream.refresh_gold()")[0][0]
    yield loaded, candles


def test_images_run_as_users_other_than_root(containers):
    for service in SERVICES:
        uid = docker_stack("compose", "exec", "-T", service, "id", "-u").stdout.strip()
        assert uid and uid != "0", f"{service} runs as root"


def test_no_secret_is_in_an_image_layer_or_a_container_variable(containers):
    values = [secret(n) for n in ("postgres_password", "minio_root_password", "authenticator_password",
                                  "exporter_password")]
    ids = docker_stack("compose", "ps", "-q").stdout.split()
    assert len(ids) == len(SERVICES)
    inspected = docker_stack("docker", "inspect", *ids).stdout
    images = sorted({c["Image"] for c in json.loads(inspected)})
    history = docker_stack("docker", "history", "--no-trunc", *images[:1]).stdout
    history += "".join(docker_stack("docker", "history", "--no-trunc", i).stdout for i in images[1:])
    assert "Env" in inspected and "/bin/sh -c" in history
    for value in values:
        assert value not in inspected and value not in history


def test_the_simulator_is_archived_loaded_and_rolled_up(demo):
    loaded, candles = demo
    assert loaded > 0 and candles > 0
    assert csql("SELECT count(*) FROM stocks_stream.candles WHERE symbol = 'AAPL'")[0][0] > 0
    assert csql("SELECT gaps FROM api.pipeline_health WHERE name = 'market_bronze'") == [(0,)]


def test_a_parquet_pipeline_archives_parquet_objects(demo):
    keys = wait_until(lambda: csql("SELECT object_key FROM stocks_stream.manifest WHERE pipeline = 'market_parquet'"),
                      180, "a Parquet object archived")
    assert all(k.endswith(".parquet") for (k,) in keys)
    assert csql("SELECT last_error FROM stocks_stream.worker_status WHERE pipeline = 'market_parquet'") == [(None,)]


@pytest.mark.parametrize("path", ["/latest_quotes?symbol=eq.AAPL", "/candles?symbol=eq.AAPL&interval=eq.1m&limit=5",
                                  "/pipeline_health?name=eq.market_bronze"])
def test_postgrest_answers_over_http_with_rows(demo, path):
    answer = http("GET", url("POSTGREST", path))
    assert answer.status == 200, answer.text
    assert answer.json(), f"{path} answered no rows"


def test_nginx_serves_the_chart_page_its_library_and_the_api(demo):
    page = http("GET", url("WEB", "/"))
    assert page.status == 200 and b"chart.js" in page.body
    assert http("GET", url("WEB", "/lib/lightweight-charts.js")).status == 200
    api = http("GET", url("WEB", "/api/candles?symbol=eq.MSFT&interval=eq.1m&limit=1"))
    assert api.status == 200 and api.json()[0]["symbol"] == "MSFT"
    # the API stays read-only through nginx
    assert http("POST", url("WEB", "/api/candles"), data=b"{}", headers={"Content-Type": "application/json"}).status == 401


def test_the_exporter_reads_the_pipeline_metrics(demo):
    answer = http("GET", url("METRICS", "/metrics"))
    assert answer.status == 200 and re.search(rb"^pg_up 1", answer.body, re.M)
    assert b'pipeline="market_bronze"' in answer.body


def airflow_run(*args, entrypoint=None):
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return docker_stack("compose", "run", "--rm", "--no-deps", "-T", *extra, "airflow", *args).stdout


def test_the_airflow_image_carries_airflow_the_dag_providers_and_dbt(containers):
    docker_stack("build", "airflow", timeout=1800)
    pin = re.search(r"apache-airflow==(\S+)", open(os.path.join(ROOT, "dags", "requirements.txt")).read()).group(1)
    assert pin in airflow_run("version")
    assert "ok" in airflow_run("python", "-c", "import airflow.providers.postgres, airflow.providers.standard; print('ok')")
    assert "Core:" in airflow_run("--version", entrypoint="/opt/airflow/dbt-venv/bin/dbt")
    # the DAGs' lake_commit: scripts/lake-commit and its pyiceberg
    assert "usage: " in airflow_run("--help", entrypoint="/opt/stocks_stream/scripts/lake-commit")
    assert airflow_run("-u", entrypoint="id").strip() not in ("", "0")
