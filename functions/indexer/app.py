"""The indexing function: S3 notifications of the gallery bucket, delivered through the index queue.

Each SQS record is one S3 notification. A record that fails raises, so that powertools reports it
alone in `batchItemFailures`: SQS delivers it again, and after the queue's maxReceiveCount moves it
to the dead-letter queue, while the rest of the batch is done. A file that is not an image is no
failure: the ledger records it with its reason and the record succeeds.

Duplicates and retries are absorbed twice over: powertools idempotency (keyed by the S3 event:
bucket, key and sequencer) answers a repeated event from its record and holds a concurrent
duplicate back while the first runs; the sequencer ledger skips anything older than what was
applied to the key, however late it comes, so a late ObjectCreated never resurrects an image.

With tracing on, each record is a subsegment of the batch's trace, so a slow or failing record
shows which one it was.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from aws_lambda_powertools.utilities.typing import LambdaContext

from lookalike.aws import environment
from lookalike.aws.ledger import ChangeOutcome
from lookalike.aws.notifications import IndexQueueRecord, ObjectChange, object_changes

logger = Logger()
tracer = Tracer()
services = environment.current()
ordered_indexer = services.ordered_indexer  # the model, the store and the ledger, at cold start
processor = BatchProcessor(event_type=EventType.SQS, model=IndexQueueRecord)
idempotency = IdempotencyConfig(event_key_jmespath="event_id", raise_on_no_idempotency_key=True)


@idempotent_function(
    data_keyword_argument="change",
    persistence_store=services.idempotency_store,
    config=idempotency,
    output_serializer=PydanticSerializer,
)
def apply(change: ObjectChange) -> ChangeOutcome:
    return ordered_indexer.apply(change)


@tracer.capture_method
def record_handler(record: IndexQueueRecord) -> None:
    for change in object_changes(record):
        apply(change=change)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
