"""OpenSearch for the vectors, in one of two shapes chosen by `opensearch:mode`.

- `serverless`: a VECTORSEARCH collection in a NextGen collection group. NextGen, unlike Classic
  vector collections, accepts custom document ids, which the store needs for idempotent upserts
  and deletes (Classic would refuse every write), and scales its compute with traffic. Access takes
  three policies: encryption (required before the collection can exist), network (public
  endpoint, since the functions run outside a VPC; every request is still SigV4-signed) and data
  access, which grants each function role only the index permissions it needs.
- `domain`: a managed domain with fine-grained access control, encryption at rest and between
  nodes, HTTPS only. Cheaper for a small gallery (one t3.small), but sized and upgraded by you.

Both give the functions the same three things: a SigV4 service name, an https endpoint and the
IAM statements for a role at a given access level.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

from . import policies
from .config import OpenSearchSettings

Access = Literal["read", "write", "admin"]

# Serverless data access permissions per access level (index resources only: documents and mappings).
AOSS_INDEX_PERMISSIONS: Mapping[Access, tuple[str, ...]] = {
    "read": ("aoss:DescribeIndex", "aoss:ReadDocument"),
    "write": ("aoss:CreateIndex", "aoss:DescribeIndex", "aoss:ReadDocument", "aoss:UpdateIndex", "aoss:WriteDocument"),
    "admin": (
        "aoss:CreateIndex", "aoss:DeleteIndex", "aoss:DescribeIndex", "aoss:ReadDocument", "aoss:UpdateIndex",
        "aoss:WriteDocument",
    ),
}  # fmt: skip
# Managed domain: HTTP methods per access level. A k-NN query is a POST to _search, so reading
# needs POST; IAM cannot tell a search POST from a write POST, fine-grained access control can.
ES_HTTP_ACTIONS: Mapping[Access, tuple[str, ...]] = {
    "read": ("es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost"),
    "write": ("es:ESHttpDelete", "es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"),
    "admin": ("es:ESHttpDelete", "es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"),
}
TLS_POLICY = "Policy-Min-TLS-1-2-PFS-2023-10"


@dataclass(frozen=True)
class VectorSearch:
    service: Literal["aoss", "es"]
    endpoint: pulumi.Output[str]  # https URL
    arn: pulumi.Output[str]  # the collection's or the domain's
    index: str
    resources: Mapping[str, pulumi.CustomResource]

    def iam_statements(self, access: Access) -> list[policies.Statement]:
        if self.service == "aoss":
            # aoss:APIAccessAll is the only data-plane IAM action; what each role may do inside the
            # collection is decided by the data access policy.
            return [policies.allow("OpenSearchServerlessData", ["aoss:APIAccessAll"], [self.arn])]
        indexes = pulumi.Output.concat(self.arn, "/", self.index, "*")
        resources = [indexes] if access == "read" else [indexes, pulumi.Output.concat(self.arn, "/_bulk")]
        return [policies.allow("OpenSearchIndex", ES_HTTP_ACTIONS[access], resources)]


def vector_search(name: str, settings: OpenSearchSettings, roles: Mapping[Access, Sequence[aws.iam.Role]]) -> VectorSearch:
    if settings.mode == "serverless":
        return _serverless(name, settings, roles)
    return _domain(name, settings, roles)


def https_url(endpoint: pulumi.Input[str]) -> pulumi.Output[str]:
    """The collection endpoint comes with its scheme and the domain endpoint without; give both one."""
    return pulumi.Output.from_input(endpoint).apply(lambda url: url if url.startswith("https://") else f"https://{url}")


def _serverless(name: str, settings: OpenSearchSettings, roles: Mapping[Access, Sequence[aws.iam.Role]]) -> VectorSearch:
    collection_resource = f"collection/{name}"
    encryption = aws.opensearch.ServerlessSecurityPolicy(
        f"{name}-encryption",
        name=f"{name}-enc",
        type="encryption",
        policy=pulumi.Output.json_dumps(
            {"Rules": [{"ResourceType": "collection", "Resource": [collection_resource]}], "AWSOwnedKey": True}
        ),
    )
    network = aws.opensearch.ServerlessSecurityPolicy(
        f"{name}-network",
        name=f"{name}-net",
        type="network",
        # The collection endpoint only: no Dashboards endpoint is opened.
        policy=pulumi.Output.json_dumps(
            [{"Rules": [{"ResourceType": "collection", "Resource": [collection_resource]}], "AllowFromPublic": True}]
        ),
    )
    data_access = aws.opensearch.ServerlessAccessPolicy(
        f"{name}-data",
        name=f"{name}-data",
        type="data",
        policy=pulumi.Output.json_dumps(
            [
                {
                    "Description": f"{access} access for the Lookalike functions",
                    "Rules": [
                        {
                            "ResourceType": "index",
                            "Resource": [f"index/{name}/{settings.index}*"],
                            "Permission": list(AOSS_INDEX_PERMISSIONS[access]),
                        }
                    ],
                    "Principal": [role.arn for role in access_roles],
                }
                for access, access_roles in roles.items()
            ]
        ),
    )
    # NextGen groups require standby replicas; the collection inherits the group's setting.
    group = aws.opensearch.ServerlessCollectionGroup(
        f"{name}-group", name=f"{name}-group", generation="NEXTGEN", standby_replicas="ENABLED"
    )
    collection = aws.opensearch.ServerlessCollection(
        name,
        name=name,
        type="VECTORSEARCH",
        collection_group_name=group.name,
        opts=pulumi.ResourceOptions(depends_on=[encryption, network]),
    )
    return VectorSearch(
        service="aoss",
        endpoint=https_url(collection.collection_endpoint),
        arn=collection.arn,
        index=settings.index,
        resources={
            "collection_group": group,
            "collection": collection,
            "encryption": encryption,
            "network": network,
            "data_access": data_access,
        },
    )


def _domain(name: str, settings: OpenSearchSettings, roles: Mapping[Access, Sequence[aws.iam.Role]]) -> VectorSearch:
    zone_aware = settings.instance_count > 1
    domain = aws.opensearch.Domain(
        name,
        domain_name=name,
        engine_version=settings.engine_version,
        cluster_config={
            "instance_type": settings.instance_type,
            "instance_count": settings.instance_count,
            "zone_awareness_enabled": zone_aware,
            "zone_awareness_config": {"availability_zone_count": 2} if zone_aware else None,
        },
        ebs_options={"ebs_enabled": True, "volume_type": "gp3", "volume_size": settings.volume_gb},
        encrypt_at_rest={"enabled": True},
        node_to_node_encryption={"enabled": True},
        domain_endpoint_options={"enforce_https": True, "tls_security_policy": TLS_POLICY},
        advanced_security_options={
            "enabled": True,
            "anonymous_auth_enabled": False,
            "internal_user_database_enabled": False,
            "master_user_options": {"master_user_arn": settings.master_user_arn},
        },
    )
    principals = [settings.master_user_arn, *(role.arn for access_roles in roles.values() for role in access_roles)]
    domain_policy = aws.opensearch.DomainPolicy(
        name,
        domain_name=domain.domain_name,
        # Who may reach the domain at all; what each may do there is fine-grained access control's
        # role mapping (docs/DEPLOY.md), the IAM statements narrow it to the index.
        access_policies=policies.document(
            [
                {
                    "Sid": "LookalikePrincipals",
                    "Effect": "Allow",
                    "Principal": {"AWS": principals},
                    "Action": sorted({action for actions in ES_HTTP_ACTIONS.values() for action in actions}),
                    "Resource": pulumi.Output.concat(domain.arn, "/*"),
                }
            ]
        ),
    )
    return VectorSearch(
        service="es",
        endpoint=https_url(domain.endpoint),
        arn=domain.arn,
        index=settings.index,
        resources={"domain": domain, "domain_policy": domain_policy},
    )
