"""A loopback OpenSearch: the REST subset the OpenSearch store uses, served over real HTTP.

The store's tests drive it with the real opensearch-py client, so request building, the
transport, status-to-exception mapping and response parsing are all the library's own. The
behaviour follows the public OpenSearch documentation, cited by page title (OpenSearch docs,
"Bulk"); where the documentation is silent, the k-NN plugin's or opensearch-py's source is named.

Deliberate simplifications, each one a place where the real thing is at least as forgiving:
- One shard, one segment, exact (brute-force) k-NN: a knn query returns min(k, size, matching)
  hits (OpenSearch docs, "Approximate k-NN search", "The number of returned results"). Recall is
  OpenSearch's business; the adapter's is asking for the right k.
- Scores use the formulas of OpenSearch docs, "Spaces", in float32 and are written as the
  shortest float32 decimal, as Java prints a float.
- Term-level queries score 1.0 (real scores are BM25-like; the store never ranks by them).
- A bulk write into a missing index fails per item (OpenSearch would create the index with a
  dynamic mapping, where a vector becomes a float array and k-NN silently stops working).
- `mode`, `compression_level`, `method_parameters` and `rescore` are validated and recorded but
  change nothing: every configuration scores exactly (in OpenSearch only 1x is: higher levels
  quantize, OpenSearch docs, "Memory-optimized vectors").

Modes: `serverless=True` imitates a Serverless collection: `refresh=true|wait_for` on writes is a
400 and `_refresh` a 404 (reported in mem0ai/mem0#3893, argilla-io/argilla#3251), documents
become searchable only at `publish()` (the collection's own refresh interval: AWS, "Working with
vector search collections"), and
`_shards` totals are 0. `custom_ids=False` adds the Classic vector collection's refusal of custom
document ids (the exact item error is quoted in aws/aws-sdk-pandas#2784).
"""

import json
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np
import pytest

K_MAX = 10_000  # OpenSearch docs, "k-NN query"
MAX_DIMENSION = 16_000  # OpenSearch docs, "Methods and engines"
MAX_RESULT_WINDOW = 10_000  # index.max_result_window's default (OpenSearch docs, "Index settings")
MAX_ID_BYTES = 512  # OpenSearch docs, "Bulk"
SPACES = ("l1", "l2", "linf", "cosinesimil", "innerproduct", "hamming", "hammingbit")  # OpenSearch docs, "Spaces"
ENGINE_METHODS = {"faiss": ("hnsw", "ivf"), "lucene": ("hnsw", "flat"), "nmslib": ("hnsw",)}  # "Methods and engines"
COMPRESSION_LEVELS = ("1x", "2x", "4x", "8x", "16x", "32x")  # OpenSearch docs, "Memory-optimized vectors"
MODES = ("in_memory", "on_disk")
FIELD_TYPES = ("knn_vector", "keyword", "text", "integer", "long", "float", "double", "boolean", "date", "object")
JSON_CONTENT_TYPE = "application/json; charset=UTF-8"  # opensearch-py strips the parameter
BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')


class ApiError(Exception):
    """An OpenSearch error response: `{"error": {"root_cause", "type", "reason", ...}, "status"}`."""

    def __init__(self, status: int, error_type: str, reason: str, **details) -> None:
        super().__init__(reason)
        self.status = status
        self.error = {"type": error_type, "reason": reason, **details}

    def body(self) -> dict:
        root_cause = self.error.get("root_cause") or [{"type": self.error["type"], "reason": self.error["reason"]}]
        return {"error": {"root_cause": root_cause, **self.error}, "status": self.status}


def query_shard_error(reason: str) -> ApiError:
    """A query that fails while it is built on the shard.

    The wrapping is read from OpenSearch's source (QueryShardContext.toQuery), not documented.
    """
    cause = {"type": "query_shard_exception", "reason": f"failed to create query: {reason}"}
    return ApiError(400, "search_phase_execution_exception", "all shards failed", phase="query", root_cause=[cause])


def index_not_found(name: str) -> ApiError:
    return ApiError(404, "index_not_found_exception", f"no such index [{name}]", index=name)


