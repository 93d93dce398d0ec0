"""TLS to S3 and Kafka, end to end (docs/tls.md): the archive, the loads and
the backfill over HTTPS to a MinIO behind the stack's private CA, the
archive through Kafka's SASL_SSL listener (SCRAM-SHA-512), and each TLS
failure an operator can meet shown in worker_status with the check that
failed and the setting to fix, with nothing lost or archived twice once it
is fixed.

Certificates a real server should never have (expired, for another host)
are served by a small TLS front (TlsFront) made here with openssl; the
stack's own CA and certificates are made by scripts/stack."""
import base64
import contextlib
import datetime
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import uuid

import psycopg
import pytest

from botocore.exceptions import ClientError

from stack_support import (ServerLog, Topic, holds_for, quote_message, s3_client, set_secret, set_settings, sql,
                           wait_until)

CA = os.environ.get("STOCKS_STREAM_CA", "")
HTTPS_S3 = os.environ.get("S3_TLS_ENDPOINT", "")

pytestmark = pytest.mark.skipif(not (CA and HTTPS_S3), reason="the stack has no TLS (scripts/stack env)")


# --- certificates ----------------------------------------------------------------

@pytest.fixture(scope="module")
def certs():
    """A folder the server's user can read (it reads the CA files named in
    stocks_stream.s3_ca_file) for the certificates made here."""
    d = os.path.join(os.path.dirname(CA), "test", uuid.uuid4().hex[:8])
    os.makedirs(d)
    os.chmod(os.path.dirname(d), 0o755)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(folder, name):
    """A CA of its own: (its certificate, its key)."""
    pem, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-subj", f"/CN={name}", "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-out", pem)
    os.chmod(pem, 0o644)
    return pem, key


def make_server_cert(folder, name, ca_pem, ca_key, san, start, end):
    """A server certificate signed by the CA, valid from start to end
    (YYYYMMDDHHMMSSZ; `openssl ca` takes dates in the past, OpenSSL 3.0's
    x509 does not): (its certificate, its key)."""
    d = os.path.join(folder, name)
    os.makedirs(d)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write(uuid.uuid4().hex[:16] + "\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(f"""[ca]
default_ca = test
[test]
database = {d}/index.txt
new_certs_dir = {d}
serial = {d}/serial
default_md = sha256
policy = any
x509_extensions = server
unique_subject = no
[any]
commonName = supplied
[server]
subjectAltName = {san}
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
""")
    key, csr, pem = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.pem"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-subj", f"/CN={name}", "-out", csr)
    openssl("ca", "-batch", "-notext", "-config", os.path.join(d, "ca.cnf"), "-cert", ca_pem, "-keyfile", ca_key,
            "-in", csr, "-out", pem, "-startdate", start, "-enddate", end)
    return pem, key


class TlsFront:
    """A TLS server on a port of its own with the certificate given, which
    passes what it decrypts to the stack's plain MinIO: the hostile S3
    answer of a certificate a client must refuse."""

    def __init__(self, cert, key):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.target = ("127.0.0.1", int(os.environ["S3_ENDPOINT"].rsplit(":", 1)[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.handshakes_refused = 0
        self.closing = False

    @property
    def url(self):
        return f"https://127.0.0.1:{self.listener.getsockname()[1]}"

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.closing = True
        self.listener.close()

    def _accept(self):
        while not self.closing:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_refused += 1
            conn.close()
            return
        with tls, socket.create_connection(self.target) as upstream:
            threading.Thread(target=self._pipe, args=(upstream, tls), daemon=True).start()
            self._pipe(tls, upstream)

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass


# --- S3 over HTTPS ---------------------------------------------------------------

@pytest.fixture(scope="module")
def https_s3():
    """The server's S3 client and the tests' boto3 client both at the HTTPS
    MinIO, trusting the stack's CA; a short backoff so retries come quickly."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("S3_ENDPOINT", HTTPS_S3)
        env.setenv("AWS_CA_BUNDLE", CA)
        set_settings(s3_endpoint=HTTPS_S3, s3_ca_file=CA, retry_max_backoff="4s")
        try:
            yield
        finally:
            set_settings(s3_endpoint=None, s3_ca_file=None, retry_max_backoff=None)


def silver_rows(topic):
    return sql("SELECT count(*), count(DISTINCT (source_partition, source_offset)) FROM stocks_stream.quotes "
               "WHERE source_topic = %s", [topic])[0]


def assert_archived_once(pipeline, topic):
    """Every message produced is in the bucket once: (produced, archived, lost, duplicated)."""
    archived = pipeline.archived_messages()     # fails on an offset archived twice
    lost = set(topic.produced) - set(archived)
    assert topic.failed == 0
    assert (len(topic.produced), len(archived), len(lost)) == (len(topic.produced), len(topic.produced), 0)
    assert all(archived[k] == v for k, v in topic.produced.items())


def archive(make_pipeline, n, batch_messages):
    """n quotes produced to a new topic and archived by a new pipeline, once
    each; the pipeline is stopped then.  Returns (pipeline, topic)."""
    topic = Topic()
    p = make_pipeline(topic, batch_max_messages=batch_messages, batch_max_age_ms=300)
    p.start()
    topic.produce([quote_message(i) for i in range(n)])
    p.wait_archived(n)
    assert_archived_once(p, topic)
    assert [(w.state, w.last_error) for w in p.workers()] == [("running", None)]
    p.stop()
    return p, topic


def test_archive_load_and_backfill_over_https_with_a_private_ca(https_s3, make_pipeline):
    p, topic = archive(make_pipeline, 1000, 200)

    (load,) = sql("SELECT * FROM stocks_stream.load_bronze(%s)", [p.name])
    assert (load.rows_loaded, load.rows_duplicate, load.rows_quarantined, load.objects_failed) == (1000, 0, 0, 0)
    assert silver_rows(topic.name) == (1000, 1000)

    # the backfill of the same objects with no manifest: each listed, read and found loaded
    sql("DELETE FROM stocks_stream.manifest WHERE pipeline = %s", [p.name])
    (backfill,) = sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, %s)", [p.bucket, f"bronze/{topic.name}/"])
    assert backfill.objects_loaded == load.objects_loaded >= 5
    assert (backfill.rows_loaded, backfill.rows_duplicate, backfill.objects_failed) == (0, 1000, 0)
    assert silver_rows(topic.name) == (1000, 1000)


