"""Settings renamed keep their old names working: a setting's unit lives in
its definition (GUC_UNIT_*), never in its name, so stocks_stream.s3_timeout_ms
became stocks_stream.s3_timeout; a postgresql.conf that still sets the old
name keeps its value, and the server says what to rename."""
import uuid

import psycopg
import pytest

from stack_support import ServerLog, set_settings, sql, sql_value, wait_until

DEPRECATION = "WARNING:  stocks_stream.s3_timeout_ms is deprecated: it is now stocks_stream.s3_timeout"


def test_the_old_s3_timeout_ms_takes_effect_with_a_warning_until_s3_timeout_is_set():
    assert sql_value("SHOW stocks_stream.s3_timeout") == "30s"
    log = ServerLog()
    try:
        set_settings(s3_timeout_ms="45s")
        assert sql_value("SHOW stocks_stream.s3_timeout") == "45s"
        wait_until(lambda: DEPRECATION in log.new(), 30, "the deprecation WARNING in the server log")

        # once the new name is set, it wins, whatever the old one says
        set_settings(s3_timeout="20s")
        assert sql_value("SHOW stocks_stream.s3_timeout") == "20s"
        set_settings(s3_timeout="30s")
        assert sql_value("SHOW stocks_stream.s3_timeout") == "30s"
    finally:
        set_settings(s3_timeout=None, s3_timeout_ms=None)
    assert sql_value("SHOW stocks_stream.s3_timeout") == "30s"


def test_the_old_name_is_not_listed_and_the_new_one_carries_its_unit():
    assert sql_value("SELECT count(*) FROM pg_settings WHERE name = 'stocks_stream.s3_timeout_ms'") == 0
    assert sql_value("SELECT unit FROM pg_settings WHERE name = 'stocks_stream.s3_timeout'") == "ms"


def test_the_test_clock_is_hidden_and_only_a_superuser_sets_it():
    """stocks_stream.test_clock moves the archive workers' clock (for tests
    only): out of pg_settings, unreadable and unsettable by anyone else,
    even a role granted ALTER SYSTEM on it."""
    assert sql_value("SELECT count(*) FROM pg_settings WHERE name = 'stocks_stream.test_clock'") == 0
    role = "clock_" + uuid.uuid4().hex[:6]
    sql(f"CREATE ROLE {role} LOGIN")
    try:
        sql(f"GRANT ALTER SYSTEM ON PARAMETER stocks_stream.test_clock TO {role}")
        with psycopg.connect(user=role, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a superuser sets it"):
                conn.execute("ALTER SYSTEM SET stocks_stream.test_clock = 1800000000")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SHOW stocks_stream.test_clock")
    finally:
        sql(f"REVOKE ALTER SYSTEM ON PARAMETER stocks_stream.test_clock FROM {role}")
        sql(f"DROP ROLE {role}")
    assert sql_value("SHOW stocks_stream.test_clock") == "0"
