"""Every rule that turns clicks into training pairs, each on a hand-made log (docs/LEARNING_LOOP.md)."""

import json
from datetime import timedelta

import pytest

from lookalike.cli import main
from lookalike.interactions.click_labels import (
    LabelRules,
    TrainingPair,
    default_propensities,
    estimate_propensities,
    read_pairs,
    training_pairs,
    write_pairs,
)
from lookalike.interactions.outcomes import search_outcomes
from lookalike.interactions.sqlite_log import SqliteEventLog
from tests.support.event_logs import T0, click, dwell, impression, recorded, viewed

SHOWN = ["a", "b", "c", "d", "e"]


def pairs_of(*events, **rules):
    pairs, report = training_pairs(recorded(*events), LabelRules(**rules))
    return {(pair.query, pair.positive): pair for pair in pairs}, report


def two_sessions_view(image_id: str, position: int, shown=SHOWN, ms: int = 5000) -> list:
    return [
        event
        for number, who in ((1, "a"), (2, "b"))
        for event in [impression(number, who, shown), *viewed(number, who, image_id, position, ms)]
    ]


def test_a_pair_needs_clicks_from_min_sessions_distinct_sessions():
    one_session = [impression(1, "a", SHOWN), *viewed(1, "a", "c", 3)]
    assert pairs_of(*one_session)[0] == {}
    assert pairs_of(*one_session)[1].pairs_below_min_sessions == 1
    pairs, _ = pairs_of(*two_sessions_view("c", 3))
    assert pairs[("q.jpg", "c")].sessions == 2
    assert pairs_of(*one_session, min_sessions=1)[0][("q.jpg", "c")].sessions == 1


def test_one_session_repeating_a_query_is_still_one_session():
    same_user_twice = [impression(1, "a", SHOWN), *viewed(1, "a", "c", 3), impression(2, "a", SHOWN), *viewed(2, "a", "c", 3)]
    pairs, report = pairs_of(*same_user_twice)
    assert pairs == {} and report.pairs_below_min_sessions == 1


def test_negatives_are_the_unclicked_results_shown_above_the_click():
    pairs, _ = pairs_of(*two_sessions_view("c", 3))
    assert pairs[("q.jpg", "c")].negatives == ("a", "b")


def test_negatives_exclude_anything_clicked_in_that_search_even_accidentally():
    events = two_sessions_view("d", 4) + [click(1, "a", "b", 2), dwell(1, "a", "b", 200), click(2, "b", "b", 2)]
    pairs, _ = pairs_of(*events, missing_dwell="drop")
    assert set(pairs[("q.jpg", "d")].negatives) == {"a", "c"}


def test_negatives_are_ordered_by_how_many_sessions_skipped_them():
    events = [impression(1, "a", ["x", "a", "b", "c"]), *viewed(1, "a", "c", 4), click(1, "a", "x", 1)]
    events += [impression(2, "b", ["a", "b", "c"]), *viewed(2, "b", "c", 3)]
    pairs, _ = pairs_of(*events, missing_dwell="drop")
    assert pairs[("q.jpg", "c")].negatives == ("a", "b")  # x: clicked in search 1, never skipped


def test_a_kept_positive_of_the_query_is_never_one_of_its_negatives():
    b_clicked = two_sessions_view("b", 2)  # sessions a and b: (q, b) is a kept pair
    d_clicked = [e for n, who in ((3, "c"), (4, "e")) for e in (impression(n, who, SHOWN), *viewed(n, who, "d", 4))]
    pairs, _ = pairs_of(*b_clicked, *d_clicked)  # sessions c and e skipped a, b and c to click d
    assert set(pairs) == {("q.jpg", "b"), ("q.jpg", "d")}
    assert pairs[("q.jpg", "d")].negatives == ("a", "c")


def test_accidental_clicks_below_the_dwell_threshold_are_dropped():
    pairs, report = pairs_of(*two_sessions_view("c", 3, ms=800))
    assert pairs == {} and report.accidental_clicks == 2
    pairs, _ = pairs_of(*two_sessions_view("c", 3, ms=800), min_dwell_ms=500)
    assert ("q.jpg", "c") in pairs


