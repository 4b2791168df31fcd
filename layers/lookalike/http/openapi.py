"""`GET /openapi.json`: powertools' OpenAPI document of the routes an app holds, completed where
powertools cannot express a route's body."""

import json
from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types

from lookalike import __version__
from lookalike.http.search_routes import SearchRequest


def add_openapi_route(app: APIGatewayHttpResolver) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi():
        return Response(
            status_code=HTTPStatus.OK, content_type=content_types.APPLICATION_JSON, body=openapi_document(app)
        )


def openapi_document(app: APIGatewayHttpResolver) -> dict:
    """powertools' OpenAPI document, plus the multipart form of POST /search it cannot express
    (it gives a route's body a single media type, while the body is parsed by its content type)."""
    document = json.loads(app.get_openapi_json_schema(title="Lookalike", version=__version__))
    search = document.get("paths", {}).get("/search", {}).get("post")
    if search is not None:
        form = SearchRequest.model_json_schema() | {"title": "SearchForm"}
        form["properties"]["image"] = {"type": "string", "format": "binary", "description": "the query image file"}
        form["properties"]["box"] = {"type": "string", "description": "x0,y0,x1,y1", "examples": ["40,30,360,280"]}
        form["properties"]["tags"] = {"type": "string", "description": "a JSON object of tags every result must have"}
        search["requestBody"]["content"]["multipart/form-data"] = {"schema": form}
    return document
