"""The event handler that lets the local server resolve requests on many threads at once.

powertools keeps the event being resolved on the router class (`BaseRouter.current_event`, one
value shared by every resolver in the process), the routing context on the resolver instance, and
builds each route's middleware stack on its first call. Two threads resolving at once would read
each other's events, and two first calls of one route could wrap its middlewares twice. This
resolver keeps the event, the Lambda context and the routing context per thread, and builds a
route's stack under a lock; in a Lambda (one event at a time) it behaves exactly like its parent.
"""

import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder, Route
from aws_lambda_powertools.utilities.data_classes.common import BaseProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext


class ThreadSafeResolver(APIGatewayHttpResolver):
    def __init__(self, *args, **kwargs) -> None:
        self._request = threading.local()
        self._stack_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def current_event(self) -> BaseProxyEvent:
        return self._request.current_event

    @property  # type: ignore[override]
    def lambda_context(self) -> LambdaContext:
        return self._request.lambda_context

    @property  # type: ignore[override]
    def context(self) -> dict:
        if not hasattr(self._request, "context"):
            self._request.context = {}
        return self._request.context

    @context.setter
    def context(self, value: dict) -> None:
        self._request.context = value

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        self._request.current_event = self._to_proxy_event(dict(event))
        self._request.lambda_context = context
        try:
            return super().resolve(event, context)
        finally:
            # A finished request's body (up to the request size limit) is not kept by its thread.
            del self._request.current_event, self._request.lambda_context

    def _call_route(self, route: Route, route_arguments: dict[str, str]) -> ResponseBuilder:
        if not route._middleware_stack_built:
            with self._stack_lock:
                if not route._middleware_stack_built:
                    route._build_middleware_stack(router_middlewares=self._router_middlewares, app=self)
        return super()._call_route(route, route_arguments)
