"""Fixtures of the integration tests.

The helpers (sql, wait_until, Topic, Pipeline, Source, parse_key, ...) live in
stack_support.py, a plain module: test files import them from there
(`from stack_support import sql, Topic`), never from this file.
"""
import pytest

# Imported for the fixtures below, and still importable from here for test
# files not yet moved to `from stack_support import ...`.
from stack_support import (BROKERS, ROOT, Message, Pipeline, Source, Topic, archive_simulated,  # noqa: F401
                           high_watermarks, holds_for, kafka_committed, parse_key, quote_message,
                           read_topic, s3_client, sql, sql_value, stack, wait_until)


@pytest.fixture
def topic():
    return Topic()


@pytest.fixture
def make_pipeline():
    made = []

    def make(topic, **options):
        p = Pipeline(topic, **options)
        made.append(p)
        return p

    yield make
    for p in made:
        try:
            p.drop()
        except Exception:
            pass
