"""Watch one archive pipeline until its manifest holds N messages.

    watch_archive.py PIPELINE N

Prints one line: seconds (worker start to last flush), peak private RSS in
kB (RssAnon + RssFile: the worker's own pages, without the shared buffers
it touched), peak VmHWM in kB, the steady rate in messages/s (every object
but the first, first to last flush: it leaves out the consumer-group join
and the first fetch), the number of objects written, and the CPU seconds
(user + system) that the worker, MinIO and the Kafka broker used from the
pipeline's start until the manifest held N messages: what each of the
three processes on the two shared cores cost the run.

One process with one connection, reading /proc every 50 ms and the manifest
every 200 ms, so measuring costs the two shared cores little (a psql per
sample cost the worker a third of a core).  The connection comes from the
PG* variables (scripts/stack env).
"""
import os
import sys
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


def main(name, n):
    conn = psycopg.connect(autocommit=True)
    servers = {s: stack_pid(s) for s in ("minio", "kafka")}
    server_cpu = {s: cpu_seconds(pid) for s, pid in servers.items()}
    worker_cpu = 0.0

    def q(sql):
        return conn.execute(sql, [name]).fetchone()[0]

    pid, peak, hwm, last_check = None, 0, 0, 0.0
    while True:
        now = time.monotonic()
        if pid is None:
            pid = q("SELECT max(pid) FROM stocks_stream.worker_status WHERE pipeline = %s")
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
            if q("SELECT coalesce(sum(message_count), 0) FROM stocks_stream.manifest WHERE pipeline = %s") >= n:
                worker_cpu = cpu_seconds(pid) or worker_cpu
                server_cpu = {s: cpu_seconds(p) - server_cpu[s] for s, p in servers.items()}
                break
        time.sleep(0.05)
    secs = q("SELECT extract(epoch FROM last_flush - started_at) FROM stocks_stream.worker_status"
             " WHERE pipeline = %s")
    steady = q("""SELECT round((sum(message_count) - (array_agg(message_count ORDER BY archived_at))[1])
                         / nullif(extract(epoch FROM max(archived_at) - min(archived_at)), 0))
                    FROM stocks_stream.manifest WHERE pipeline = %s""")
    objects = q("SELECT count(*) FROM stocks_stream.manifest WHERE pipeline = %s")
    print(secs, peak, hwm, steady or 0, objects, f"{worker_cpu:.2f}", f"{server_cpu['minio']:.2f}",
          f"{server_cpu['kafka']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
