"""Secrets are readable by superusers only: not by pg_monitor members (a
monitoring agent's usual role), who may read every setting; so no setting
holds one, and the file the settings name is the server's alone."""
import os
import stat
import uuid

import psycopg
import pytest

from stack_support import secrets_path, sql, sql_value


@pytest.fixture
def monitor():
    """A login role that is a member of pg_monitor (so of pg_read_all_settings)."""
    role = "monitor_" + uuid.uuid4().hex[:6]
    sql(f"CREATE ROLE {role} LOGIN IN ROLE pg_monitor")
    with psycopg.connect(user=role, autocommit=True) as conn:
        yield conn
    sql(f"DROP ROLE {role}")


def test_a_pg_monitor_member_reads_every_setting_and_no_secret(monitor):
    secret = os.environ["S3_SECRET_KEY"]
    settings = monitor.execute("SELECT name, setting FROM pg_settings").fetchall()
    shown = monitor.execute("SHOW ALL").fetchall()
    assert any(name == "stocks_stream.secrets_file" for name, _ in settings)
    assert not [name for name, value in settings if value and secret in value]
    assert not [row[0] for row in shown if row[1] and secret in row[1]]
    for name in ("s3_secret_key", "s3_access_key", "finnhub_api_key"):
        with pytest.raises(psycopg.errors.UndefinedObject):
            monitor.execute(f"SHOW stocks_stream.{name}")


def test_the_secrets_file_is_the_servers_alone(monitor):
    path = secrets_path()
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.stat(os.path.dirname(path)).st_uid  # the server's user
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        monitor.execute("SELECT pg_read_file(current_setting('stocks_stream.secrets_file'))")


def test_a_secrets_file_others_can_read_is_refused_with_a_hint():
    path = secrets_path()
    os.chmod(path, 0o644)
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            sql("SELECT * FROM stocks_stream.load_bronze_prefix('no-such-bucket', '')")
        assert "has group or world access" in e.value.diag.message_primary
        assert "chmod 600" in e.value.diag.message_hint
    finally:
        os.chmod(path, 0o600)
    # once it is private again, S3 answers with the stack's credentials
    with pytest.raises(psycopg.errors.ConnectionFailure) as e:
        sql("SELECT * FROM stocks_stream.load_bronze_prefix('no-such-bucket', '')")
    assert "NoSuchBucket" in str(e.value)
    assert sql_value("SELECT 1") == 1
