"""Online metrics on a hand-made log whose every figure is worked out by hand."""

import json
from datetime import timedelta

import pytest

from lookalike.cli import main
from lookalike.interactions.engagement import engagement
from lookalike.interactions.events import RecordedEvent
from lookalike.interactions.sqlite_log import SqliteEventLog
from tests.support.event_logs import T0, click, dwell, impression, recorded

DAY2 = T0 + timedelta(days=1)


def hand_made_log() -> list[RecordedEvent]:
    """Search 1 (day 1): b clicked twice, viewed 3 s + 1 s; c clicked after midnight, no dwell.
    Search 2 (day 1): nothing clicked; a click on an image it never showed; a stray dwell.
    Search 3 (day 2): a clicked, viewed 0.5 s. Search 9: a click without an impression."""
    day1 = recorded(
        impression(1, "a", ["a", "b", "c"]),
        click(1, "a", "b", 2, event_id="c1"),
        click(1, "a", "b", 2, event_id="c2"),
        dwell(1, "a", "b", 3000),
        dwell(1, "a", "b", 1000),
        impression(2, "b", ["a", "b", "c"]),
        click(2, "b", "z", 7),
        dwell(2, "b", "a", 9000),
    )
    day2 = recorded(
        click(1, "a", "c", 3),
        impression(3, "c", ["a", "b"]),
        click(3, "c", "a", 1),
        dwell(3, "c", "a", 500),
        click(9, "d", "a", 1),
        at=DAY2,
    )
    return day1 + day2


def test_overall_rates():
    stats = engagement(hand_made_log()).overall
    assert (stats.searches, stats.searches_clicked) == (3, 2)
    assert stats.ctr == pytest.approx(2 / 3)
    assert (stats.results_shown, stats.results_clicked) == (8, 3)
    assert stats.result_ctr == pytest.approx(3 / 8)
    assert stats.mrr == pytest.approx((1 / 2 + 0 + 1 / 1) / 3)
    assert stats.ctr_by_position == pytest.approx({1: 1 / 3, 2: 1 / 3, 3: 1 / 2})


def test_dwell_is_summed_per_clicked_result_and_averaged_over_those_that_have_it():
    stats = engagement(hand_made_log()).overall
    assert stats.mean_dwell_s == pytest.approx((4.0 + 0.5) / 2)
    assert stats.dwell_coverage == pytest.approx(2 / 3)


def test_a_search_counts_on_the_day_of_its_impression_even_for_clicks_after_midnight():
    by_day = engagement(hand_made_log()).by_day
    assert list(by_day) == ["2026-03-10", "2026-03-11"]
    first, second = by_day["2026-03-10"], by_day["2026-03-11"]
    assert (first.searches, first.results_clicked, first.ctr) == (2, 2, 0.5)
    assert (second.searches, second.results_clicked, second.ctr) == (1, 1, 1.0)


def test_what_no_rate_can_use_is_counted_apart():
    report = engagement(hand_made_log())
    assert report.clicks_without_impression == 1
    assert report.ignored.repeated_clicks == 1
    assert report.ignored.clicks_not_shown == 1
    assert report.ignored.dwell_without_click == 1


def test_an_empty_log_has_no_rates():
    stats = engagement([]).overall
    assert stats.searches == 0 and stats.ctr is None and stats.mean_dwell_s is None and stats.ctr_by_position == {}


def test_the_table_has_a_row_per_day_a_total_and_ctr_by_position():
    table = engagement(hand_made_log()).table()
    assert "2026-03-10" in table and "2026-03-11" in table
    total = next(line for line in table.splitlines() if line.startswith("all"))
    assert total.split()[1:4] == ["3", "66.7%", "37.5%"]
    assert any(line.split() == ["3", "50.0%"] for line in table.splitlines())
    assert "clicks without an impression (in no rate): 1" in table


def test_metrics_command_reads_the_stores_log_within_a_time_range(tmp_path, capsys):
    log = SqliteEventLog(tmp_path / "events.sqlite")
    for item in hand_made_log():
        log.append([item.event], received_at=item.received_at)
    assert main(["metrics", "--store", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["searches"] == 3
    assert main(["metrics", "--store", str(tmp_path), "--json", "--since", "2026-03-11"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    assert (overall["searches"], overall["results_clicked"]) == (1, 1)


def test_metrics_command_without_a_log_says_how_to_get_one(tmp_path, capsys):
    assert main(["metrics", "--store", str(tmp_path)]) == 2
    assert "no event log" in capsys.readouterr().err
