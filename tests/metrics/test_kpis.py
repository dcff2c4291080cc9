"""The survey arithmetic table of ../shared/fixtures/README.md, and the KPI helpers."""

import pytest

from metrics import kpis


def nps_of(scores):
    return kpis.nps(*kpis.nps_parts(scores))


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([9, 10, 5, 1, 0, 7], -16.7),  # 2 promoters, 3 detractors, 6 answers
        ([0] * 10 + [7] * 30 + [9] * 60, 50),
        ([9, 10, 6, 8], 25),
    ],
)
def test_nps_table(scores, expected):
    assert kpis.kpi_round(nps_of(scores), decimals=1) == expected


def test_csat_share_table():
    answers = [5] * 10 + [4] * 20 + [3] * 10 + [2] * 5 + [1] * 5
    hits = sum(1 for a in answers if a >= 4)
    assert kpis.kpi_round(kpis.share(hits, len(answers))) == 60


def test_ces_mean_table():
    counts = {1: 80, 2: 210, 3: 140, 4: 110, 5: 160, 6: 180, 7: 120}
    total = sum(score * count for score, count in counts.items())
    assert kpis.kpi_round(kpis.mean(total, sum(counts.values()))) == 4.08


@pytest.mark.parametrize(
    "mode, expected", [("half_up", [-16.67, 0.13, 2.5]), ("half_even", [-16.67, 0.12, 2.5]), ("floor", [-16.67, 0.12, 2.5])]
)
def test_rounding_modes(mode, expected):
    assert [kpis.kpi_round(v, decimals=2, mode=mode) for v in (-100 / 6, 0.125, 2.5)] == expected


def test_rounding_floor_floors_percentages():
    assert kpis.kpi_round(66.666, decimals=0, mode="floor") == 66
    assert kpis.kpi_round(66.666, decimals=0, mode="half_up") == 67


def test_unknown_rounding_mode_is_refused():
    with pytest.raises(ValueError):
        kpis.kpi_round(1.0, mode="banker")


def test_percentiles_interpolate():
    values = [10, 20, 30, 40]
    assert kpis.percentile(values, 50) == 25
    assert kpis.percentile(values, 90) == 37
    assert kpis.percentile([], 50) is None and kpis.percentile([7], 90) == 7


def test_consistency_index():
    spread = kpis.consistency([40.0, 60.0, None])
    assert spread["range"] == 20 and spread["channels"] == 2
    assert spread["cv"] == pytest.approx(10 / 50)  # population stdev 10 over mean 50
    assert kpis.consistency([50.0])["range"] is None
