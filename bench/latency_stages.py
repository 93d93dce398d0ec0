"""Produce trades at a steady rate and time each one through the pipeline.

    latency_stages.py TOPIC RATE SECONDS

Each trade's "t" is the moment it is produced (key = symbol, so a symbol's
trades stay in order on one partition).  Three watchers run beside the
producer, each on its own thread:

  kafka   a consumer of the topic: when the message could be read from Kafka
  silver  a poll (every 10 ms) of the highest offset per partition in
          stocks_stream.trades: when the row became visible (committed)
  gold    a poll (every 10 ms) of the 1m candles of the run's symbols: when
          the candle of the trade's minute counted it (sample_count)

It also reads, per trade, the manifest's archived_at of its object (when
the worker recorded it: batch age + PUT + record) and silver's loaded_at
(the loading transaction's start).  Prints one name=value line per figure:
percentiles of produce->stage for each stage, in ms.
"""
import hashlib
import json
import os
import sys
import threading
import time

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

POLL_S = 0.010
SYMBOLS = ["LATA", "LATB", "LATC", "LATD", "LATE", "LATF", "LATG", "LATH"]


def now_ms():
    return time.time() * 1000.0


class Watch(threading.Thread):
    """Runs poll() every POLL_S until stop is set and a last poll has run."""

    def __init__(self, stop):
        super().__init__(daemon=True)
        self.stop = stop

    def run(self):
        while True:
            last = self.stop.is_set()
            self.poll()
            if last:
                return
            time.sleep(POLL_S)


class KafkaWatch(Watch):
    def __init__(self, stop, topic):
        super().__init__(stop)
        self.seen = {}  # (partition, offset) -> ms
        self.c = Consumer({"bootstrap.servers": os.environ["KAFKA_BROKERS"],
                           "group.id": f"latency-watch-{topic}", "auto.offset.reset": "earliest",
                           "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        # assigned, not subscribed: no group join to wait for
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, 0) for p in parts])

    def poll(self):
        for m in self.c.consume(1000, 0.005):
            if not m.error():
                self.seen[(m.partition(), m.offset())] = now_ms()


class SilverWatch(Watch):
    def __init__(self, stop, topic):
        super().__init__(stop)
        self.topic = topic
        self.high = {}
        self.seen = {}  # (partition, offset) -> ms
        self.conn = psycopg.connect(autocommit=True)

    def poll(self):
        rows = self.conn.execute(
            "SELECT source_partition, max(source_offset) FROM stocks_stream.trades "
            " WHERE source_topic = %s AND trade_time > now() - interval '1 hour' GROUP BY 1",
            [self.topic]).fetchall()
        t = now_ms()
        for p, high in rows:
            for o in range(self.high.get(p, -1) + 1, high + 1):
                self.seen[(p, o)] = t
            self.high[p] = max(high, self.high.get(p, -1))


