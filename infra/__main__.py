"""The Pulumi program: read the stack configuration, build the deployment, export what users need.

Resources are defined in the importable `lookalike_stack` package (tested with Pulumi's mocks in
tests/test_infra.py); this file only wires configuration and outputs.
"""

import pulumi

from lookalike_stack import build_stack, load

stack = build_stack(load())

pulumi.export("api_url", stack.api_url)
pulumi.export("gallery_bucket", stack.gallery.bucket.bucket)
pulumi.export("query_bucket", stack.query.bucket.bucket)
pulumi.export("index_queue_url", stack.feed.queue.url)
pulumi.export("dead_letter_queue_url", stack.feed.dead_letter_queue.url)
pulumi.export("opensearch_endpoint", stack.vectors.endpoint)
pulumi.export("admin_invoke_policy_arn", stack.api.admin_invoke_policy.arn)
pulumi.export("function_role_arns", {name: function.role.arn for name, function in stack.functions.items()})
