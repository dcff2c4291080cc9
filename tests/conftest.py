"""Fixtures every test module shares: API clients with scoped tokens, services.

Tests that need PostgreSQL, Redis or a real Celery worker skip with a reason
when they are absent. With CRM_REQUIRE_ALL_TESTS=1 (CI against PostgreSQL and
Redis) a skip fails the run instead.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from crm.api import SCOPES

ROOT = Path(__file__).resolve().parent.parent
# The real provider payloads live beside the checkout (../shared/fixtures), or wherever CRM_SHARED_FIXTURES says.
SHARED_FIXTURES = Path(os.environ.get("CRM_SHARED_FIXTURES") or ROOT.parent / "shared" / "fixtures")
REQUIRE_ALL = os.environ.get("CRM_REQUIRE_ALL_TESTS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped, but CRM_REQUIRE_ALL_TESTS=1 requires every test to run: {reason}"


def pytest_collection_modifyitems(config, items):
    is_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    for item in items:
        if "postgres" in item.keywords and not is_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="needs Redis and a Celery worker: set REDIS_URL"))


@pytest.fixture(autouse=True)
def _api_tokens_uncached():
    """Each test starts with no API token cached, so query counts do not depend on test order.

    Only the token entries go: on Redis the cache shares its database with the Celery broker.
    """
    from django.core.cache import cache
    from django.core.cache.backends.redis import RedisCache

    from integrations.selectors import token_cache_key

    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(None, write=True)
        keys = list(client.scan_iter(match=f"*{token_cache_key('')}*"))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture
def shared_fixtures():
    """The real provider payloads beside the project (../shared/fixtures)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"the shared fixtures folder {SHARED_FIXTURES} is absent")
    return SHARED_FIXTURES


@pytest.fixture
def make_token(db):
    from integrations.services import api_token_create

    def make(*scopes, name="test"):
        token, raw = api_token_create(name=name, scopes=list(scopes or SCOPES))
        return raw

    return make


@pytest.fixture
def api(make_token):
    """An APIClient holding a token with every scope."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token()}")
    return client


@pytest.fixture
def scoped_api(make_token):
    """scoped_api("customers:read") -> an APIClient whose token holds just those scopes."""

    def make(*scopes):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(*scopes, name='scoped')}")
        return client

    return make


@pytest.fixture
def staff_user(db, django_user_model):
    return django_user_model.objects.create_user(
        username="agent", password="agent-password-1", is_staff=True, email="agent@example.com"
    )


def database_url_for_subprocess():
    """The URL of the database this test session uses (the test database)."""
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def subprocess_env(**extra):
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "DJANGO_SETTINGS_MODULE": "tests.settings", **extra}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env


class Worker:
    """A real `celery worker` process against the test database and Redis."""

    def __init__(self, queues=None, extra_env=None, pool="solo"):
        self.queues = queues
        self.extra_env = extra_env or {}
        self.pool = pool
        self.process = None
        self.log = None

    def start(self):
        import redis

        # A clean broker: nothing left over from an earlier test reaches this worker.
        redis.Redis.from_url(settings.REDIS_URL).flushdb()
        self.log = open(ROOT / "var" / f"test-worker-{os.getpid()}.log", "ab")
        args = [sys.executable, "-m", "celery", "-A", "crm", "worker", f"--pool={self.pool}", "--concurrency=1", "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"]
        if self.queues:
            args += ["-Q", ",".join(self.queues)]
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=subprocess_env(**self.extra_env), stdout=self.log, stderr=subprocess.STDOUT
        )
        from crm.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited with {self.process.returncode}; see {self.log.name}")
            try:
                if app.control.ping(timeout=0.5):
                    return self
            except Exception:  # noqa: BLE001 - the broker may still be starting
                pass
            time.sleep(0.2)
        raise RuntimeError("the worker did not answer a ping within 60 s")

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log:
            self.log.close()


@pytest.fixture
def celery_worker_process(transactional_db):
    """Start a real Celery worker (solo pool) for the test; killed afterwards.

    Tests using it must write through committed transactions, so they use the
    transactional database, which this fixture requests.
    """
    if not settings.REDIS_URL:
        pytest.skip("needs Redis and a Celery worker: set REDIS_URL")
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("a worker process needs PostgreSQL: set DATABASE_URL")
    (ROOT / "var").mkdir(exist_ok=True)
    workers = []

    def start(**kwargs):
        worker = Worker(**kwargs).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until(predicate, timeout=30, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