def test_dwell_of_several_viewings_adds_up():
    events = two_sessions_view("c", 3, ms=600) + [dwell(1, "a", "c", 600, event_id="again"), dwell(2, "b", "c", 700, event_id="again")]
    pairs, report = pairs_of(*events)
    assert ("q.jpg", "c") in pairs and report.accidental_clicks == 0


def test_clicks_without_dwell_are_kept_or_dropped_as_the_rules_say():
    events = [e for n, who in ((1, "a"), (2, "b")) for e in (impression(n, who, SHOWN), click(n, who, "c", 3))]
    kept, report = pairs_of(*events)
    assert ("q.jpg", "c") in kept and report.clicks_without_dwell == 2
    dropped, _ = pairs_of(*events, missing_dwell="drop")
    assert dropped == {}


def test_repeated_click_events_count_once():
    doubled = two_sessions_view("c", 3) + [click(1, "a", "c", 3, event_id="double"), click(2, "b", "c", 3, event_id="double")]
    pairs, report = pairs_of(*doubled)
    assert pairs[("q.jpg", "c")].weight == pytest.approx(2 * 3.0)
    assert report.ignored_events.repeated_clicks == 2


def test_the_query_never_labels_itself():
    shown = ["q.jpg", "a", "b"]
    pairs, report = pairs_of(*two_sessions_view("q.jpg", 1, shown), *[e for n, who in ((1, "a"), (2, "b")) for e in viewed(n, who, "b", 3)])
    assert set(pairs) == {("q.jpg", "b")}
    assert pairs[("q.jpg", "b")].negatives == ("a",)
    assert report.clicks_on_query == 2


def test_clicks_are_weighted_by_inverse_propensity_and_clipped():
    pairs, report = pairs_of(*two_sessions_view("d", 4))
    assert pairs[("q.jpg", "d")].weight == pytest.approx(4.0 + 4.0)  # theta_4 = 1/4
    assert report.propensities[4] == pytest.approx(0.25)
    long_list = [f"r{n}" for n in range(1, 21)]
    pairs, _ = pairs_of(*two_sessions_view("r20", 20, long_list))
    assert pairs[("q.jpg", "r20")].weight == pytest.approx(10.0 + 10.0)  # 1/theta_20 = 20, clipped at 10
    pairs, _ = pairs_of(*two_sessions_view("d", 4), eta=0.5)
    assert pairs[("q.jpg", "d")].weight == pytest.approx(2.0 + 2.0)


def test_a_session_contributes_its_best_weighted_click():
    events = two_sessions_view("c", 3) + [impression(3, "a", ["c", "x", "y"]), *viewed(3, "a", "c", 1)]
    pairs, _ = pairs_of(*events)
    assert pairs[("q.jpg", "c")].weight == pytest.approx(3.0 + 3.0)  # session a: max(3, 1)


def test_searches_without_a_query_key_or_without_an_impression_yield_nothing():
    no_key = [e for n, who in ((1, "a"), (2, "b")) for e in (impression(n, who, SHOWN, query_key=None), *viewed(n, who, "c", 3))]
    pairs, report = pairs_of(*no_key)
    assert pairs == {} and report.searches_without_query_key == 2
    orphans = [e for n, who in ((1, "a"), (2, "b")) for e in viewed(n, who, "c", 3)]
    pairs, report = pairs_of(*orphans)
    assert pairs == {} and report.clicks_without_impression == 2


def test_a_click_on_an_image_the_search_never_showed_is_ignored():
    events = two_sessions_view("c", 3) + [e for n, who in ((1, "a"), (2, "b")) for e in viewed(n, who, "zz", 2)]
    pairs, report = pairs_of(*events)
    assert set(pairs) == {("q.jpg", "c")} and report.ignored_events.clicks_not_shown == 2