def test_a_backfill_into_empty_silver_over_https_loads_every_object_once(https_s3, make_pipeline):
    p, topic = archive(make_pipeline, 600, 150)
    sql("DELETE FROM stocks_stream.manifest WHERE pipeline = %s", [p.name])
    (r,) = sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [p.bucket])
    assert (r.rows_loaded, r.rows_duplicate, r.rows_quarantined, r.objects_failed) == (600, 0, 0, 0)
    assert silver_rows(topic.name) == (600, 600)
    assert sql("SELECT * FROM stocks_stream.load_bronze_prefix(%s, '')", [p.bucket]) == [(0, 0, 0, 0, 0)]


# --- the payload's integrity over TLS: a CRC-32C the server checks ---------------

def crc32c(data):
    """CRC-32C (Castagnoli), as S3's x-amz-checksum-crc32c: 4 big-endian bytes in base64."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return base64.b64encode((crc ^ 0xFFFFFFFF).to_bytes(4, "big")).decode()


def test_crc32c_is_the_castagnoli_check_value():
    assert base64.b64decode(crc32c(b"123456789")) == bytes.fromhex("e3069283")


@pytest.mark.parametrize("checksum, refused", [(crc32c(b"one line\n"), None),
                                               (crc32c(b"another line\n"), "XAmzContentChecksumMismatch")])
def test_the_https_s3_server_refuses_a_body_whose_crc32c_does_not_match(https_s3, checksum, refused):
    """What the archive relies on over TLS, where its PUTs are UNSIGNED-PAYLOAD:
    the server the stack runs checks x-amz-checksum-crc32c and refuses a body
    that does not match it."""
    s3, bucket = s3_client(), "crc-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="k", Body=b"one line\n", ChecksumCRC32C=checksum)
        outcome = None
    except ClientError as e:
        outcome = e.response["Error"]["Code"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    for key in keys:
        s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    assert (outcome, keys) == (refused, [] if refused else ["k"])


def test_objects_archived_over_https_carry_the_crc32c_of_their_bytes(https_s3, make_pipeline):
    """Over TLS the archive sends UNSIGNED-PAYLOAD with a CRC-32C in place of
    the SHA-256 of every object: the server stored the CRC of each object as
    it holds it, so it checked it on the way in."""
    p, topic = archive(make_pipeline, 500, 100)
    s3 = s3_client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=p.bucket)["Contents"]]
    assert len(keys) >= 5
    for key in keys:
        body = s3.get_object(Bucket=p.bucket, Key=key)["Body"].read()
        head = s3.head_object(Bucket=p.bucket, Key=key, ChecksumMode="ENABLED")
        assert head.get("ChecksumCRC32C") == crc32c(body), key


# --- TLS failures of S3: shown, retried, nothing lost once fixed ------------------

def past(days_ago):
    """The time days_ago days before now, as `openssl ca` takes it (negative: in the future)."""
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_ago)
    return t.strftime("%Y%m%d%H%M%SZ")


@contextlib.contextmanager
def wrong_ca(certs):
    """The trust file names another CA than the one that signed MinIO's certificate."""
    other, _ = make_ca(certs, "other-ca-" + uuid.uuid4().hex[:6])
    yield {"s3_endpoint": HTTPS_S3, "s3_ca_file": other}, {"s3_ca_file": CA}


