"""The AWS adapters: the gallery bucket as an image source, query uploads, the sequencer ledger,
S3 notifications, backfill, and the services a Lambda builds from its environment.

Only the Lambda functions and the backfill command import these; the pure core never does.
"""
