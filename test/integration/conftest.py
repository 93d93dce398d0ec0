"""Fixtures of the integration tests.

The helpers (sql, wait_until, Topic, Pipeline, Source, parse_key, ...) live in
stack_support.py, a plain module: test files import them from there
(`from stack_support import sql, Topic`), never from this file.
"""
import pytest

from stack_support import Pipeline, Topic


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
