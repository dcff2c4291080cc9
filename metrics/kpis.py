"""KPI arithmetic over roll-up parts: pure functions, shared by the KPI selector and the tests.

Each KPI is computed from additive parts (n, sums, hit counts) or from the
samples behind a percentile, so days can be summed into weeks, months or a
channel's total without recomputing from the raw rows. Rounding follows
KPI_DECIMALS and KPI_ROUNDING (default: 2 decimals, half up).
"""

import math
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

from django.conf import settings

ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "floor": ROUND_FLOOR}


def kpi_round(value, decimals=None, mode=None):
    """Round a KPI value for display: KPI_DECIMALS places, KPI_ROUNDING mode ("floor" floors toward -inf)."""
    if value is None:
        return None
    decimals = settings.KPI_DECIMALS if decimals is None else decimals
    mode = settings.KPI_ROUNDING if mode is None else mode
    if mode not in ROUNDING_MODES:
        raise ValueError(f"KPI_ROUNDING must be one of {', '.join(ROUNDING_MODES)}, not {mode!r}")
    quantum = Decimal(1).scaleb(-decimals)
    # repr() of the float keeps its shortest exact decimal form: 0.125 stays 0.125, not 0.12499999.
    return float(Decimal(repr(float(value))).quantize(quantum, rounding=ROUNDING_MODES[mode]))


def nps(promoters, detractors, n):
    """% promoters (9-10) minus % detractors (0-6): -100..100; None without answers."""
    return 100.0 * (promoters - detractors) / n if n else None


def share(hits, n):
    """hits as a percentage of n; None when n is 0."""
    return 100.0 * hits / n if n else None


def mean(total, n):
    return total / n if n else None


def percentile(sorted_values, q):
    """Linear-interpolated percentile (q in 0..100) of sorted samples; None when there are none."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    position = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def nps_parts(scores):
    """(promoters, detractors, n) of NPS answers."""
    return sum(1 for s in scores if s >= 9), sum(1 for s in scores if s <= 6), len(scores)


def consistency(values):
    """Spread of one KPI across channels: {"range": max - min, "cv": stdev / |mean|, "channels": k}.

    Only channels with a value count; fewer than two channels give no spread.
    The coefficient of variation uses the population standard deviation and is
    None when the mean is 0.
    """
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return {"range": None, "cv": None, "channels": len(present)}
    average = sum(present) / len(present)
    deviation = math.sqrt(sum((v - average) ** 2 for v in present) / len(present))
    return {
        "range": max(present) - min(present),
        "cv": deviation / abs(average) if average else None,
        "channels": len(present),
    }
