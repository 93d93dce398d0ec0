"""Fixtures of the integration tests.

The helpers (sql, wait_until, Topic, Pipeline, Source, parse_key, ...) live in
stack_support.py, a plain module: test files import them from there
(`from stack_support import sql, Topic`), never from this file.
"""
import pytest

from stack_support import ArchiveClock, Pipeline, Topic, set_settings


@pytest.fixture(scope="session", autouse=True)
def records_of_any_time():
    """The suites' records carry fixed event times (November 2025) while Kafka
    stamps them when they are produced, so stocks_stream.event_time_window is
    off for them; the tests of the window itself set it (test_hostile_s3.py)."""
    set_settings(event_time_window=0)
    yield
    set_settings(event_time_window=None)


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


@pytest.fixture
def no_retry_backoff():
    """A failed object is retried by the very next load (stocks_stream.load_retry_backoff
    is 0): for the tests of what a later call does once S3 is back."""
    set_settings(load_retry_backoff=0)
    yield
    set_settings(load_retry_backoff=None)


@pytest.fixture
def clock():
    """The archive workers' clock, standing still from the start of the test
    until the test moves it (stack_support.ArchiveClock)."""
    c = ArchiveClock()
    c.set(0)
    yield c
    c.reset()
