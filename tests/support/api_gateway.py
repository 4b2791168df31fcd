"""API Gateway HTTP API (payload 2.0) events, as the search Lambda receives them, and the replies
the routes give, for every test that calls the app the way API Gateway does."""

import base64
import json

from urllib3 import encode_multipart_formdata


def api_event(method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> dict:
    """The event API Gateway's HTTP API hands the Lambda: text bodies as is, others base64."""
    headers = {
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "pytest",
        "x-forwarded-for": "203.0.113.9",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    if content_type:
        headers["content-type"] = content_type
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "10/Mar/2026:12:00:00 +0000",
            "timeEpoch": 1773144000000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        textual = content_type == "application/json"
        event["body"] = body.decode() if textual else base64.b64encode(body).decode()
        event["isBase64Encoded"] = not textual
    return event


class Reply:
    def __init__(self, result: dict) -> None:
        self.status = int(result["statusCode"])
        self.headers = result["headers"]
        self.base64 = result["isBase64Encoded"]
        self.content = base64.b64decode(result["body"]) if self.base64 else result["body"].encode()

    def json(self):
        return json.loads(self.content)


def call(app, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Reply:
    return Reply(app.resolve(api_event(method, path, body, content_type), None))


def post_json(app, payload: dict) -> Reply:
    return call(app, "POST", "/search", json.dumps(payload).encode(), "application/json")


def post_form(app, image: bytes, **fields: str) -> Reply:
    body, content_type = encode_multipart_formdata({"image": ("query.jpg", image, "image/jpeg"), **fields})
    return call(app, "POST", "/search", body, content_type)


def b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode()
