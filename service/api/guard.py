"""The app's edge: limits on a request's URL, body and time, requests in flight, and HEAD.

Pure ASGI middleware (no Starlette request objects): a refused request costs microseconds
and its body is never read. What comes before the app (the size of the request line and
headers, the time to send them, idle connections) is bounded by the server, see
:mod:`service.api.server`. Every refusal is an RFC 9457 problem document.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from service.api.deps import MiB, Problem, problem_response

#: The largest request body accepted (``POST /v1/forecasts/{date}/points`` with 500 points
#: and 100-character ids needs about 80 KB).
MAX_BODY_BYTES = 1 * MiB
#: The longest path plus query string accepted; longer gives 414.
MAX_TARGET_BYTES = 8 * 1024
#: The most header bytes accepted (names, values, separators); more gives 431. The server
#: bounds the whole request head as it arrives (:data:`service.api.server.MAX_HEAD_BYTES`).
MAX_HEADER_BYTES = 16 * 1024
#: A request body must arrive within this many seconds of the request's start.
BODY_TIMEOUT_S = 30.0
#: Requests one server process works on at once; more get 503 with ``Retry-After``.
#: Liveness, readiness and metrics are never refused.
MAX_IN_FLIGHT = 256
EXEMPT_PATHS = frozenset({"/v1/health", "/v1/ready", "/metrics"})

ASGIApp = Any


class RequestGuard:
    """Refuse, before the app sees them, requests that are too long, too big or too many.

    - a path plus query string over :data:`MAX_TARGET_BYTES`: 414; headers over
      :data:`MAX_HEADER_BYTES`: 431;
    - a ``Content-Length`` over :data:`MAX_BODY_BYTES`: 413 at once, the body unread (the
      server drops what the client still sends, see :mod:`service.api.server`); a chunked
      body is counted as it arrives and refused with 413 when it passes the limit;
    - a body slower than :data:`BODY_TIMEOUT_S`: 408;
    - more than :data:`MAX_IN_FLIGHT` requests at once: 503 (except health, ready, metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_target_bytes: int = MAX_TARGET_BYTES,
        max_header_bytes: int = MAX_HEADER_BYTES,
        body_timeout_s: float = BODY_TIMEOUT_S,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_target_bytes = max_target_bytes
        self.max_header_bytes = max_header_bytes
        self.body_timeout_s = body_timeout_s
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, self.bounded_receive(receive), send)
        finally:
            self.in_flight -= 1

    def refusal(self, scope: Any) -> Any:
        """The problem response for a request refused on its head alone, or None."""
        path = scope.get("path", "")
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if target > self.max_target_bytes:
            return problem_response(
                414,
                "URI Too Long",
                target_too_long(target, self.max_target_bytes),
                path,
            )
        head = sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
        if head > self.max_header_bytes:
            return problem_response(
                431,
                "Request Header Fields Too Large",
                f"the headers have {head} bytes; at most {self.max_header_bytes} are accepted",
                path,
                headers=_CLOSE,
            )
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit():
                return problem_response(
                    400, "Bad Request", "Content-Length is not a number", path, headers=_CLOSE
                )
            if int(length) > self.max_body_bytes:
                return problem_response(
                    413,
                    "Content Too Large",
                    f"the body has {int(length)} bytes; at most {self.max_body_bytes} are accepted",
                    path,
                )
        if self.in_flight >= self.max_in_flight and path not in EXEMPT_PATHS:
            return problem_response(
                503,
                "Service Unavailable",
                f"the server is answering {self.in_flight} requests; try again in a second",
                path,
                headers={"Retry-After": "1"},
            )
        return None

    def bounded_receive(self, receive: Any) -> Any:
        """``receive`` that counts body bytes and keeps to the body's deadline."""
        received = 0
        deadline = time.monotonic() + self.body_timeout_s
        done = False

        async def receive_bounded() -> Any:
            nonlocal received, done
            if done:  # the body is complete: what follows is only the disconnect
                return await receive()
            with anyio.move_on_after(max(deadline - time.monotonic(), 0.0)) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise Problem(
                    408,
                    "Request Timeout",
                    f"the body did not arrive within {self.body_timeout_s:g} s",
                    headers=_CLOSE,
                )
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise Problem(
                        413,
                        "Content Too Large",
                        f"the body has more than {self.max_body_bytes} bytes, the most accepted",
                    )
            else:
                done = True
            return message

        return receive_bounded


class HeadAsGet:
    """HEAD works wherever GET does: the GET route answers, its body is left out.

    The headers (``Content-Length``, ``Content-Type``, ``ETag``) are those of the GET.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Any) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


_CLOSE = {"Connection": "close"}


def target_too_long(target: int, limit: int = MAX_TARGET_BYTES) -> str:
    """The 414's detail, from the guard or from the server (:mod:`service.api.server`)."""
    return f"the path and query string have {target} bytes; at most {limit} are accepted"


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1").strip())
    return None
