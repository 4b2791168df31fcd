"""The sequencer ledger and the ordered indexer over moto's ledger table. A scripted indexer stands
in for the core's, so that each test says what indexing a key reports (and when a concurrent
worker's commit lands) without the model or a store."""

from collections.abc import Callable, Sequence

import pytest

from lookalike.aws.ledger import (
    MAX_ATTEMPTS,
    NOT_AN_IMAGE,
    Ledger,
    LedgerConflictError,
    LedgerEntry,
    ObjectState,
    OrderedIndexer,
    is_later,
)
from lookalike.aws.notifications import ChangeKind, ObjectChange
from lookalike.indexing import IndexReport
from tests.support.lambda_harness import GALLERY_BUCKET, LEDGER_TABLE

KEY = "kitchen/lamp 1.jpg"


class ScriptedIndexer:
    """The core Indexer's `update` and `remove`: a key reports `reports[key]` (by default, indexed),
    and `during_update` runs inside each update, between reading the object and committing."""

    def __init__(self) -> None:
        self.reports: dict[str, IndexReport] = {}
        self.calls: list[tuple[str, str]] = []
        self.during_update: Callable[[str], None] = lambda key: None

    def update(self, keys: Sequence[str]) -> IndexReport:
        (key,) = keys
        self.calls.append(("update", key))
        self.during_update(key)
        return self.reports.get(key, IndexReport(indexed=[key]))

    def remove(self, keys: Sequence[str]) -> IndexReport:
        self.calls += [("remove", key) for key in keys]
        return IndexReport(removed=list(keys))


@pytest.fixture
def ledger(cloud) -> Ledger:
    return Ledger(cloud.dynamodb.Table(LEDGER_TABLE))


@pytest.fixture
def indexer() -> ScriptedIndexer:
    return ScriptedIndexer()


@pytest.fixture
def ordered(indexer, ledger) -> OrderedIndexer:
    return OrderedIndexer(indexer, ledger, GALLERY_BUCKET)


def change(kind: ChangeKind, sequencer: str | None, key: str = KEY, bucket: str = GALLERY_BUCKET) -> ObjectChange:
    return ObjectChange(bucket=bucket, key=key, kind=kind, sequencer=sequencer, event_id=f"{bucket}/{key}@{sequencer}")


def entry(state: ObjectState, revision: int, sequencer: str | None = None, reason: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        bucket=GALLERY_BUCKET, key=KEY, state=state, reason=reason, sequencer=sequencer, revision=revision
    )


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ("0055AED6DCD90281E5", "0055AED6DCD90281E4"),
        ("0A01", "0A"),  # right-padded, "0A" is "0A00"
        ("0B", "0A01"),  # "0B00" > "0A01": lengths differ, the padding decides, not the numbers
        ("0a02", "0A01"),  # hex digits in either case
        ("0B", "0a01"),  # in ASCII "a" sorts after "B": the case must not decide
    ],
)
def test_sequencers_compare_as_aws_says(later, earlier):
    assert is_later(later, earlier)
    assert not is_later(earlier, later)
    assert not is_later(later, later)
    assert is_later(earlier, None)


# --- the ledger table ---------------------------------------------------------------------


def test_an_entry_reads_back_as_written_under_bucket_and_key(ledger, cloud):
    assert ledger.get(GALLERY_BUCKET, KEY) is None
    failed = entry(ObjectState.FAILED, 1, sequencer="0055AED6DCD90281E5", reason="not an image")
    assert ledger.commit(failed, replacing=None)
    assert ledger.get(GALLERY_BUCKET, KEY) == failed
    assert cloud.ledger(KEY)["object_key"] == KEY
    assert ledger.get("another-bucket", KEY) is None


def test_an_entry_without_sequencer_or_reason_reads_back_without_them(ledger, cloud):
    backfilled = entry(ObjectState.INDEXED, 1)
    assert ledger.commit(backfilled, replacing=None)
    assert ledger.get(GALLERY_BUCKET, KEY) == backfilled
    assert not {"sequencer", "reason"} & set(cloud.ledger(KEY))


def test_a_commit_succeeds_only_over_the_entry_it_read(ledger):
    first, second = entry(ObjectState.INDEXED, 1, "0A"), entry(ObjectState.REMOVED, 2, "0B")
    assert ledger.commit(first, replacing=None)
    assert not ledger.commit(first, replacing=None), "a second writer of a new key overwrote the first"
    assert ledger.commit(second, replacing=first)
    assert not ledger.commit(entry(ObjectState.INDEXED, 2, "0C"), replacing=first), "a stale revision committed"
    assert ledger.get(GALLERY_BUCKET, KEY) == second


# --- the ordered indexer ------------------------------------------------------------------


