"""The KPI dashboard in the admin: NPS, CSAT, CES, time to happiness, came-back rate and
churn over time, by channel or by segment, and compliance per standard — drawn as
server-rendered SVG, so no chart library and no CDN.

Numbers come from `metrics.selectors.kpis_compute` and
`standards.selectors.compliance_summary`; this module only lays them out.
Mounted in the admin namespace as `admin:kpi_dashboard` by `dashboard_urls()`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

# Colour-blind-safe (Okabe–Ito) series colours; the overall line is drawn in black.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#999999"]
GRANULARITIES = {"day": 31, "week": 26, "month": 12}

# (KPI name in metrics.selectors.kpis_compute, title, unit, scale applied, y-range or None for automatic)
KPIS = [
    ("nps", _("NPS"), "", 1, (-100, 100)),
    ("csat_share", _("CSAT (% satisfied, 4–5)"), "%", 1, (0, 100)),
    ("ces_mean", _("CES (mean, 7 = very easy)"), "", 1, (1, 7)),
    ("tth_p50_seconds", _("Time to happiness (median, hours)"), "h", 1 / 3600, None),
    ("came_back_rate", _("Came back after resolution"), "%", 1, (0, 100)),
    ("churn_rate", _("Churn rate"), "%", 1, None),
]


def dashboard_urls():
    """URL patterns for the admin's own URL list: `admin:kpi_dashboard` at admin/dashboard/."""
    return [path("dashboard/", admin.site.admin_view(kpi_dashboard_view), name="kpi_dashboard")]


# --- SVG ------------------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    values: list  # one value (or None) per label
    colour: str = "#000"
    width: float = 2.0


def _nice_range(values, fixed=None):
    if fixed is not None:
        return fixed
    present = [v for v in values if v is not None]
    if not present:
        return (0, 1)
    low, high = min(present), max(present)
    low = min(low, 0)
    if high == low:
        high = low + 1
    pad = (high - low) * 0.1
    return (low, high + pad)


def _fmt(value):
    if value is None:
        return "—"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.1f}"