def float32_text(value) -> float:
    """A float32 as Java prints it: the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(value)))


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None

    def ndjson(self) -> list:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class Index:
    name: str
    settings: dict
    mappings: dict
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    documents: dict[str, dict] = field(default_factory=dict)  # id -> {"_source", "_version", "_seq_no"}
    searchable: dict[str, dict] = field(default_factory=dict)  # as of the last refresh
    seq_no: int = 0

    def field_mapping(self, name: str) -> dict | None:
        return self.mappings.get("properties", {}).get(name)

    def refresh(self) -> None:
        self.searchable = dict(self.documents)


class LoopbackOpenSearch:
    """The server; `start()` binds 127.0.0.1 on a free port, `url` is its address."""

    def __init__(self, *, serverless: bool = False, custom_ids: bool = True) -> None:
        self.serverless = serverless
        self.custom_ids = custom_ids
        self.indexes: dict[str, Index] = {}
        self.requests: list[Request] = []
        self.failures: list[str] = []  # the server's own bugs, answered with a 500
        self._lock = threading.RLock()
        self._http: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "LoopbackOpenSearch":
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def publish(self) -> None:
        """What the periodic refresh does: everything indexed becomes searchable."""
        with self._lock:
            for index in self.indexes.values():
                index.refresh()

    def requests_to(self, method: str, suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, dict | None]:
        with self._lock:
            self.requests.append(request)
            parts = [unquote(part) for part in request.path.strip("/").split("/") if part]
            try:
                return self._route(request, parts)
            except ApiError as error:
                return error.status, error.body()
            except Exception:  # a bug here must fail the test, not look like a flaky network
                self.failures.append(traceback.format_exc())
                return 500, ApiError(500, "loopback_failure", self.failures[-1]).body()

    def _route(self, request: Request, parts: list[str]) -> tuple[int, dict | None]:
        method = request.method
        if parts == ["_bulk"] and method in ("POST", "PUT"):
            return 200, self._bulk(request, None)
        if parts and parts[-1] == "_refresh" and len(parts) <= 2 and method in ("POST", "GET"):
            return 200, self._refresh(parts[0] if len(parts) == 2 else None)
        if len(parts) == 1:
            name = parts[0]
            if method == "HEAD":
                return (200 if name in self.indexes else 404), None
            if method == "PUT":
                return 200, self._create_index(name, request.json() or {})
            if method == "DELETE":
                self._index(name)
                del self.indexes[name]
                return 200, {"acknowledged": True}
        if len(parts) == 2:
            name, endpoint = parts
            if endpoint == "_mapping" and method == "GET":
                return 200, {name: {"mappings": self._index(name).mappings}}
            if endpoint == "_mapping" and method in ("PUT", "POST"):
                return 200, self._put_mapping(self._index(name), request.json() or {})
            if endpoint == "_bulk" and method in ("POST", "PUT"):
                return 200, self._bulk(request, name)
            if endpoint == "_mget" and method in ("GET", "POST"):
                return 200, self._mget(name, request.json() or {})
            if endpoint == "_search" and method in ("GET", "POST"):
                return 200, self._search(self._index(name), request.json() or {})
            if endpoint == "_count" and method in ("GET", "POST"):
                return 200, self._count(self._index(name), request.json() or {})
        if len(parts) == 3 and parts[1] == "_doc" and method in ("GET", "DELETE"):
            return self._get_or_delete(self._index(parts[0]), parts[2], method)
        raise ApiError(
            400, "illegal_argument_exception", f"no handler found for uri [{request.path}] and method [{method}]"
        )

    def _index(self, name: str) -> Index:
        if name not in self.indexes:
            raise index_not_found(name)
        return self.indexes[name]

    def _shards(self) -> dict:
        total = 0 if self.serverless else 1  # Serverless reports zeros
        return {"total": total, "successful": total, "skipped": 0, "failed": 0}

    # -- indexes and mappings (OpenSearch docs, "k-NN vector", "Methods and engines") ----------

    def _create_index(self, name: str, body: dict) -> dict:
        if name in self.indexes:
            index = self.indexes[name]
            raise ApiError(
                400, "resource_already_exists_exception", f"index [{name}/{index.uuid}] already exists", index=name
            )
        if name != name.lower() or name.startswith(("_", "-", "+")) or BAD_INDEX_CHARS & set(name):
            raise ApiError(400, "invalid_index_name_exception", f"Invalid index name [{name}]", index=name)
        settings = _flat_settings(body.get("settings", {}))
        mappings = body.get("mappings", {})
        _validate_properties(mappings.get("properties", {}), knn_enabled=_boolean(settings.get("index.knn", False)))
        self.indexes[name] = Index(name, settings, json.loads(json.dumps(mappings)))
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _put_mapping(self, index: Index, body: dict) -> dict:
        properties = body.get("properties", {})
        for name, spec in properties.items():
            current = index.field_mapping(name)
            if current is not None and current.get("type") != spec.get("type"):
                raise ApiError(
                    400,
                    "illegal_argument_exception",
                    f"mapper [{name}] cannot be changed from type [{current.get('type')}] to [{spec.get('type')}]",
                )
        _validate_properties(properties, knn_enabled=_boolean(index.settings.get("index.knn", False)))
        index.mappings.setdefault("properties", {}).update(properties)
        if "_meta" in body:  # an update overrides the whole _meta (docs: mapping-parameters/meta)
            index.mappings["_meta"] = body["_meta"]
        return {"acknowledged": True}

    def _refresh(self, names: str | None) -> dict:
        if self.serverless:
            raise ApiError(404, "resource_not_found_exception", "_refresh is not supported")
        targets = [self._index(name) for name in names.split(",")] if names else list(self.indexes.values())
        for index in targets:
            index.refresh()
        return {"_shards": self._shards()}

    # -- documents (OpenSearch docs, "Bulk", "Get document", "Delete document") ------------------

    def _bulk(self, request: Request, path_index: str | None) -> dict:
        refresh = request.params.get("refresh", "false")
        if self.serverless and refresh != "false":
            raise ApiError(400, "illegal_argument_exception", f"{refresh or 'true'} refresh policy is not supported.")
        text = request.body.decode()
        if text and not text.endswith("\n"):
            raise ApiError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
        lines = [line for line in text.split("\n") if line.strip()]
        actions = []
        while lines:
            ((op, meta),) = json.loads(lines.pop(0)).items()
            if op not in ("index", "create", "delete"):
                raise ApiError(400, "illegal_argument_exception", f"loopback: bulk action [{op}] is not implemented")
            source = None if op == "delete" else json.loads(lines.pop(0))
            doc_id = meta.get("_id")
            if doc_id is not None and len(str(doc_id).encode()) > MAX_ID_BYTES:
                raise ApiError(
                    400,
                    "action_request_validation_exception",
                    f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than {MAX_ID_BYTES} bytes "
                    f"but was: {len(str(doc_id).encode())};",
                )
            actions.append((op, meta.get("_index", path_index), doc_id, source))
        items = [{op: self._bulk_item(op, name, doc_id, source)} for op, name, doc_id, source in actions]
        if refresh in ("true", "", "wait_for"):
            for name in {name for _, name, _, _ in actions if name in self.indexes}:
                self.indexes[name].refresh()
        return {"took": 1, "errors": any("error" in next(iter(item.values())) for item in items), "items": items}

    def _bulk_item(self, op: str, name: str, doc_id: str | None, source: dict | None) -> dict:
        item: dict = {"_index": name, "_id": doc_id}
        try:
            if op in ("index", "create") and doc_id is not None and not self.custom_ids:
                raise ApiError(
                    400, "illegal_argument_exception", "Document ID is not supported in create/index operation request"
                )
            index = self._index(name)
            if op == "delete":
                return {**item, **self._delete(index, doc_id)}
            doc_id = doc_id if doc_id is not None else uuid.uuid4().hex[:20]
            if op == "create" and doc_id in index.documents:
                raise ApiError(
                    409, "version_conflict_engine_exception", f"[{doc_id}]: version conflict, document already exists"
                )
            _validate_document(index, doc_id, source)
            previous = index.documents.get(doc_id)
            index.seq_no += 1
            version = previous["_version"] + 1 if previous else 1
            index.documents[doc_id] = {"_source": source, "_version": version, "_seq_no": index.seq_no}
            result, status = ("updated", 200) if previous else ("created", 201)
            return {**item, "_id": doc_id, **self._write_result(index, version, result), "status": status}
        except ApiError as error:
            return {**item, "status": error.status, "error": {**error.error, "index": name, "shard": "0"}}

    def _write_result(self, index: Index, version: int, result: str) -> dict:
        return {
            "_version": version,
            "result": result,
            "_shards": self._shards(),
            "_seq_no": index.seq_no,
            "_primary_term": 1,
        }

    def _delete(self, index: Index, doc_id: str) -> dict:
        previous = index.documents.pop(doc_id, None)
        index.seq_no += 1
        if previous is None:  # not an error in a bulk; a 404 on its own
            return {**self._write_result(index, 1, "not_found"), "status": 404}
        return {**self._write_result(index, previous["_version"] + 1, "deleted"), "status": 200}

    def _get_or_delete(self, index: Index, doc_id: str, method: str) -> tuple[int, dict]:
        if method == "DELETE":
            outcome = self._delete(index, doc_id)
            return outcome.pop("status"), {"_index": index.name, "_id": doc_id, **outcome}
        document = index.documents.get(doc_id)  # GET is real-time
        if document is None:
            return 404, {"_index": index.name, "_id": doc_id, "found": False}
        return 200, self._found(index, doc_id, document, True)

    def _found(self, index: Index, doc_id: str, document: dict, source_filter) -> dict:
        found = {
            "_index": index.name,
            "_id": doc_id,
            "_version": document["_version"],
            "_seq_no": document["_seq_no"],
            "_primary_term": 1,
            "found": True,
        }
        if source_filter is not False:
            found["_source"] = _filter_source(document["_source"], source_filter)
        return found

    def _mget(self, name: str, body: dict) -> dict:
        """OpenSearch docs, "Multi-get documents": `docs` (each `_id`, optional `_index`, `_source`) or `ids`."""
        wanted = body.get("docs") or [{"_id": doc_id} for doc_id in body.get("ids", [])]
        docs = []
        for entry in wanted:
            index_name, doc_id = entry.get("_index", name), entry["_id"]
            if index_name not in self.indexes:
                docs.append({"_index": index_name, "_id": doc_id, "error": index_not_found(index_name).error})
                continue
            index = self.indexes[index_name]
            document = index.documents.get(doc_id)
            if document is None:
                docs.append({"_index": index_name, "_id": doc_id, "found": False})
            else:
                docs.append(self._found(index, doc_id, document, entry.get("_source", True)))
        return {"docs": docs}

    # -- search (OpenSearch docs, "k-NN query", "Spaces") ----------------------------------------

    def _count(self, index: Index, body: dict) -> dict:
        return {"count": len(_evaluate(index, body.get("query", {"match_all": {}}))), "_shards": self._shards()}

    def _search(self, index: Index, body: dict) -> dict:
        size, start = int(body.get("size", 10)), int(body.get("from", 0))
        if start + size > MAX_RESULT_WINDOW:
            cause = {
                "type": "illegal_argument_exception",
                "reason": f"Result window is too large, from + size must be less than or equal to: "
                f"[{MAX_RESULT_WINDOW}] but was [{start + size}].",
            }
            raise ApiError(400, "search_phase_execution_exception", "all shards failed", root_cause=[cause])
        scores = _evaluate(index, body.get("query", {"match_all": {}}))
        order = [doc_id for doc_id in index.searchable if doc_id in scores]  # ties keep index order
        sort = _sort_keys(body.get("sort"))
        if sort:
            for name, descending in reversed(sort):
                present = [d for d in order if _values(index.searchable[d]["_source"], name)]
                missing = [d for d in order if d not in present]  # missing values sort last
                present.sort(key=lambda d: min(_values(index.searchable[d]["_source"], name)), reverse=descending)
                order = present + missing
            if "search_after" in body:
                order = [d for d in order if self._after(index, d, sort, body["search_after"])]
        else:
            order.sort(key=lambda doc_id: -scores[doc_id])
        page = order[start : start + size]
        hits = []
        for doc_id in page:
            source = index.searchable[doc_id]["_source"]
            hit = {"_index": index.name, "_id": doc_id, "_score": None if sort else scores[doc_id]}
            if body.get("_source", True) is not False:
                hit["_source"] = _filter_source(source, body.get("_source", True))
            if sort:
                hit["sort"] = [min(_values(source, name)) for name, _ in sort]
            hits.append(hit)
        return {
            "took": 1,
            "timed_out": False,
            "_shards": self._shards(),
            "hits": {
                "total": {"value": len(order), "relation": "eq"},
                "max_score": None if sort or not page else max(scores[d] for d in page),
                "hits": hits,
            },
        }

    @staticmethod
    def _after(index: Index, doc_id: str, sort: list[tuple[str, bool]], after: list) -> bool:
        source = index.searchable[doc_id]["_source"]
        for (name, descending), boundary in zip(sort, after):
            values = _values(source, name)
            if not values:
                return True
            value = min(values)
            if value != boundary:
                return value < boundary if descending else value > boundary
        return False


# -- pure helpers ------------------------------------------------------------------------------


def _boolean(value) -> bool:
    """Settings accept true/false and their strings (general settings behaviour, not documented for index.knn)."""
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise ApiError(
                400,
                "illegal_argument_exception",
                f"Failed to parse value [{value}] as only [true] or [false] are allowed.",
            )
        return value.lower() == "true"
    return bool(value)


def _flat_settings(settings: dict, prefix: str = "") -> dict:
    """Nested and flat forms alike become `index.*` keys (OpenSearch docs, "k-NN vector", uses both)."""
    flat = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat_settings(value, f"{name}."))
        else:
            flat[name if name.startswith("index.") else f"index.{name}"] = value
    return flat


def _validate_properties(properties: dict, knn_enabled: bool) -> None:
    for name, spec in properties.items():
        field_type = spec.get("type", "object" if "properties" in spec else None)
        if field_type not in FIELD_TYPES:
            raise ApiError(
                400, "mapper_parsing_exception", f"No handler for type [{field_type}] declared on field [{name}]"
            )
        if field_type == "knn_vector":
            _validate_knn_vector(name, spec, knn_enabled)


def _validate_knn_vector(name: str, spec: dict, knn_enabled: bool) -> None:
    """OpenSearch docs, "k-NN vector" and "Methods and engines"; the messages are the k-NN plugin's
    (KNNVectorFieldMapper)."""

    def refuse(reason: str):
        raise ApiError(400, "mapper_parsing_exception", reason)

    method = spec.get("method")
    if "model_id" in spec:
        if method is not None:
            refuse(f"Method and model can not be both specified in the mapping: {name}")
        if "dimension" in spec:
            refuse(f"Cannot specify both a modelId and dimension in the mapping: {name}")
        refuse(f"loopback: trained models (model_id) are not implemented: {name}")
    dimension = spec.get("dimension")
    if dimension is None:
        refuse(f"Dimension value missing for vector: {name}")
    if not isinstance(dimension, int) or not 1 <= dimension <= MAX_DIMENSION:
        refuse(f"Dimension value must be between 1 and {MAX_DIMENSION} for vector: {name}")
    if spec.get("data_type", "float") != "float":
        refuse(f"loopback: only float vectors are implemented: {name}")
    if spec.get("compression_level", "1x") not in COMPRESSION_LEVELS:
        refuse(f"Invalid compression level: {spec['compression_level']}")
    if spec.get("mode", "in_memory") not in MODES:
        refuse(f"Invalid mode: {spec['mode']}")
    if method is None:
        return
    if not knn_enabled:
        refuse("Cannot set modelId or method parameters when index.knn setting is false")
    engine = method.get("engine", "faiss")  # the default engine since 2.18
    if engine not in ENGINE_METHODS:
        refuse(f"Invalid engine: {engine}")
    if method.get("name") not in ENGINE_METHODS[engine]:
        refuse(f"Invalid method name: {method.get('name')}")
    space = method.get("space_type", spec.get("space_type", "l2"))
    if space not in SPACES:
        refuse(f"Unable to find space: {space}")
    encoder = method.get("parameters", {}).get("encoder", {}).get("name", "flat")
    if method["name"] == "ivf" or encoder == "pq":  # they need training: refused at index creation
        refuse('Validation Failed: 1: "method" requires training.;')


def _validate_document(index: Index, doc_id: str, source: dict) -> None:
    for name, spec in index.mappings.get("properties", {}).items():
        if spec.get("type") != "knn_vector" or source.get(name) is None:
            continue
        value = source[name]
        preview = json.dumps(value)[:40]
        reason = (
            f"failed to parse field [{name}] of type [knn_vector] in document with id '{doc_id}'. "
            f"Preview of field's value: '{preview}'"
        )
        if not isinstance(value, list) or not all(isinstance(x, (int, float)) for x in value):
            cause = {"type": "illegal_argument_exception", "reason": "Vector values must be numbers"}
            raise ApiError(400, "mapper_parsing_exception", reason, caused_by=cause)
        if len(value) != spec["dimension"]:
            cause = {
                "type": "illegal_argument_exception",
                "reason": f"Vector dimension mismatch. Expected: {spec['dimension']}, Given: {len(value)}",
            }
            raise ApiError(400, "mapper_parsing_exception", reason, caused_by=cause)
        if _space(spec) == "cosinesimil" and not any(value):
            cause = {
                "type": "illegal_argument_exception",
                "reason": "zero vector is not supported when space type is [cosinesimil]",
            }
            raise ApiError(400, "mapper_parsing_exception", reason, caused_by=cause)


def _space(spec: dict) -> str:
    return spec.get("method", {}).get("space_type", spec.get("space_type", "l2"))


def _engine(spec: dict) -> str:
    return spec.get("method", {}).get("engine", "faiss")


def _values(source: dict, name: str) -> list:
    value = source
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return []
        value = value[part]
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _filter_source(source: dict, source_filter) -> dict:
    if source_filter is True or source_filter is None:
        return source
    if isinstance(source_filter, str):
        source_filter = [source_filter]
    if isinstance(source_filter, dict):
        includes, excludes = source_filter.get("includes", []), source_filter.get("excludes", [])
    else:
        includes, excludes = source_filter, []
    kept = {k: v for k, v in source.items() if not includes or k in includes}
    return {k: v for k, v in kept.items() if k not in excludes}


def _sort_keys(sort) -> list[tuple[str, bool]]:
    keys = []
    for entry in sort or []:
        if isinstance(entry, str):
            keys.append((entry, False))
            continue
        ((name, order),) = entry.items()
        order = order.get("order", "asc") if isinstance(order, dict) else order
        keys.append((name, order == "desc"))
    return keys


def _evaluate(index: Index, query: dict) -> dict[str, float]:
    """doc id -> score for the searchable documents the query matches."""
    ((kind, spec),) = query.items()
    docs = index.searchable
    if kind == "match_all":
        return dict.fromkeys(docs, 1.0)
    if kind == "ids":
        return {doc_id: 1.0 for doc_id in spec["values"] if doc_id in docs}
    if kind == "exists":
        return {doc_id: 1.0 for doc_id, d in docs.items() if _values(d["_source"], spec["field"])}
    if kind in ("term", "terms"):
        ((name, wanted),) = spec.items()
        if kind == "term":
            wanted = [wanted["value"] if isinstance(wanted, dict) else wanted]
        return {
            doc_id: 1.0 for doc_id, d in docs.items() if _term_match(index, name, _values(d["_source"], name), wanted)
        }
    if kind == "bool":
        return _evaluate_bool(index, spec)
    if kind == "knn":
        return _knn(index, spec)
    raise ApiError(400, "parsing_exception", f"unknown query [{kind}]")


def _term_match(index: Index, name: str, values: list, wanted: list) -> bool:
    numeric = (index.field_mapping(name) or {}).get("type") in ("integer", "long", "float", "double")
    if numeric:
        return any(float(v) == float(w) for v in values for w in wanted)
    return any(str(v) == str(w) for v in values for w in wanted)


def _evaluate_bool(index: Index, spec: dict) -> dict[str, float]:
    def clauses(key):
        value = spec.get(key, [])
        return value if isinstance(value, list) else [value]

    matched = set(index.searchable)
    scores = dict.fromkeys(index.searchable, 0.0)
    for clause in clauses("must"):  # must scores add up; filter clauses only select
        found = _evaluate(index, clause)
        matched &= found.keys()
        for doc_id, score in found.items():
            scores[doc_id] += score
    for clause in clauses("filter"):
        matched &= _evaluate(index, clause).keys()
    for clause in clauses("must_not"):
        matched -= _evaluate(index, clause).keys()
    should = clauses("should")
    if should:
        hit_any = set()
        for clause in should:
            for doc_id, score in _evaluate(index, clause).items():
                hit_any.add(doc_id)
                scores[doc_id] += score
        if not clauses("must") and not clauses("filter"):
            matched &= hit_any
    return {doc_id: scores[doc_id] for doc_id in matched}


def _knn(index: Index, spec: dict) -> dict[str, float]:
    """OpenSearch docs: "k-NN query" (validation), "Efficient k-NN filtering" (the filter applies
    before the top k), "Radial search", "Spaces" (scores)."""
    ((name, clause),) = spec.items()
    mapping = index.field_mapping(name)
    if mapping is None or mapping.get("type") != "knn_vector":
        raise query_shard_error(f"Field '{name}' is not knn_vector type.")
    if "method" not in mapping and not _boolean(index.settings.get("index.knn", False)):
        raise query_shard_error(f"Field '{name}' is not built for ANN search.")
    vector = clause.get("vector")
    if not vector:
        raise ApiError(400, "parsing_exception", "[knn] query vector is empty")
    targets = [key for key in ("k", "max_distance", "min_score") if key in clause]
    if len(targets) != 1:
        raise ApiError(400, "parsing_exception", "[knn] requires exactly one of k, distance or score to be set")
    if "k" in clause and clause["k"] <= 0:
        raise ApiError(400, "parsing_exception", "[knn] requires k > 0")
    if "k" in clause and clause["k"] > K_MAX:
        raise ApiError(400, "parsing_exception", f"[knn] requires k <= {K_MAX}")
    if "filter" in clause and _engine(mapping) == "nmslib":
        raise query_shard_error("Engine [NMSLIB] does not support filters")
    if len(vector) != mapping["dimension"]:
        raise query_shard_error(
            f"Query vector has invalid dimension: {len(vector)}. Dimension should be: {mapping['dimension']}"
        )
    space, engine = _space(mapping), _engine(mapping)
    if space == "cosinesimil" and not any(vector):
        raise query_shard_error("zero vector is not supported when space type is [cosinesimil]")
    allowed = _evaluate(index, clause["filter"]).keys() if "filter" in clause else index.searchable.keys()
    query = np.asarray(vector, dtype=np.float32)
    scored = []
    for doc_id, document in index.searchable.items():
        stored = document["_source"].get(name)
        if doc_id in allowed and stored is not None:
            distance, score = _distance_and_score(query, np.asarray(stored, dtype=np.float32), space, engine)
            scored.append((doc_id, distance, score))
    if "max_distance" in clause:
        scored = [s for s in scored if s[1] <= clause["max_distance"]]
    elif "min_score" in clause:
        scored = [s for s in scored if s[2] >= clause["min_score"]]
    scored.sort(key=lambda s: -s[2])  # stable: ties keep index order
    if "k" in clause:
        scored = scored[: clause["k"]]
    return {doc_id: float32_text(score) for doc_id, _, score in scored}


def _distance_and_score(query: np.ndarray, stored: np.ndarray, space: str, engine: str) -> tuple[float, np.float32]:
    """OpenSearch docs, "Spaces", in float32: the engine's raw distance and OpenSearch's `_score`."""
    one = np.float32(1)
    if space == "innerproduct":
        dot = np.float32(np.dot(query, stored))
        positive = dot >= 0 if engine == "lucene" else dot > 0
        return -float(dot), (dot + one) if positive else one / (one - dot)
    if space == "cosinesimil":
        cosine = np.float32(np.dot(query, stored) / (np.linalg.norm(query) * np.linalg.norm(stored)))
        return float(one - cosine), max((one + cosine) / np.float32(2), np.float32(0))
    difference = query - stored
    if space == "l2":
        distance = np.float32(np.dot(difference, difference))
    elif space == "l1":
        distance = np.float32(np.abs(difference).sum())
    elif space == "linf":
        distance = np.float32(np.abs(difference).max())
    else:
        raise query_shard_error(f"loopback: space [{space}] is not implemented")
    return float(distance), one / (one + distance)


def _handler_for(server: LoopbackOpenSearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                self.command,
                url.path,
                dict(parse_qsl(url.query, keep_blank_values=True)),
                {key.lower(): value for key, value in self.headers.items()},
                self.rfile.read(length) if length else b"",
            )
            status, body = server.handle(request)
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", JSON_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def loopback():
    """A fresh loopback OpenSearch per test (starting one takes about a millisecond)."""
    server = LoopbackOpenSearch().start()
    yield server
    server.stop()
    assert not server.failures, server.failures[0]