def test_events_apply_in_sequencer_order_however_late_they_come(ordered, indexer, ledger):
    created = ordered.apply(change(ChangeKind.CREATED, "0A"))
    late_removed = ordered.apply(change(ChangeKind.REMOVED, "09"))
    assert (created.applied, created.state) == (True, ObjectState.INDEXED)
    assert (late_removed.applied, late_removed.state) == (False, ObjectState.INDEXED)
    assert indexer.calls == [("update", KEY)], "an older removal reached the store"

    removed = ordered.apply(change(ChangeKind.REMOVED, "0B"))
    late_created = ordered.apply(change(ChangeKind.CREATED, "0A01"))
    assert (removed.applied, removed.state) == (True, ObjectState.REMOVED)
    assert (late_created.applied, late_created.state) == (False, ObjectState.REMOVED)
    assert indexer.calls == [("update", KEY), ("remove", KEY)], "a late creation resurrected the image"
    assert ledger.get(GALLERY_BUCKET, KEY) == entry(ObjectState.REMOVED, 2, "0B")


def test_a_duplicate_event_is_skipped(ordered, indexer):
    first = ordered.apply(change(ChangeKind.CREATED, "0A"))
    again = ordered.apply(change(ChangeKind.CREATED, "0A"))
    assert (first.applied, again.applied) == (True, False)
    assert indexer.calls == [("update", KEY)]


def test_an_event_without_a_sequencer_always_applies_and_keeps_the_latest_one(ordered, indexer, ledger):
    ordered.apply(change(ChangeKind.CREATED, "0A"))
    backfilled = ordered.apply(change(ChangeKind.CREATED, None))
    assert backfilled.applied
    assert indexer.calls == [("update", KEY), ("update", KEY)]
    assert ledger.get(GALLERY_BUCKET, KEY) == entry(ObjectState.INDEXED, 2, "0A")
    assert not ordered.apply(change(ChangeKind.REMOVED, "09")).applied, "the backfill forgot the sequencer applied"


@pytest.mark.parametrize(
    ("report", "state", "reason"),
    [
        (IndexReport(indexed=[KEY]), ObjectState.INDEXED, None),
        (IndexReport(unchanged=[KEY]), ObjectState.INDEXED, None),
        (
            IndexReport(failed={KEY: "cannot read: the object is 9 bytes"}),
            ObjectState.FAILED,
            "cannot read: the object is 9 bytes",
        ),
        (IndexReport(not_images=[KEY], removed=[KEY]), ObjectState.FAILED, NOT_AN_IMAGE),
        (IndexReport(), ObjectState.REMOVED, None),  # the object was deleted before it was read
    ],
)
def test_what_indexing_reports_becomes_the_keys_state(ordered, indexer, ledger, report, state, reason):
    indexer.reports[KEY] = report
    outcome = ordered.apply(change(ChangeKind.CREATED, "0A"))
    assert (outcome.applied, outcome.state, outcome.reason) == (True, state, reason)
    assert ledger.get(GALLERY_BUCKET, KEY) == entry(state, 1, "0A", reason)


def test_an_event_of_another_bucket_is_refused(ordered, indexer, ledger):
    with pytest.raises(ValueError, match="another-bucket"):
        ordered.apply(change(ChangeKind.CREATED, "0A", bucket="another-bucket"))
    assert indexer.calls == []
    assert ledger.get("another-bucket", KEY) is None


def test_a_worker_that_loses_the_race_reads_the_object_again(ordered, indexer, ledger):
    """Another worker removes the object and commits while this one indexes it: this one's commit
    fails, so it indexes again (the object is gone now) on top of the other's entry."""

    def another_worker_removes(key: str) -> None:
        indexer.during_update = lambda key: None
        indexer.reports[key] = IndexReport()
        assert ledger.commit(entry(ObjectState.REMOVED, 1, "0B"), replacing=None)

    indexer.during_update = another_worker_removes
    outcome = ordered.apply(change(ChangeKind.CREATED, "0A"))
    assert (outcome.applied, outcome.state) == (True, ObjectState.REMOVED)
    assert indexer.calls == [("update", KEY), ("update", KEY)]
    assert ledger.get(GALLERY_BUCKET, KEY) == entry(ObjectState.REMOVED, 2, "0B")


def test_a_key_still_contended_after_every_attempt_goes_back_to_the_queue(ordered, indexer, ledger):
    def another_commit_each_time(key: str) -> None:
        current = ledger.get(GALLERY_BUCKET, key)
        revision = current.revision + 1 if current else 1
        assert ledger.commit(entry(ObjectState.INDEXED, revision, "0B"), replacing=current)

    indexer.during_update = another_commit_each_time
    with pytest.raises(LedgerConflictError, match=f"after {MAX_ATTEMPTS} attempts"):
        ordered.apply(change(ChangeKind.CREATED, "0A"))
    assert indexer.calls == [("update", KEY)] * MAX_ATTEMPTS
