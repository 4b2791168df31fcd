"""The AWS adapters: the gallery bucket as an image source, query uploads, the sequencer ledger,
S3 notifications, backfill, SigV4 signing, and the services a Lambda builds from its environment.

The Lambda functions and the backfill command import these; of the core, only the OpenSearch
client imports one, `sigv4`, and only when it signs a request.
"""