@contextlib.contextmanager
def expired_certificate(certs):
    """The S3 server's certificate, signed by the stack's CA, expired yesterday."""
    cert, key = make_server_cert(certs, "expired-" + uuid.uuid4().hex[:6], CA, os.path.join(os.path.dirname(CA), "ca.key"),
                                 "IP:127.0.0.1,DNS:localhost", past(30), past(1))
    with TlsFront(cert, key) as front:
        yield {"s3_endpoint": front.url, "s3_ca_file": CA}, {"s3_endpoint": HTTPS_S3}


@contextlib.contextmanager
def hostname_mismatch(certs):
    """The S3 server's certificate, signed by the stack's CA and valid, names another host."""
    cert, key = make_server_cert(certs, "other-host-" + uuid.uuid4().hex[:6], CA,
                                 os.path.join(os.path.dirname(CA), "ca.key"), "DNS:s3.other.example", past(1), past(-30))
    with TlsFront(cert, key) as front:
        yield {"s3_endpoint": front.url, "s3_ca_file": CA}, {"s3_endpoint": HTTPS_S3}


@pytest.mark.parametrize("failure, check, hint", [
    (wrong_ca, "CA check failed: the server's certificate is not signed by a CA in",
     "hint: set stocks_stream.s3_ca_file to the PEM file of the CA that signed it"),
    (expired_certificate, "validity check failed: the server's certificate has expired",
     "hint: renew the S3 server's certificate, or set stocks_stream.s3_endpoint"),
    (hostname_mismatch, "hostname check failed: the server's certificate does not name the host of "
     "stocks_stream.s3_endpoint", "hint: set stocks_stream.s3_endpoint to a host name the certificate holds"),
], ids=["wrong-ca", "expired-certificate", "hostname-mismatch"])
def test_a_tls_failure_of_s3_is_shown_with_its_fix_and_nothing_is_lost_once_fixed(
        https_s3, make_pipeline, certs, failure, check, hint):
    topic = Topic()
    with failure(certs) as (broken, fixed):
        set_settings(**broken)
        log = ServerLog()
        p = make_pipeline(topic, batch_max_messages=100, batch_max_age_ms=300)
        p.start()
        topic.produce([quote_message(i) for i in range(500)])
        (worker,) = wait_until(lambda: [w for w in p.workers() if w.last_error], 60, "the worker to report TLS")
        print(f"{failure.__name__}: state={worker.state!r} last_error={worker.last_error!r}")
        assert worker.state == "waiting for S3"
        assert check in worker.last_error and hint in worker.last_error
        assert p.archived_count() == 0
        # retried, each wait longer than the one before, up to the bound
        retries = rf'pipeline "{p.name}": .*; retrying in (\d+) ms'
        waits = wait_until(lambda: [int(ms) for ms in re.findall(retries, log.new())][:3]
                           if len(re.findall(retries, log.new())) >= 3 else None, 60, "three retries")
        assert waits == sorted(waits) and waits[0] < waits[-1], waits
        set_settings(**fixed)
    p.wait_archived(500, timeout=120)
    assert_archived_once(p, topic)
    (worker,) = p.workers()
    assert worker.state == "running"


# --- Kafka over SASL_SSL (SCRAM-SHA-512) ------------------------------------------

def sasl_ssl_properties(ca):
    return (f"security.protocol=SASL_SSL;sasl.mechanisms=SCRAM-SHA-512;"
            f"sasl.username={os.environ['KAFKA_SCRAM_USER']};ssl.ca.location={ca}")


@contextlib.contextmanager
def kafka_over_sasl_ssl(password, ca=CA):
    """The server's Kafka clients at the SASL_SSL listener: the user and the
    CA in stocks_stream.kafka_properties, the password in the secrets file
    (never a setting).  The tests' own clients keep the PLAINTEXT listener."""
    previous = set_secret("kafka.sasl.password", password)
    set_settings(kafka_brokers=os.environ["KAFKA_TLS_BROKERS"], kafka_properties=sasl_ssl_properties(ca))
    try:
        yield
    finally:
        set_secret("kafka.sasl.password", previous)
        set_settings(kafka_brokers=None, kafka_properties=None)