class GoldWatch(Watch):
    def __init__(self, stop):
        super().__init__(stop)
        self.count = {}
        self.seen = {}  # (symbol, minute, k) -> ms: the k-th trade of the minute counted
        self.conn = psycopg.connect(autocommit=True)

    def poll(self):
        rows = self.conn.execute(
            "SELECT symbol, extract(epoch FROM bucket_start)::bigint, sample_count FROM stocks_stream.candles "
            " WHERE interval = '1m' AND symbol = ANY(%s) AND bucket_start > now() - interval '1 hour'",
            [SYMBOLS]).fetchall()
        t = now_ms()
        for s, minute, n in rows:
            for k in range(self.count.get((s, minute), 0) + 1, n + 1):
                self.seen[(s, minute, k)] = t
            self.count[(s, minute)] = max(n, self.count.get((s, minute), 0))


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def main(topic, rate, secs):
    # symbols of this run alone: a run in the same minute as the one before
    # would otherwise find that run's trades already counted in the candles
    global SYMBOLS
    tag = hashlib.sha1(topic.encode()).hexdigest()[:4].upper()
    SYMBOLS = [f"L{tag}{s[-1]}" for s in SYMBOLS]
    stop = threading.Event()
    watches = {"kafka": KafkaWatch(stop, topic), "silver": SilverWatch(stop, topic), "gold": GoldWatch(stop)}
    for w in watches.values():
        w.start()
    p = Producer({"bootstrap.servers": os.environ["KAFKA_BROKERS"], "enable.idempotence": True, "linger.ms": 0})
    sent = {}  # (partition, offset) -> (symbol, t)

    def delivered(err, msg):
        if err is None:
            v = json.loads(msg.value())
            sent[(msg.partition(), msg.offset())] = (v["s"], v["t"])

    # A new producer holds its first messages for about a second (its start:
    # topic metadata, then an idempotent producer id), which read as a 1 s
    # tail of the pipeline when the first trades were timed.  A long-lived
    # producer (the ingest worker) pays it once, so the timed trades come
    # after one untimed warm-up trade has been acknowledged.
    p.produce(topic, key=SYMBOLS[0], value=json.dumps({"s": SYMBOLS[0], "p": 100, "t": now_ms(), "v": 1}))
    p.flush(30)
    n, start = 0, time.time()
    while time.time() - start < secs:
        due = int((time.time() - start) * rate) - n
        for _ in range(max(due, 0)):
            s = SYMBOLS[n % len(SYMBOLS)]
            p.produce(topic, key=s, value=json.dumps({"s": s, "p": 100 + n % 50, "t": now_ms(), "v": 10,
                                                      "c": ["1"]}), on_delivery=delivered)
            n += 1
        p.poll(0)
        time.sleep(0.002)
    p.flush(60)

    # wait until every trade is in silver (and gold, when kept fresh), up to a minute
    deadline = time.time() + 60
    while time.time() < deadline and len(watches["silver"].seen) < len(sent):
        time.sleep(0.1)
    gold_due = time.time() + 5
    while time.time() < gold_due and len(watches["gold"].seen) < len(sent):
        time.sleep(0.1)
    stop.set()
    for w in watches.values():
        w.join(10)

    with psycopg.connect(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT t.source_partition, t.source_offset, extract(epoch FROM t.loaded_at) * 1000,"
            "       extract(epoch FROM m.archived_at) * 1000"
            "  FROM stocks_stream.trades t JOIN stocks_stream.manifest m"
            "    ON m.topic = t.source_topic AND m.partition = t.source_partition"
            "   AND t.source_offset BETWEEN m.first_offset AND m.last_offset"
            " WHERE t.source_topic = %s", [topic]).fetchall()
    archived = {(r[0], r[1]): float(r[3]) for r in rows}
    loaded = {(r[0], r[1]): float(r[2]) for r in rows}

    # the k-th trade of its symbol's minute, in production order
    kth, per_minute = {}, {}
    for key in sorted(sent, key=lambda k: sent[k][1]):
        s, t = sent[key]
        m = int(t // 60000) * 60
        per_minute[(s, m)] = per_minute.get((s, m), 0) + 1
        kth[key] = (s, m, per_minute[(s, m)])

    stages = {
        "kafka": {k: watches["kafka"].seen.get(k) for k in sent},
        "archived": {k: archived.get(k) for k in sent},
        "loaded_at": {k: loaded.get(k) for k in sent},
        "silver": {k: watches["silver"].seen.get(k) for k in sent},
        "gold": {k: watches["gold"].seen.get(kth[k]) for k in sent},
    }
    if os.environ.get("LATENCY_RAW"):
        with open(os.environ["LATENCY_RAW"], "w") as f:
            for k in sorted(sent, key=lambda k: sent[k][1]):
                f.write(json.dumps({"p": k[0], "o": k[1], "s": sent[k][0], "t": sent[k][1],
                                    **{n: (at[k] - sent[k][1] if at[k] is not None else None)
                                       for n, at in stages.items()}}) + "\n")
    print(f"messages={len(sent)}")
    for name, at in stages.items():
        lat = [at[k] - sent[k][1] for k in sent if at[k] is not None]
        print(f"{name}_count={len(lat)}")
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            print(f"{name}_{label}_ms={pct(lat, q):.1f}")
        print(f"{name}_max_ms={max(lat) if lat else float('nan'):.1f}")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
