"""Prometheus metrics (docs/metrics.md): the exporter the stack starts serves
output promtool accepts, a real Prometheus scrapes it and answers the lag the
SQL view shows, the counters move as a pipeline archives and a bad line is
quarantined, and the example alert rules are valid."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
import urllib.request

import psycopg
import pytest

from stack_support import Pipeline, Topic, quote_message, sql, sql_value, wait_until

ROOT = os.environ["STOCKS_STREAM_ROOT"]
METRICS_URL = os.environ["METRICS_URL"]
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape():
    """A scrape in which the exporter reached the database.  After a server
    restart (the crash tests of other modules) the exporter's first scrape
    finds its connection broken and answers pg_up 0 with none of the
    extension's families, as Prometheus sees once; the next one reconnects."""
    def reached():
        with urllib.request.urlopen(METRICS_URL, timeout=30) as r:
            text = r.read().decode()
        return text if samples(text, "pg_up") == [1.0] else None
    return wait_until(reached, 60, "a scrape with pg_up 1")


def samples(text, name, **labels):
    """The values of the series `name` whose labels include `labels`."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            have = dict(LABEL.findall(m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                out.append(float(m.group(3)))
    return out


def metric(name, **labels):
    """The sum of the series `name` with those labels in a fresh scrape (0 when none)."""
    return sum(samples(scrape(), name, **labels))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Debian's Prometheus on a loopback port, scraping the stack's exporter
    every second and evaluating the example alert rules."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ss-prometheus-")
        self.port = free_port()
        target = urllib.parse.urlsplit(METRICS_URL).netloc
        shutil.copy(ALERTS, os.path.join(self.dir, "alerts.yml"))
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files: [alerts.yml]\n"
                    "scrape_configs:\n  - job_name: stocks_stream\n"
                    f"    static_configs: [{{targets: ['{target}']}}]\n")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql):
        """An instant query: {labels as a sorted tuple of items: value}."""
        return {tuple(sorted(r["metric"].items())): float(r["value"][1])
                for r in self.api("query", query=promql)["result"]}

    def answers(self, promql):
        try:
            return self.query(promql)
        except OSError:     # not listening yet
            return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus():
    p = Prometheus()
    try:
        wait_until(lambda: list((p.answers('up{job="stocks_stream"}') or {}).values()) == [1.0],
                   60, "Prometheus scraping the stack's exporter")
        yield p
    finally:
        p.stop()


@pytest.fixture
def archived(make_pipeline):
    """A pipeline that has archived 40 quotes and one line that is not JSON."""
    topic = Topic()
    p = make_pipeline(topic, batch_max_age_ms=200)
    p.start()
    topic.produce([quote_message(i) for i in range(40)] + ["this is not a quote"])
    p.wait_archived(41)
    return p


def test_the_exporter_output_passes_promtool(archived):
    text = scrape()
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # every family of docs/metrics.md is there, the latency as real histograms
    assert "# TYPE stocks_stream_sink_upload_seconds histogram" in text
    assert "# TYPE stocks_stream_sink_flush_seconds histogram" in text
    assert "# TYPE stocks_stream_sink_record_send_total counter" in text
    assert samples(text, "stocks_stream_sink_flush_seconds_bucket", pipeline=archived.name, le="+Inf")
    for family in ("stocks_stream_consumer_records_lag", "stocks_stream_connector_running_tasks",
                   "stocks_stream_loader_objects_pending", "pg_up"):
        assert samples(text, family), f"{family} missing from the scrape"


def test_prometheus_answers_the_lag_the_sql_view_shows(make_pipeline, prometheus):
    # a pipeline never started: everything produced is lag, and stays so
    topic = Topic(partitions=3)
    p = make_pipeline(topic)
    topic.produce(["m%d" % i for i in range(7)], partition=0)
    topic.produce(["m%d" % i for i in range(4)], partition=2)
    view = {r.partition: r.lag for r in sql(
        "SELECT partition, lag FROM stocks_stream.consumer_lag WHERE pipeline = %s", [p.name])}
    assert view == {0: 7, 1: 0, 2: 4}

    promql = f'stocks_stream_consumer_records_lag{{pipeline="{p.name}"}}'
    seen = {}

    def prometheus_agrees():
        seen["answer"] = {dict(k)["partition"]: v for k, v in (prometheus.answers(promql) or {}).items()}
        return seen["answer"] == {str(part): float(lag) for part, lag in view.items()}

    wait_until(prometheus_agrees, 60, f"Prometheus answering {promql} as the view: {view} (last {seen})")
    total = prometheus.query(f'sum(stocks_stream_consumer_records_lag{{pipeline="{p.name}"}})')
    assert list(total.values()) == [11.0]


def test_counters_move_as_a_pipeline_archives_and_a_line_is_quarantined(make_pipeline):
    topic = Topic()
    p = make_pipeline(topic, batch_max_age_ms=200)
    labels = {"pipeline": p.name}
    assert metric("stocks_stream_sink_record_send_total", **labels) == 0

    p.start()
    topic.produce([quote_message(i) for i in range(60)] + ["{not json"])
    p.wait_archived(61)
    objects = sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s", [p.name])
    wait_until(lambda: metric("stocks_stream_sink_record_send_total", **labels) == 61, 30,
               "61 records archived in the metrics")
    text = scrape()
    assert sum(samples(text, "stocks_stream_sink_record_read_total", **labels)) == 61
    assert sum(samples(text, "stocks_stream_sink_objects_written_total", **labels)) == objects
    assert sum(samples(text, "stocks_stream_sink_record_send_bytes_total", **labels)) > 61 * 100
    # one upload and one flush observed per object
    assert sum(samples(text, "stocks_stream_sink_upload_seconds_count", **labels)) == objects
    assert sum(samples(text, "stocks_stream_sink_flush_seconds_count", **labels)) == objects
    assert sum(samples(text, "stocks_stream_sink_s3_errors_total", **labels)) == 0
    assert samples(text, "stocks_stream_connector_running_tasks", connector=p.name) == [1.0]
    assert samples(text, "stocks_stream_connector_tasks", connector=p.name) == [1.0]
    assert samples(text, "stocks_stream_loader_objects_pending", **labels) == [float(objects)]
    assert samples(text, "stocks_stream_loader_records_quarantined_total", **labels) == [0.0]

    refreshes = metric("stocks_stream_gold_refresh_seconds_count")
    sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
    sql("SELECT stocks_stream.refresh_gold()")
    text = scrape()
    assert sum(samples(text, "stocks_stream_gold_refresh_seconds_count")) == refreshes + 1
    assert samples(text, "stocks_stream_loader_records_quarantined_total", **labels) == [1.0]
    assert samples(text, "stocks_stream_loader_records_loaded_total", **labels) == [61.0]
    assert samples(text, "stocks_stream_loader_objects_pending", **labels) == [0.0]

    p.stop()
    wait_until(lambda: metric("stocks_stream_connector_running_tasks", connector=p.name) == 0
               and metric("stocks_stream_connector_tasks", connector=p.name) == 0, 60,
               "the stopped pipeline's workers gone from the metrics")


def test_the_exporter_role_reads_the_metrics_and_nothing_else():
    # the password scripts/stack gave the exporter
    with open(os.path.join(os.environ["STOCKS_STREAM_STACK"], "credentials")) as f:
        password = dict(line.strip().split("=", 1) for line in f if "=" in line)["METRICS_EXPORTER_PASSWORD"]
    with psycopg.connect(host=os.environ["PGHOST"], port=os.environ["PGPORT"], dbname=os.environ["PGDATABASE"],
                         user="stocks_stream_exporter", password=password, autocommit=True) as conn:
        conn.execute("SELECT * FROM stocks_stream.metrics_connector").fetchall()
        for forbidden in ("SELECT * FROM stocks_stream.manifest", "SELECT * FROM stocks_stream.quotes",
                          "SELECT * FROM stocks_stream.worker_status",
                          "SELECT * FROM stocks_stream.worker_status_internal('archive')",
                          "SELECT stocks_stream.load_bronze()", "SELECT pg_read_file('postgresql.conf')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_the_example_alert_rules_are_valid_and_evaluate(prometheus):
    check = subprocess.run(["promtool", "check", "rules", ALERTS], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    seen = {}

    def all_evaluated():
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        seen["rules"] = {r["name"]: (r["health"], r.get("lastError")) for r in rules}
        return len(rules) > 0 and all(r["health"] == "ok" for r in rules)

    wait_until(all_evaluated, 60, "Prometheus evaluating every example rule without error")
    assert {"StocksStreamLagGrowing", "StocksStreamWorkerNotRunning", "StocksStreamQuarantineSpiking",
            "StocksStreamSilverStale"} <= set(seen["rules"])