def test_archive_through_kafka_sasl_ssl_with_scram(https_s3, make_pipeline):
    topic = Topic()
    with kafka_over_sasl_ssl(os.environ["KAFKA_SCRAM_PASSWORD"]):
        p = make_pipeline(topic, batch_max_messages=200, batch_max_age_ms=300)
        p.start()
        topic.produce([quote_message(i) for i in range(800)])
        p.wait_archived(800)
        assert_archived_once(p, topic)
        (worker,) = p.workers()
        assert (worker.state, worker.last_error) == ("running", None)
        # the worker's connections to Kafka are all to the SASL_SSL listener
        assert kafka_ports_of(worker.pid) == {int(os.environ["KAFKA_TLS_BROKERS"].rsplit(":", 1)[1])}


def kafka_ports_of(pid):
    """The Kafka ports (PLAINTEXT or SASL_SSL) a process has connections to
    (its sockets, found in /proc/net/tcp by their inodes)."""
    ports = {int(os.environ["KAFKA_BROKERS"].rsplit(":", 1)[1]), int(os.environ["KAFKA_TLS_BROKERS"].rsplit(":", 1)[1])}
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return {int(r[2].split(":")[1], 16) for r in rows if r[9] in inodes} & ports


def wrong_scram_password(certs):
    """(the password and CA the client is given, how to fix it)"""
    def fix():
        set_secret("kafka.sasl.password", os.environ["KAFKA_SCRAM_PASSWORD"])
        sql("SELECT pg_reload_conf()")
    return ("not-the-password", CA), fix


def wrong_kafka_ca(certs):
    other, _ = make_ca(certs, "other-ca-" + uuid.uuid4().hex[:6])
    return (os.environ["KAFKA_SCRAM_PASSWORD"], other), lambda: set_settings(kafka_properties=sasl_ssl_properties(CA))


@pytest.mark.parametrize("failure, state, error, hint", [
    (wrong_scram_password, "Kafka authentication failed", "SASL authentication error",
     "hint: check kafka.sasl.password in stocks_stream.secrets_file and sasl.username in "
     "stocks_stream.kafka_properties, then reload"),
    (wrong_kafka_ca, "Kafka TLS failed", "certificate verify failed",
     "hint: check that ssl.ca.location in stocks_stream.kafka_properties names the CA that signed the brokers' "
     "certificates, and stocks_stream.kafka_brokers hosts they name, then reload)"),
], ids=["wrong-scram-password", "wrong-ca"])
def test_a_kafka_refusal_is_shown_with_its_fix_and_nothing_is_lost_once_fixed(
        https_s3, make_pipeline, certs, failure, state, error, hint):
    topic = Topic()
    (password, ca), fix = failure(certs)
    with kafka_over_sasl_ssl(password, ca):
        p = make_pipeline(topic, batch_max_messages=100, batch_max_age_ms=300)
        p.start()
        topic.produce([quote_message(i) for i in range(500)])
        (worker,) = wait_until(lambda: [w for w in p.workers() if w.last_error], 60, "the worker to report Kafka")
        print(f"{failure.__name__}: state={worker.state!r} last_error={worker.last_error!r}")
        assert worker.state == state
        assert error in worker.last_error and hint in worker.last_error
        # librdkafka keeps trying (with its reconnect backoff), and the state holds
        holds_for(lambda: [(w.state, p.archived_count()) for w in p.workers()] == [(state, 0)], 5,
                  "the refusal to be shown with nothing archived")
        fix()       # a reload: the worker restarts with the fixed settings
        p.wait_archived(500, timeout=120)
        assert_archived_once(p, topic)
        assert [(w.state, w.last_error) for w in p.workers()] == [("running", None)]


@pytest.mark.parametrize("where, name, value", [
    ("setting", "enable.ssl.certificate.verification", "false"),
    ("setting", "ssl.endpoint.identification.algorithm", "none"),
    ("secrets file", "enable.ssl.certificate.verification", "0"),
])
def test_no_kafka_property_turns_the_brokers_certificate_checks_off(make_pipeline, where, name, value):
    """Kafka's TLS checks stay on as S3's do: a property that would turn one
    off is refused wherever it is written, with a hint to name the CA."""
    p = make_pipeline(Topic())
    with kafka_over_sasl_ssl(os.environ["KAFKA_SCRAM_PASSWORD"]):
        if where == "setting":
            set_settings(kafka_properties=sasl_ssl_properties(CA) + f";{name}={value}")
        else:
            set_secret(f"kafka.{name}", value)
            sql("SELECT pg_reload_conf()")
        try:
            with pytest.raises(psycopg.Error, match=rf"{name}=\w+ turns off a TLS check of the brokers' certificates"):
                sql("SELECT * FROM stocks_stream.consumer_lag WHERE pipeline = %s", [p.name])
        finally:
            set_secret(f"kafka.{name}", None)
        set_settings(kafka_properties=sasl_ssl_properties(CA))
        assert sql("SELECT count(*) FROM stocks_stream.consumer_lag WHERE pipeline = %s", [p.name])[0][0] == 4
