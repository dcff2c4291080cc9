"""manage.py recompute_metrics and the metrics admin pages."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from metrics.models import CustomerSnapshot, DirtyCustomer, IntentRule, Journey
from tests.metrics.helpers import ingest

pytestmark = pytest.mark.django_db


def test_recompute_metrics_command_dirty_one_and_all():
    now = timezone.now()
    a = ingest("cmd-a@example.com", when=now - timedelta(days=2), sentiment=-0.8).customer_id
    b = ingest("cmd-b@example.com", when=now - timedelta(days=1), sentiment=0.8).customer_id

    out, err = StringIO(), StringIO()
    call_command("recompute_metrics", "--customer", str(a), stdout=out, stderr=err)
    assert "Recomputed 1 customer(s)." in out.getvalue()
    assert CustomerSnapshot.objects.filter(customer_id=a).exists()
    assert not CustomerSnapshot.objects.filter(customer_id=b).exists()
    assert set(DirtyCustomer.objects.values_list("customer_id", flat=True)) == {b}

    call_command("recompute_metrics", stdout=out, stderr=err)  # the dirty ones
    assert "Recomputed 1 dirty customer(s)." in out.getvalue()
    assert CustomerSnapshot.objects.filter(customer_id=b).exists()

    Journey.objects.all().delete()
    call_command("recompute_metrics", "--all", stdout=out, stderr=err)
    assert "Recomputed 2 customer(s) and rebuilt the roll-ups." in out.getvalue()
    assert "customer/s" in err.getvalue() or "2/2" in err.getvalue()  # the tqdm bar
    assert Journey.objects.filter(customer_id=a).count() == 1

    with pytest.raises(CommandError, match="No customer #999999"):
        call_command("recompute_metrics", "--customer", "999999", stdout=out, stderr=err)


def test_admin_pages_list_surveys_journeys_snapshots_and_edit_intent_rules(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    now = timezone.now()
    row = ingest("adm@example.com", when=now - timedelta(days=1), sentiment=-0.8)
    call_command("recompute_metrics", "--customer", str(row.customer_id), stdout=StringIO())

    for name in ("surveyresponse", "journey", "customersnapshot", "intentrule"):
        response = client.get(reverse(f"admin:metrics_{name}_changelist"))
        assert response.status_code == 200, name
    assert client.get(reverse("admin:metrics_journey_add")).status_code == 403

    response = client.post(reverse("admin:metrics_intentrule_add"),
                           {"intent": "complaint", "keywords": "refund\nشکایت", "priority": 5, "is_active": "on"})
    assert response.status_code == 302
    assert IntentRule.objects.get().keyword_list == ["refund", "شکایت"]

    response = client.post(reverse("admin:metrics_customersnapshot_changelist"),
                           {"action": "recompute", "_selected_action": [row.customer_id]})
    assert response.status_code == 302
