"""With a real Celery worker, beat and Redis: dirty customers are recomputed by the beat task alone."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import ROOT, subprocess_env, wait_until


@pytest.mark.redis
@pytest.mark.postgres
def test_beat_recomputes_dirty_customers_without_a_call_from_the_test(celery_worker_process, tmp_path):
    from metrics.models import CustomerSnapshot, DirtyCustomer, Journey
    from tests.metrics.helpers import ingest

    # given: committed interactions; ingestion marked the customer dirty (in the database, no task queued)
    now = timezone.now()
    first = ingest("beat@example.com", when=now - timedelta(hours=5), sentiment=-0.8, incident_at=now - timedelta(days=1))
    ingest("beat@example.com", when=now - timedelta(hours=1), channel="email", sentiment=0.9)
    assert DirtyCustomer.objects.filter(customer_id=first.customer_id).exists()
    assert not CustomerSnapshot.objects.exists()

    # when: a worker and beat run, the dirty-customer task every second
    env = {"METRICS_DIRTY_INTERVAL_SECONDS": "1"}
    celery_worker_process(extra_env=env)
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "beat", "--loglevel=INFO",
         "-s", str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
        cwd=ROOT, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # then: the snapshot appears and the mark is gone, with no call from here
        wait_until(lambda: CustomerSnapshot.objects.filter(customer_id=first.customer_id).exists(), timeout=60,
                   message="the beat task to recompute the dirty customer")
        wait_until(lambda: not DirtyCustomer.objects.exists(), timeout=30, message="the dirty mark to be cleared")
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()

    journey = Journey.objects.get(customer_id=first.customer_id)
    assert journey.started_at == first.incident_at
    assert journey.closed_at is not None and journey.tth_seconds == pytest.approx(
        (journey.closed_at - first.incident_at).total_seconds())
    assert CustomerSnapshot.objects.get(customer_id=first.customer_id).unhappy_since is None


@pytest.mark.redis
@pytest.mark.postgres
def test_the_nightly_task_shares_its_chunks_between_processes_inside_a_prefork_worker(celery_worker_process):
    from crm.celery import app
    from customers.models import Customer
    from metrics.models import CustomerSnapshot, Journey
    from tests.metrics.helpers import ingest

    # given: customers over several chunks of 2 ids, each unhappy, then happy; nothing computed yet
    now = timezone.now()
    for n in range(6):
        ingest(f"night{n}@example.com", when=now - timedelta(hours=6), sentiment=-0.8)
        ingest(f"night{n}@example.com", when=now - timedelta(hours=2), channel="email", sentiment=0.9)
    CustomerSnapshot.objects.all().delete()
    Journey.objects.all().delete()

    # when: the nightly task runs in a pool process of a worker started as docker-compose starts it (prefork),
    # sharing the chunks with 3 processes of its own
    worker = celery_worker_process(pool="prefork", extra_env={"METRICS_FULL_BATCH_SIZE": "2",
                                                              "METRICS_FULL_PROCESSES": "3"})
    task = app.send_task("metrics.all_recompute")

    # then: the task reports every customer done (no result backend: its line in the worker's log),
    # and each has its snapshot and one closed journey
    log = Path(worker.log.name)
    line = wait_until(lambda: next((line for line in log.read_text().splitlines()
                                    if task.id in line and ("succeeded" in line or "raised" in line)), None),
                      timeout=120, message="the nightly task to end")
    assert line.endswith(": 6"), line
    live = set(Customer.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
    assert len(live) == 6
    assert set(CustomerSnapshot.objects.values_list("customer_id", flat=True)) == live
    assert sorted(Journey.objects.values_list("customer_id", flat=True)) == sorted(live)
    assert not Journey.objects.filter(closed_at__isnull=True).exists()
