"""Hand-built interaction rows for the pure metric functions (the shape services feed them)."""

from datetime import datetime, timedelta, timezone

from metrics import compute

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


def at(days=0, hours=0, minutes=0):
    return T0 + timedelta(days=days, hours=hours, minutes=minutes)


class Rows:
    """Builds rows in time order with increasing ids."""

    def __init__(self, customer=1):
        self.customer = customer
        self.rows = []

    def add(self, when, *, conversation=None, channel="chat", kind="message", direction="inbound", author="customer",
            sentiment=None, intent="", incident=None, survey=None, mood=None, duration=None):
        survey_kind, survey_score, respondent = survey if survey else (None, None, None)
        row = [None] * compute.ROW_WIDTH
        row[compute.I_ID] = len(self.rows) + 1
        row[compute.I_CUSTOMER] = self.customer
        row[compute.I_CONVERSATION] = conversation
        row[compute.I_CHANNEL] = channel
        row[compute.I_KIND] = "survey" if survey else ("event" if mood else kind)
        row[compute.I_DIRECTION] = "internal" if mood else direction
        row[compute.I_AUTHOR] = "agent" if mood else author
        row[compute.I_AT] = when
        row[compute.I_SENTIMENT] = sentiment
        row[compute.I_INTENT] = intent
        row[compute.I_INCIDENT] = incident
        row[compute.I_SURVEY_KIND] = survey_kind
        row[compute.I_SURVEY_SCORE] = survey_score
        row[compute.I_SURVEY_RESPONDENT] = respondent
        row[compute.I_MOOD] = mood
        row[compute.I_DURATION] = duration
        row[compute.I_NEEDS_SCORING] = False
        self.rows.append(tuple(row))
        return row[compute.I_ID]

    def sorted(self):
        return sorted(self.rows, key=lambda r: (r[compute.I_AT], r[compute.I_ID]))