def line_chart_svg(*, title, labels, series, unit="", y_range=None, width=560, height=260):
    """A line chart: one polyline per series over the period labels; gaps where a value is missing."""
    left, right, top, bottom = 48, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = _nice_range([v for s in series for v in s.values], y_range)
    n = max(len(labels), 1)

    def x(i):
        return left + (plot_w * (i + 0.5) / n)

    def y(v):
        return top + plot_h - (plot_h * (v - low) / (high - low))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kpi-chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" direction="ltr" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
    ]
    for step in range(5):
        value = low + (high - low) * step / 4
        yy = y(value)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 4}" y="{yy + 4:.1f}" font-size="10" text-anchor="end" fill="#555">'
                   f"{escape(_fmt(value))}{escape(unit)}</text>")
    every = max(1, (n + 7) // 8)
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f'<text x="{x(i):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle" '
                       f'fill="#555">{escape(label)}</text>')
    for s in series:
        runs, run = [], []
        for i, v in enumerate(s.values):
            if v is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append((x(i), y(v), v, labels[i]))
        if run:
            runs.append(run)
        for run in runs:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in run)
            out.append(f'<polyline class="kpi-line" data-series="{escape(s.name)}" fill="none" '
                       f'stroke="{s.colour}" stroke-width="{s.width}" points="{points}"/>')
        for run in runs:
            for px, py, v, label in run:
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{s.colour}">'
                           f"<title>{escape(s.name)} {escape(label)}: {escape(_fmt(v))}{escape(unit)}</title></circle>")
    legend_x = left
    for s in series:
        out.append(f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{s.colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="{height - 5}" font-size="10" fill="#333">{escape(s.name)}</text>')
        legend_x += 22 + 6 * len(s.name)
    if not any(v is not None for s in series for v in s.values):
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" font-size="12" text-anchor="middle" '
                   f'fill="#999">{escape(_("No data in this period"))}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))


def bar_chart_svg(*, title, bars, width=560, bar_height=22):
    """Horizontal bars of a share (0..1): one per standard, labelled with its percentage and counts."""
    label_w, right = 200, 70
    height = max(1, len(bars)) * (bar_height + 8) + 16
    plot_w = width - label_w - right
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kpi-chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" direction="ltr" aria-label="{escape(title)}"><title>{escape(title)}</title>',
    ]
    for i, (label, share, detail) in enumerate(bars):
        top = 8 + i * (bar_height + 8)
        out.append(f'<text x="{label_w - 6}" y="{top + bar_height * 0.7:.1f}" font-size="11" text-anchor="end" '
                   f'fill="#333">{escape(label[:34])}</text>')
        out.append(f'<rect x="{label_w}" y="{top}" width="{plot_w}" height="{bar_height}" fill="#eee"/>')
        if share is not None:
            colour = "#009E73" if share >= 0.9 else "#E69F00" if share >= 0.7 else "#D55E00"
            out.append(f'<rect class="kpi-bar" x="{label_w}" y="{top}" width="{plot_w * share:.1f}" '
                       f'height="{bar_height}" fill="{colour}"><title>{escape(detail)}</title></rect>')
        out.append(f'<text x="{label_w + plot_w + 6}" y="{top + bar_height * 0.7:.1f}" font-size="11" fill="#333">'
                   f'{escape("—" if share is None else f"{share * 100:.0f}%")}</text>')
    if not bars:
        out.append(f'<text x="{width / 2}" y="14" font-size="12" text-anchor="middle" fill="#999">'
                   f'{escape(_("No standard judged in this period"))}</text>')
    out.append("</svg>")
    return mark_safe("".join(out))


# --- The view ------------------------------------------------------------------------------------


def _period(request):
    granularity = request.GET.get("granularity", "month")
    if granularity not in GRANULARITIES:
        granularity = "month"
    by = request.GET.get("by", "channel")
    if by not in ("channel", "segment"):
        by = "channel"
    now = datetime.now(dt_timezone.utc)
    end = datetime(now.year, now.month, now.day, tzinfo=dt_timezone.utc) + timedelta(days=1)
    if granularity == "day":
        start = end - timedelta(days=GRANULARITIES["day"])
    elif granularity == "week":
        start = end - timedelta(weeks=GRANULARITIES["week"])
        start -= timedelta(days=start.weekday())
    else:
        year, month = end.year, end.month - (GRANULARITIES["month"] - 1)
        while month <= 0:
            month += 12
            year -= 1
        start = datetime(year, month, 1, tzinfo=dt_timezone.utc)
    return start, end, granularity, by


def _label(day, granularity):
    """A period's axis label from its start (a date, or an ISO string from the compliance summary)."""
    iso = day if isinstance(day, str) else day.isoformat()
    return iso[:7] if granularity == "month" else iso[5:10]


def kpi_charts(*, start, end, granularity, by):
    """[(name, title, svg)] of every KPI over time: the overall line and one line per channel or segment."""
    from metrics.selectors import kpis_compute

    # kpis_compute takes inclusive UTC days; `end` here is the exclusive instant after the last day.
    result = kpis_compute(start=start.date(), end=(end - timedelta(days=1)).date(), granularity=granularity, by=by)
    periods = result["periods"]
    labels = [_label(p["start"], granularity) for p in periods]
    charts = []
    for name, title, unit, scale, y_range in KPIS:
        series = [Series(str(_("all")), [_kpi_value(p["kpis"], name, scale) for p in periods], "#000", 2.5)]
        groups = sorted({g for p in periods for g in (p.get("groups") or {})})
        for group in groups:
            values = [_kpi_value((p.get("groups") or {}).get(group) or {}, name, scale) for p in periods]
            if any(v is not None for v in values) and len(series) <= len(PALETTE):
                series.append(Series(group, values, PALETTE[(len(series) - 1) % len(PALETTE)], 1.5))
        charts.append((name, title, line_chart_svg(title=str(title), labels=labels, series=series, unit=unit,
                                                   y_range=y_range)))
    return charts


def _kpi_value(kpis, name, scale=1):
    value = (kpis.get(name) or {}).get("value")
    return None if value is None else value * scale


def compliance_charts(*, start, end, granularity):
    from standards.selectors import compliance_summary

    summary = compliance_summary(start=start, end=end, granularity=granularity)
    bars = []
    for standard in summary["standards"]:
        total = summary["totals"].get(str(standard["id"]))
        if total:
            detail = f"{total['met']} met, {total['breached']} breached of {total['judged']}"
            bars.append((standard["title"], total["compliance"], detail))
    labels = [_label(p["start"], granularity) for p in summary["periods"]]
    series = []
    for i, standard in enumerate(summary["standards"][: len(PALETTE)]):
        values = []
        for period in summary["periods"]:
            block = period["standards"].get(str(standard["id"]))
            values.append(block["compliance"] * 100 if block and block["compliance"] is not None else None)
        series.append(Series(standard["title"][:24], values, PALETTE[i % len(PALETTE)], 2))
    return (
        bar_chart_svg(title=str(_("Compliance per standard")), bars=bars),
        line_chart_svg(title=str(_("Compliance over time")), labels=labels, series=series, unit="%", y_range=(0, 100)),
    )


def kpi_dashboard_view(request):
    if not request.user.has_perm("standards.view_evaluation") and not request.user.is_superuser:
        raise PermissionDenied
    start, end, granularity, by = _period(request)
    compliance_bars, compliance_lines = compliance_charts(start=start, end=end, granularity=granularity)
    context = {
        **admin.site.each_context(request),
        "title": _("KPI dashboard"),
        "charts": kpi_charts(start=start, end=end, granularity=granularity, by=by),
        "compliance_bars": compliance_bars,
        "compliance_lines": compliance_lines,
        "start": start,
        "end": end - timedelta(seconds=1),
        "granularity": granularity,
        "by": by,
        "granularities": list(GRANULARITIES),
    }
    return TemplateResponse(request, "crm/dashboard.html", context)
