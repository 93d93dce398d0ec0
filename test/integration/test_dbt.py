"""dbt build of dbt_stocks against the extension's tables, after the pipeline loaded data."""
import os
import subprocess

from stack_support import EXCHANGE_TODAY, ROOT, archive_simulated, sql, sql_value


def test_dbt_build_is_green_on_loaded_data(make_pipeline):
    t, p = archive_simulated(make_pipeline, ["AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"], 5000, 5, 5)
    (loaded,) = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
    assert loaded.rows_loaded == 5000
    assert sql_value("SELECT stocks_stream.refresh_gold()") > 0

    project = os.path.join(ROOT, "dbt_stocks")
    dbt = os.path.join(os.environ["STOCKS_STREAM_DBT_VENV"], "bin", "dbt")
    run = subprocess.run([dbt, "build", "--project-dir", project, "--profiles-dir", project,
                          "--target-path", os.path.join(os.environ["STOCKS_STREAM_STACK"], "dbt-target"),
                          "--log-path", os.path.join(os.environ["STOCKS_STREAM_STACK"], "dbt-logs")],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "ERROR=0" in run.stdout and "moving_averages_on_known_closes" in run.stdout
    # dbt ran as its own login role, never a superuser (docs/security.md)
    assert sql_value("SELECT tableowner FROM pg_tables WHERE schemaname = 'stocks_marts' "
                     "AND tablename = 'daily_candles'") == "stocks_dbt"
    symbols = {r.symbol for r in sql(f"SELECT symbol FROM stocks_marts.daily_candles WHERE day = {EXCHANGE_TODAY}")}
    assert {"AAPL", "MSFT", "GOOGL", "AMZN", "TSLA"} <= symbols
    assert sql_value(f"SELECT count(*) FROM stocks_marts.top_movers_daily WHERE day = {EXCHANGE_TODAY} "
                     "AND direction = 'gainer' AND rank = 1") >= 1
    assert sql_value("SELECT count(*) FROM stocks_marts.symbol_volatility") >= 5
    # a second build is green too (incremental models)
    again = subprocess.run([dbt, "build", "--project-dir", project, "--profiles-dir", project,
                            "--target-path", os.path.join(os.environ["STOCKS_STREAM_STACK"], "dbt-target"),
                            "--log-path", os.path.join(os.environ["STOCKS_STREAM_STACK"], "dbt-logs")],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-4000:]
