"""Backfill: put every object of a bucket on the index queue, for a deployment onto a bucket that
already holds images (S3 notifies about changes only, never about what is there).

    python -m lookalike.aws.backfill --bucket B --queue-url U [--prefix P]

Each object becomes one ObjectCreated message shaped like S3's own, without a sequencer: the
indexer then indexes whatever the key holds when the message is handled, and the ledger still
orders it against S3's own events. Running it again is safe and cheap: an unchanged image is
recognised by its content hash and not embedded again. The admin function's POST /admin/backfill
runs the same, a bounded slice per request.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import boto3

from lookalike.aws.notifications import created_notification
from lookalike.aws.s3_source import ListedObject, S3Source

# SendMessageBatch takes at most 10 messages.
BATCH_SIZE = 10
# A batch entry SQS refuses (throttled, say) is sent again this many times, backing off.
SEND_ATTEMPTS = 5


@dataclass(frozen=True)
class BackfillReport:
    enqueued: int
    last_key: str | None  # the last key enqueued: where a run stopped by its limit goes on from
    done: bool  # no key left after last_key


class BackfillError(RuntimeError):
    """Messages SQS kept refusing; what was sent before them stays sent (run again to finish)."""


class Backfill:
    def __init__(self, s3, sqs, bucket: str, queue_url: str) -> None:
        self.s3 = s3
        self.sqs = sqs
        self.bucket = bucket
        self.queue_url = queue_url

    def run(
        self,
        prefix: str = "",
        *,
        start_after: str | None = None,
        limit: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> BackfillReport:
        """Enqueue the objects under `prefix` (after `start_after`, at most `limit` of them);
        `on_progress` hears the number enqueued so far after each batch (the total is unknown
        until the listing ends)."""
        objects = S3Source(self.s3, self.bucket, prefix=prefix).objects(start_after)
        enqueued, last_key = 0, None
        for batch in _batches(islice(objects, limit), BATCH_SIZE):
            self._send(batch)
            enqueued += len(batch)
            last_key = batch[-1].key
            if on_progress:
                on_progress(enqueued)
        return BackfillReport(enqueued, last_key, done=limit is None or next(objects, None) is None)

    def _send(self, batch: Sequence[ListedObject]) -> None:
        region = self.s3.meta.region_name
        pending = {
            str(position): json.dumps(created_notification(self.bucket, listed, region))
            for position, listed in enumerate(batch)
        }
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2**attempt)
            entries = [{"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()]
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = response.get("Failed", [])
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
            if not pending:
                return
            if any(entry.get("SenderFault") for entry in failed):
                break
        reasons = sorted({entry.get("Message") or entry.get("Code", "") for entry in failed})
        keys = [batch[int(entry_id)].key for entry_id in pending]
        raise BackfillError(f"SQS refused {len(keys)} messages ({'; '.join(reasons)}), first key {keys[0]!r}")


def _batches(items: Iterable[ListedObject], size: int) -> Iterator[list[ListedObject]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lookalike.aws.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True, help="the gallery bucket")
    parser.add_argument("--queue-url", required=True, help="the index queue's URL (the stack's output)")
    parser.add_argument("--prefix", default="", help="only keys starting with this")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    # Here only, not at the top: the module also runs in the admin function, which ships no tqdm.
    from tqdm import tqdm

    backfill = Backfill(boto3.client("s3"), boto3.client("sqs"), args.bucket, args.queue_url)
    try:
        with tqdm(desc="enqueued", unit="key", file=sys.stderr, disable=args.quiet) as bar:
            report = backfill.run(args.prefix, on_progress=lambda enqueued: bar.update(enqueued - bar.n))
    except BackfillError as error:
        print(f"backfill stopped: {error}", file=sys.stderr)
        return 1
    print(f"enqueued {report.enqueued} keys of s3://{args.bucket}/{args.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
