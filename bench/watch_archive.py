"""Watch one archive pipeline until its manifest holds N messages.

    watch_archive.py PIPELINE N [--phases] [--perf PERF_DATA]

Prints one line: seconds (worker start to last flush), peak private RSS in
kB (RssAnon + RssFile: the worker's own pages, without the shared buffers
it touched), peak VmHWM in kB, the steady rate in messages/s (every object
but the first, first to last flush: it leaves out the consumer-group join
and the first fetch), the number of objects written, and the CPU seconds
(user + system) that the worker, MinIO and the Kafka broker used from the
pipeline's start until the manifest held N messages: what each of the
three processes on the two shared cores cost the run.

With --phases five more: the bytes stored, and the wall time split into
phases, in seconds, from timestamps the stack keeps anyway (nothing is
measured per message):

  join    worker_status.started_at to the broker's "Stabilized group" line
          for the pipeline's consumer group (Kafka's server.log)
  first   group formed to the first object recorded in the manifest
          (committed offsets, first fetches, a batch filled, its PUT and
          the manifest transaction)
  steady  first to last object recorded
  tail    last object recorded to worker_status.last_flush

With --perf, the worker is recorded with `perf record --call-graph dwarf
-F 999` from the moment its pid is known until the manifest is complete
(`scripts/stack start` reinstalls the extension's .so, so the worker may
map a "(deleted)" file: give `perf report` a --symfs holding a copy).

One process with one connection, reading /proc every 50 ms and the manifest
every 200 ms, so measuring costs the two shared cores little (a psql per
sample cost the worker a third of a core).  The connection comes from the
PG* variables (scripts/stack env).
"""
import argparse
import datetime
import os
import signal
import subprocess
import time

import psycopg


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process (its threads included), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def stack_pid(service):
    with open(os.path.join(os.environ["STOCKS_STREAM_STACK"], service, "pid")) as f:
        return int(f.read())


def stabilized_at(group):
    """Epoch seconds of the broker's last 'Stabilized group GROUP ' line, or None."""
    log = os.path.join(os.environ["STOCKS_STREAM_STACK"], "kafka", "logs", "server.log")
    needle, found = f"Stabilized group {group} ", None
    with open(log, errors="replace") as f:
        for line in f:
            if needle in line:
                found = line
    if found is None:
        return None
    # "[2026-12-05 16:18:52,604] INFO ...", in the broker's local time, which is the machine's
    stamp = datetime.datetime.strptime(found[1:24], "%Y-%m-%d %H:%M:%S,%f")
    return time.mktime(stamp.timetuple()) + stamp.microsecond / 1e6


def start_perf(pid, perf_data):
    # DWARF call graphs: neither PostgreSQL nor Debian's libraries keep frame pointers
    return subprocess.Popen(["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "999", "-p", str(pid),
                             "-o", perf_data], stdout=subprocess.DEVNULL)


def phases(q, name):
    """bytes stored, join, first, steady, tail (module docstring)."""
    started, last_flush = q("SELECT extract(epoch FROM started_at), extract(epoch FROM last_flush)"
                            " FROM stocks_stream.worker_status WHERE pipeline = %s")
    first_at, last_at, stored = q("SELECT extract(epoch FROM min(archived_at)), extract(epoch FROM max(archived_at)),"
                                  " sum(bytes) FROM stocks_stream.manifest WHERE pipeline = %s")
    started, last_flush, first_at, last_at = map(float, (started, last_flush, first_at, last_at))
    formed = stabilized_at(f"stocks_stream.{name}")
    join = formed - started if formed is not None else float("nan")
    first = first_at - formed if formed is not None else float("nan")
    return [str(stored), f"{join:.3f}", f"{first:.3f}", f"{last_at - first_at:.3f}", f"{last_flush - last_at:.3f}"]


def main(name, n, with_phases=False, perf_data=None):
    conn = psycopg.connect(autocommit=True)
    servers = {s: stack_pid(s) for s in ("minio", "kafka")}
    server_cpu = {s: cpu_seconds(pid) for s, pid in servers.items()}
    worker_cpu = 0.0

    def q(sql):
        return conn.execute(sql, [name]).fetchone()

    pid, peak, hwm, last_check, perf = None, 0, 0, 0.0, None
    while True:
        now = time.monotonic()
        if pid is None:
            pid = q("SELECT max(pid) FROM stocks_stream.worker_status WHERE pipeline = %s")[0]
            if pid is not None and perf_data:
                perf = start_perf(pid, perf_data)
        if pid is not None:
            try:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f)
                kb = lambda k: int(fields.get(k, "0 kB").split()[0])  # noqa: E731
                peak = max(peak, kb("RssAnon") + kb("RssFile"))
                hwm = max(hwm, kb("VmHWM"))
            except OSError:
                pass
            worker_cpu = cpu_seconds(pid) or worker_cpu
        if now - last_check >= 0.2:
            last_check = now
            if q("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest WHERE pipeline = %s")[0] >= n:
                worker_cpu = cpu_seconds(pid) or worker_cpu
                server_cpu = {s: cpu_seconds(p) - server_cpu[s] for s, p in servers.items()}
                break
        time.sleep(0.05)
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    secs = q("SELECT extract(epoch FROM last_flush - started_at) FROM stocks_stream.worker_status"
             " WHERE pipeline = %s")[0]
    steady = q("""SELECT round((sum(message_count) - (array_agg(message_count ORDER BY archived_at))[1])
                         / nullif(extract(epoch FROM max(archived_at) - min(archived_at)), 0))
                    FROM stocks_stream.manifest WHERE pipeline = %s""")[0]
    objects = q("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s")[0]
    print(secs, peak, hwm, steady or 0, objects, f"{worker_cpu:.2f}", f"{server_cpu['minio']:.2f}",
          f"{server_cpu['kafka']:.2f}", *(phases(q, name) if with_phases else []))


if __name__ == "__main__":
    args = argparse.ArgumentParser()
    args.add_argument("pipeline")
    args.add_argument("n", type=int)
    args.add_argument("--phases", action="store_true")
    args.add_argument("--perf")
    a = args.parse_args()
    main(a.pipeline, a.n, a.phases, a.perf)
