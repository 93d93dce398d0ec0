"""The Airflow DAG: imports cleanly with the expected tasks, and `airflow dags test`
against the test stack moves archived data into silver and gold."""
import json
import os
import re
import subprocess

import pytest

from stack_support import EXCHANGE_TODAY, ROOT, archive_simulated, sql_value

EXPECTED = {
    "wait_for_bronze": ["load_bronze"],
    "load_bronze": ["refresh_gold"],
    "refresh_gold": ["lake_commit"],
    "lake_commit": ["dbt_build"],
    "dbt_build": ["quarantine_check"],
    "quarantine_check": [],
}


@pytest.fixture(scope="module")
def airflow_env():
    home = os.path.join(os.environ["STOCKS_STREAM_STACK"], "airflow")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ,
               AIRFLOW_HOME=home,
               AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=os.path.join(ROOT, "dags"),
               AIRFLOW_CONN_STOCKS_PG=f"postgres://stocks_airflow@{os.environ['PGHOST']}:"
                                      f"{os.environ['PGPORT']}/{os.environ['PGDATABASE']}",
               AIRFLOW_VAR_STOCKS_QUARANTINE_THRESHOLD="1000",
               STOCKS_STREAM_DBT=os.path.join(os.environ["STOCKS_STREAM_DBT_VENV"], "bin", "dbt"))
    venv = os.environ["STOCKS_STREAM_AIRFLOW_VENV"]
    migrate = subprocess.run([os.path.join(venv, "bin", "airflow"), "db", "migrate"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env, venv


def test_dag_imports_with_the_expected_tasks_and_order(airflow_env):
    env, venv = airflow_env
    # as Airflow 3's DAG processor reads a bundle: its folder on sys.path, so
    # the DAGs import what they share (dags/stocks_common.py)
    script = ("import json; from airflow.models.dagbag import BundleDagBag; "
              f"b = BundleDagBag(dag_folder={os.path.join(ROOT, 'dags')!r}, "
              f"bundle_path={os.path.join(ROOT, 'dags')!r}); "
              "d = b.dags['stocks_pipeline']; "
              "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, "
              "'tasks': {t.task_id: sorted(t.downstream_task_ids) for t in d.tasks}, "
              "'schedule': str(d.schedule), 'catchup': d.catchup, "
              "'retries': d.default_args.get('retries')}))")
    run = subprocess.run([os.path.join(venv, "bin", "python"), "-c", script], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["errors"] == {}
    assert info["tasks"] == EXPECTED
    assert info["schedule"] == "*/5 * * * *" and info["catchup"] is False and info["retries"] == 3


def test_dags_test_moves_archived_data_into_silver_and_gold(airflow_env, make_pipeline):
    env, venv = airflow_env
    t, p = archive_simulated(make_pipeline, ["AAPL", "MSFT", "NVDA"], 3000, 3, 9)
    assert sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s AND loaded_at IS NULL",
                     [p.name]) > 0
    run = subprocess.run([os.path.join(venv, "bin", "airflow"), "dags", "test", "stocks_pipeline"], env=env,
                         capture_output=True, text=True, timeout=900)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    assert sql_value("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s AND loaded_at IS NULL",
                     [p.name]) == 0
    # 1000 messages per symbol, every third a quote
    assert sql_value("SELECT count(*) FROM stocks_stream.trades WHERE source_topic = %s", [t.name]) == 2001
    assert sql_value("SELECT count(*) FROM stocks_stream.quotes WHERE source_topic = %s", [t.name]) == 999
    assert sql_value("SELECT count(*) FROM stocks_stream.gold_dirty") == 0
    assert sql_value("SELECT count(DISTINCT symbol) FROM stocks_stream.candles WHERE interval = '1m' "
                     "AND symbol IN ('AAPL', 'MSFT', 'NVDA') AND bucket_start >= now() - interval '1 hour'") == 3
    assert sql_value(f"SELECT count(*) FROM stocks_marts.daily_candles WHERE day = {EXCHANGE_TODAY} "
                     "AND symbol IN ('AAPL', 'MSFT', 'NVDA')") == 3


INJECTION = "1000 FROM (SELECT 1) x; CREATE TABLE public.airflow_injected (); SELECT true --"


@pytest.mark.parametrize("threshold, passes", [("1000000", True), ("-1", False), (INJECTION, False)])
def test_quarantine_threshold_is_a_bound_integer_never_sql_text(airflow_env, threshold, passes):
    """The Variable reaches the database as a bound integer: a number decides the
    check, text that is not one fails it cleanly, and no statement in it runs."""
    env, venv = airflow_env
    env = dict(env, AIRFLOW_VAR_STOCKS_QUARANTINE_THRESHOLD=threshold)
    run = subprocess.run([os.path.join(venv, "bin", "airflow"), "tasks", "test", "stocks_pipeline",
                          "quarantine_check"], env=env, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    # `airflow tasks test` exits 0 either way; the task's last state tells
    states = re.findall(r"Task instance state updated .* new_state=(\w+)", out)
    assert run.returncode == 0 and states, out[-5000:]
    assert states[-1] == ("success" if passes else "up_for_retry"), out[-5000:]
    if threshold == INJECTION:
        assert "invalid input syntax for type integer" in out, out[-5000:]
    assert sql_value("SELECT to_regclass('public.airflow_injected')") is None