def test_the_click_position_is_the_one_the_impression_showed():
    events = [e for n, who in ((1, "a"), (2, "b")) for e in (impression(n, who, SHOWN), *viewed(n, who, "b", 1))]
    pairs, _ = pairs_of(*events)
    assert pairs[("q.jpg", "b")].weight == pytest.approx(2.0 + 2.0) and pairs[("q.jpg", "b")].negatives == ("a",)


def swapped_log(clicks_at_1: int, clicks_at_2: int, shown: int = 100) -> list:
    """One (query, image) shown `shown` times at position 1 and `shown` times at position 2."""
    events, number = [], 0
    for position, clicks in ((1, clicks_at_1), (2, clicks_at_2)):
        for n in range(shown):
            number += 1
            order = ["d", "other"] if position == 1 else ["other", "d"]
            events.append(impression(number, f"s{number}", order + ["e", "f"]))
            if n < clicks:
                events += viewed(number, f"s{number}", "d", position)
    return events


def test_propensities_are_estimated_where_one_result_was_shown_at_neighbouring_positions():
    outcomes, _ = search_outcomes(recorded(*swapped_log(50, 30)))
    theta = estimate_propensities(outcomes)
    assert theta[1] == 1.0
    assert theta[2] == pytest.approx(0.6)  # 30/100 over 50/100
    assert theta[3] == pytest.approx(0.6 * 2 / 3)  # no evidence: the default curve's ratio
    assert theta[4] == pytest.approx(0.6 * 2 / 3 * 3 / 4)


def test_too_little_evidence_falls_back_to_the_default_curve():
    outcomes, _ = search_outcomes(recorded(*swapped_log(5, 3)))
    assert estimate_propensities(outcomes) == pytest.approx(default_propensities(4))


def test_estimated_propensities_weigh_the_pairs():
    pairs, report = pairs_of(*swapped_log(50, 30), estimate_propensities=True)
    assert report.propensities[2] == pytest.approx(0.6)
    assert pairs[("q.jpg", "d")].weight == pytest.approx(50 * 1.0 + 30 / 0.6)


def test_training_set_command_writes_pairs_the_trainer_reads(tmp_path, capsys):
    log = SqliteEventLog(tmp_path / "store" / "events.sqlite")
    events = two_sessions_view("c", 3) + [impression(5, "z", SHOWN), *viewed(5, "z", "c", 3)]
    log.append(events, received_at=T0)
    log.append(two_sessions_view("d", 4)[:1], received_at=T0 + timedelta(days=3))
    out = tmp_path / "clicks"
    assert main(["training-set", "--store", str(tmp_path / "store"), "--out", str(out), "--until", "2026-03-11"]) == 0
    lines = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert lines == [{"query": "q.jpg", "positive": "c", "negatives": ["a", "b"], "weight": 9.0, "sessions": 3}]
    assert "wrote 1 pairs" in capsys.readouterr().err
    (pair,) = read_pairs(out / "pairs.jsonl")
    assert (pair.query, pair.positive, pair.negatives, pair.weight) == ("q.jpg", "c", ("a", "b"), 9.0)


def test_a_pairs_file_reads_back_what_was_written_and_hand_written_lines_get_the_defaults(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [TrainingPair("q.jpg", "c", ("a", "b"), 9.0, 3), TrainingPair("q.jpg", "d", (), 1 / 3, 2)])
    assert read_pairs(path) == [TrainingPair("q.jpg", "c", ("a", "b"), 9.0, 3), TrainingPair("q.jpg", "d", (), 0.333333, 2)]
    path.write_text('{"query": "q.jpg", "positive": "c"}\n\n')
    assert read_pairs(path) == [TrainingPair("q.jpg", "c", (), 1.0, 1)]
    path.write_text('{"query": "q.jpg", "positive": "c"}\n{"query": "q.jpg"}\n')
    with pytest.raises(ValueError, match=r"pairs\.jsonl:2: not a training pair"):
        read_pairs(path)
