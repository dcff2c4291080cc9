import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import WebhookDelivery, WebhookSubscription
from standards import services
from standards.models import Evaluation
from standards.tasks import compliance_watch_task
from tests.conftest import ROOT, subprocess_env, wait_until
from tests.factories import ConversationFactory, CustomerFactory, InteractionFactory
from tests.standards.factories import StandardFactory, user_in_group


def _open_chat(at):
    customer = CustomerFactory()
    conversation = ConversationFactory(customer=customer, channels=["chat"], opened_at=at, first_inbound_at=at)
    InteractionFactory(customer=customer, conversation=conversation, channel="chat", occurred_at=at)
    return conversation


@pytest.mark.django_db
def test_the_watch_task_judges_open_conversations(django_user_model):
    # given
    lead = user_in_group(django_user_model, "lead", "CX leads")
    standard = StandardFactory(target=60, channels=["chat"])
    services.standard_publish(standard=standard, actor=lead, reason="v1",
                              effective_from=timezone.now() - timedelta(days=1))
    late = _open_chat(timezone.now() - timedelta(minutes=5))
    fresh = _open_chat(timezone.now())
    # when
    judged = compliance_watch_task.apply().get()
    # then
    assert judged == 2
    statuses = dict(Evaluation.objects.values_list("subject_id", "status"))
    assert statuses == {late.pk: "breached", fresh.pk: "pending"}


@pytest.mark.redis
@pytest.mark.postgres
def test_beat_and_a_real_worker_warn_then_record_the_breach(celery_worker_process, django_user_model, tmp_path):
    # given: a 10-second first-reply promise, warned at half time; beat runs the watch every second
    lead = user_in_group(django_user_model, "lead", "CX leads")
    WebhookSubscription.objects.create(
        url="https://hooks.example.com/crm", secret="s" * 32,
        event_types=["standard.breach_warning", "standard.breached"],
    )
    standard = StandardFactory(target=10, channels=["chat"])
    services.standard_publish(standard=standard, actor=lead, reason="v1",
                              effective_from=timezone.now() - timedelta(days=1))
    env = {"STANDARDS_WARNING_FRACTION": "0.5", "STANDARDS_WATCH_INTERVAL_SECONDS": "1"}
    celery_worker_process(extra_env=env)
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "crm", "beat", "--loglevel=INFO", "-s", str(tmp_path / "schedule")],
        cwd=ROOT, env=subprocess_env(**env), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        # when: a customer starts waiting, and nobody answers
        started = timezone.now()
        conversation = _open_chat(started)
        # then: the warning comes first, then the breach, each recorded once by the worker
        evaluation = wait_until(
            lambda: Evaluation.objects.filter(subject_id=conversation.pk, status="breached").first(),
            timeout=45, interval=0.25, message="the beat-driven watch to record the breach",
        )
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()
    assert evaluation.standard_id == standard.pk
    assert evaluation.warned_at is not None and evaluation.warned_at < evaluation.breached_at + timedelta(seconds=1)
    assert abs((evaluation.breached_at - (started + timedelta(seconds=10))).total_seconds()) < 1.5
    assert evaluation.late_seconds > 0
    assert evaluation.evaluated_at - started < timedelta(seconds=30)
    time.sleep(1.5)  # more beats: the events stay one of each
    types = sorted(WebhookDelivery.objects.values_list("event_type", flat=True))
    assert types == ["standard.breach_warning", "standard.breached"]
    payloads = {d.event_type: d for d in WebhookDelivery.objects.all()}
    assert str(conversation.pk) in payloads["standard.breached"].body
