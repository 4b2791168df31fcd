"""moto's AWS with the stack's buckets, queue and tables, for the cloud adapters' own tests (no
model, no OpenSearch: the Lambda functions' tests run them all together)."""

import pytest

from tests.support.lambda_harness import mocked_aws


@pytest.fixture
def cloud(monkeypatch):
    with mocked_aws(monkeypatch) as cloud:
        yield cloud
