"""Create or delete the benchmarks' Kafka topics, and say so when it fails.

    topics.py create|delete TOPIC...

The broker is $KAFKA_BROKERS.  Topics are created with 4 partitions
(BENCH_PARTITIONS overrides).  The admin client is kept until the broker
has answered every request (a client destroyed earlier cancels them), each
answer is checked, and every failure is printed; the exit status is 1 when
any topic could not be created or deleted.  Deleting a topic that does not
exist is not a failure.
"""
import os
import sys

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic


def main(argv):
    if len(argv) < 3 or argv[1] not in ("create", "delete"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    op, names = argv[1], argv[2:]
    admin = AdminClient({"bootstrap.servers": os.environ["KAFKA_BROKERS"]})
    if op == "create":
        partitions = int(os.environ.get("BENCH_PARTITIONS", "4"))
        futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names], operation_timeout=30)
    else:
        futures = admin.delete_topics(names, operation_timeout=30)
    failed = 0
    for name, future in futures.items():
        try:
            future.result(60)
        except KafkaException as e:
            if op == "delete" and e.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            print(f"bench: could not {op} topic {name}: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
