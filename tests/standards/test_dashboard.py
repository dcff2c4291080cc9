import re
from datetime import datetime, timezone as dt_timezone

import pytest
from django.urls import reverse

from crm.dashboard import Series, bar_chart_svg, line_chart_svg
from standards import services
from tests.standards.factories import StandardFactory, kpi_history, user_in_group

pytestmark = pytest.mark.django_db


def test_line_chart_draws_one_polyline_per_run_and_escapes_names():
    svg = line_chart_svg(title="NPS <x>", labels=["a", "b", "c", "d"], unit="%", series=[
        Series("all", [10, 20, None, 40]), Series("<chat>", [None, None, None, None]),
    ])
    assert svg.count('class="kpi-line"') == 2  # a gap splits the line in two runs; the empty series draws none
    assert "<chat>" not in svg and "&lt;chat&gt;" in svg and "NPS &lt;x&gt;" in svg
    assert svg.count("<circle") == 3


def test_bar_chart_bars_are_as_long_as_the_share():
    svg = bar_chart_svg(title="c", bars=[("A", 1.0, "all met"), ("B", 0.5, "half"), ("C", None, "none")], width=560)
    widths = [float(w) for w in re.findall(r'class="kpi-bar" x="\d+" y="\d+" width="([\d.]+)"', svg)]
    assert widths == [290.0, 145.0]
    assert "100%" in svg and "50%" in svg and "—" in svg


def test_dashboard_draws_every_kpi_by_channel_and_segment(client, django_user_model):
    # given
    lead = user_in_group(django_user_model, "lead", "CX leads")
    kpi_history()
    standard = StandardFactory(title="Chat first reply in 15 minutes", target=900)
    services.standard_publish(standard=standard, actor=lead, reason="v1",
                              effective_from=datetime(2000, 1, 1, tzinfo=dt_timezone.utc))
    services.compliance_watch()
    client.force_login(lead)
    # when
    response = client.get(reverse("admin:kpi_dashboard"), {"granularity": "month", "by": "channel"})
    # then
    assert response.status_code == 200
    charts = {name: svg for name, _, svg in response.context["charts"]}
    assert set(charts) == {"nps", "csat_share", "ces_mean", "tth_p50_seconds", "came_back_rate", "churn_rate"}
    for name in ("nps", "csat_share", "ces_mean", "tth_p50_seconds"):
        series = set(re.findall(r'class="kpi-line" data-series="([^"]+)"', charts[name]))
        assert {"all", "chat", "email", "phone", "whatsapp"} <= series, (name, series)
    page = response.content.decode()
    assert page.count('class="kpi-chart"') == 8
    assert 'class="kpi-bar"' in page and "Chat first reply in 15 minutes" in page
    by_segment = client.get(reverse("admin:kpi_dashboard"), {"granularity": "week", "by": "segment"})
    series = set(re.findall(r'data-series="([^"]+)"', dict((n, s) for n, _, s in by_segment.context["charts"])["nps"]))
    assert {"all", "vip", "b2b"} <= series


def test_dashboard_needs_a_permission(client, django_user_model):
    nobody = django_user_model.objects.create_user(username="nobody", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get(reverse("admin:kpi_dashboard")).status_code == 403


def test_admin_index_links_the_dashboard(client, django_user_model):
    lead = user_in_group(django_user_model, "lead", "CX leads")
    client.force_login(lead)
    page = client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("admin:kpi_dashboard")}"' in page
