"""The stack's tunables: one typed value, read from Pulumi config, checked before anything is built.

Every key has a default here and nowhere else (docs/DEPLOY.md lists them). Values AWS would reject
minutes into `pulumi up` are refused at once, with the reason.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pulumi

REPO_ROOT = Path(__file__).resolve().parents[2]

OpenSearchMode = Literal["serverless", "domain"]
OPENSEARCH_MODES = ("serverless", "domain")

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
# API Gateway HTTP APIs wait at most 30 s for an integration, so a longer Lambda timeout only
# keeps working after the client has been answered 503.
API_INTEGRATION_TIMEOUT_S = 30
# An SQS event source with more than 10 records per batch needs a batching window, and one bad
# record already fails alone; 10 keeps a batch within one indexer timeout.
MAX_BATCH_SIZE = 10


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int
    timeout_s: int

    def check(self, function: str, max_timeout_s: int = 900) -> None:
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"{function}:memory must be 128..10240 MB, got {self.memory_mb}")
        if not 1 <= self.timeout_s <= max_timeout_s:
            raise ValueError(f"{function}:timeout must be 1..{max_timeout_s} s, got {self.timeout_s}")


@dataclass(frozen=True)
class OpenSearchSettings:
    mode: OpenSearchMode = "serverless"
    index: str = "lookalike"
    # HNSW parameters (OpenSearch faiss defaults, the same as lookalike.knn.KnnMethod's).
    hnsw_m: int = 16
    hnsw_ef_construction: int = 100
    hnsw_ef_search: int = 100
    # Managed domain.
    engine_version: str = "OpenSearch_2.19"
    instance_type: str = "t3.small.search"
    instance_count: int = 1
    volume_gb: int = 10
    master_user_arn: str | None = None

    def check(self) -> None:
        if self.mode not in OPENSEARCH_MODES:
            raise ValueError(f"opensearch:mode must be one of {', '.join(OPENSEARCH_MODES)}, got {self.mode!r}")
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", self.index):
            raise ValueError(f"opensearch:index must be a lowercase OpenSearch index name, got {self.index!r}")
        if not 2 <= self.hnsw_m <= 100:
            raise ValueError(f"opensearch:hnswM must be 2..100, got {self.hnsw_m}")
        if self.hnsw_ef_construction < 2 or self.hnsw_ef_search < 1:
            raise ValueError("opensearch:hnswEfConstruction must be >= 2 and opensearch:hnswEfSearch >= 1")
        if self.mode == "domain":
            if not self.master_user_arn:
                raise ValueError(
                    "opensearch:masterUserArn is required in domain mode: the IAM role or user that "
                    "administers fine-grained access control (maps the function roles, see docs/DEPLOY.md)"
                )
            if self.instance_count < 1 or self.volume_gb < 10:
                raise ValueError("opensearch:instanceCount must be >= 1 and opensearch:volumeGb >= 10")


@dataclass(frozen=True)
class StackConfig:
    # Lowercase, dash-separated; prefixes the physical names AWS restricts (collection, domain).
    name: str = "lookalike"
    indexer: FunctionSettings = FunctionSettings(memory_mb=2048, timeout_s=120)
    search: FunctionSettings = FunctionSettings(memory_mb=2048, timeout_s=29)
    admin: FunctionSettings = FunctionSettings(memory_mb=1024, timeout_s=29)
    batch_size: int = MAX_BATCH_SIZE
    # Concurrent indexer invocations the queue may drive, so a bulk upload cannot flood OpenSearch.
    indexer_max_concurrency: int = 5
    # Region vectors (docs/FRAGMENTS.md): each image's suggested fragments indexed too; off by
    # default, as locally, since they quadruple the index. Turning them on applies to images
    # indexed from then on: backfill (or a new index) to give the existing ones theirs.
    regions: bool = False
    opensearch: OpenSearchSettings = field(default_factory=OpenSearchSettings)
    api_rate_limit: float = 20.0
    api_burst_limit: int = 40
    cors_origins: tuple[str, ...] = ("*",)
    log_retention_days: int = 30
    log_level: str = "INFO"
    tracing: bool = True
    force_destroy: bool = False
    alarm_email: str | None = None
    layers_dir: Path = REPO_ROOT / "build" / "layers"
    functions_dir: Path = REPO_ROOT / "functions"

    def __post_init__(self) -> None:
        self.indexer.check("indexer")
        self.search.check("search", max_timeout_s=API_INTEGRATION_TIMEOUT_S - 1)
        self.admin.check("admin", max_timeout_s=API_INTEGRATION_TIMEOUT_S - 1)
        self.opensearch.check()
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"indexer:batchSize must be 1..{MAX_BATCH_SIZE}, got {self.batch_size}")
        if self.indexer_max_concurrency < 2:
            raise ValueError(f"indexer:maxConcurrency must be >= 2 (SQS event source minimum), got {self.indexer_max_concurrency}")
        if self.api_rate_limit <= 0 or self.api_burst_limit < 1:
            raise ValueError("api:rateLimit must be > 0 and api:burstLimit >= 1")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"lookalike:logRetentionDays must be one of {LOG_RETENTION_DAYS}, got {self.log_retention_days}")
        if not re.fullmatch(r"[a-z][a-z0-9-]{2,20}", self.name):
            raise ValueError(f"the stack name prefix must be 3..21 lowercase letters, digits or dashes, got {self.name!r}")


def physical_name(project: str, stack: str) -> str:
    """`<project>-<stack>` squeezed into what OpenSearch accepts for collection and domain names."""
    squeezed = re.sub(r"[^a-z0-9-]+", "-", f"{project}-{stack}".lower()).strip("-")
    if not squeezed[:1].isalpha():
        squeezed = f"l-{squeezed}"
    return squeezed[:21].rstrip("-")


def load() -> StackConfig:
    """The stack configuration from `pulumi config`, defaults filled in."""
    defaults = StackConfig()
    general, opensearch, api = pulumi.Config("lookalike"), pulumi.Config("opensearch"), pulumi.Config("api")
    indexer_config = pulumi.Config("indexer")
    os_defaults = OpenSearchSettings()
    return StackConfig(
        name=physical_name(pulumi.get_project(), pulumi.get_stack()),
        indexer=_function_settings(indexer_config, defaults.indexer),
        search=_function_settings(pulumi.Config("search"), defaults.search),
        admin=_function_settings(pulumi.Config("admin"), defaults.admin),
        batch_size=_value(indexer_config.get_int("batchSize"), defaults.batch_size),
        indexer_max_concurrency=_value(indexer_config.get_int("maxConcurrency"), defaults.indexer_max_concurrency),
        regions=_value(indexer_config.get_bool("regions"), defaults.regions),
        opensearch=OpenSearchSettings(
            mode=_value(opensearch.get("mode"), os_defaults.mode),
            index=_value(opensearch.get("index"), os_defaults.index),
            hnsw_m=_value(opensearch.get_int("hnswM"), os_defaults.hnsw_m),
            hnsw_ef_construction=_value(opensearch.get_int("hnswEfConstruction"), os_defaults.hnsw_ef_construction),
            hnsw_ef_search=_value(opensearch.get_int("hnswEfSearch"), os_defaults.hnsw_ef_search),
            engine_version=_value(opensearch.get("engineVersion"), os_defaults.engine_version),
            instance_type=_value(opensearch.get("instanceType"), os_defaults.instance_type),
            instance_count=_value(opensearch.get_int("instanceCount"), os_defaults.instance_count),
            volume_gb=_value(opensearch.get_int("volumeGb"), os_defaults.volume_gb),
            master_user_arn=opensearch.get("masterUserArn"),
        ),
        api_rate_limit=_value(api.get_float("rateLimit"), defaults.api_rate_limit),
        api_burst_limit=_value(api.get_int("burstLimit"), defaults.api_burst_limit),
        cors_origins=tuple(_value(api.get_object("corsOrigins"), defaults.cors_origins)),
        log_retention_days=_value(general.get_int("logRetentionDays"), defaults.log_retention_days),
        log_level=_value(general.get("logLevel"), defaults.log_level),
        tracing=_value(general.get_bool("tracing"), defaults.tracing),
        force_destroy=_value(general.get_bool("forceDestroy"), defaults.force_destroy),
        alarm_email=general.get("alarmEmail"),
        layers_dir=REPO_ROOT / _value(general.get("layersDir"), "build/layers"),
    )


def _function_settings(config: pulumi.Config, default: FunctionSettings) -> FunctionSettings:
    return FunctionSettings(
        memory_mb=_value(config.get_int("memory"), default.memory_mb),
        timeout_s=_value(config.get_int("timeout"), default.timeout_s),
    )


def _value(configured, default):
    """The configured value, or the default when the key is unset (0 and false are values)."""
    return default if configured is None else configured
