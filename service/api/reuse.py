"""Whole answers of published runs, kept: a repeated GET is answered before routing.

A published run never changes, so the complete answer to a GET about a fixed date (status,
headers and body, for the same path and query string, gzipped or not as the client takes
it) stays right for as long as that date's publication is the same run. Routes opt in with
:func:`reusable`, naming the date and the run their answer was made from; this middleware
keeps the answer (bounded in entries and bytes) and answers the same request again from
memory, without routing, validation or encoding, while the date's publication, as the
routes see it (:func:`service.api.forecasts.cached_publication`, refreshed every
``api_cache_seconds``), is still that run. Otherwise, and for conditional requests
(``If-None-Match``), the request goes to the app as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import Request

from service.api.deps import LRU, MiB
from service.api.encoding import scope_accepts_gzip

#: The request state's key under which a route names the date and run of its answer.
REUSE = "pm25_reuse"
#: Answers larger than this are not kept here (the grids' payloads are cached by the routes).
MAX_ANSWER_BYTES = 1 * MiB


def reusable(request: Request, day: dt.date, run_id: int) -> None:
    """Mark the answer being made as reusable while ``day``'s publication is run ``run_id``."""
    setattr(request.state, REUSE, (day, run_id))


class ReusedAnswers:
    """Pure ASGI middleware: keep reusable answers whole and send them again.

    Parameters
    ----------
    app
        The wrapped application.
    is_current
        Whether a date's publication, as the routes see it now, is still a given run.
    answers
        Where the answers are kept (bounded in entries and bytes; the oldest go first).
    """

    def __init__(
        self, app: Any, is_current: Callable[[dt.date, int], bool], answers: LRU | None = None
    ) -> None:
        self.app = app
        self.is_current = is_current
        self.answers = answers if answers is not None else LRU(4096, max_bytes=32 * MiB)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        for name, _ in scope["headers"]:
            if name == b"if-none-match":
                await self.app(scope, receive, send)  # the route answers 304 or 200
                return
        # Accept-Encoding as the routes and the gzip middleware read it (q-values, every line)
        key = (scope["path"], scope["query_string"], scope_accepts_gzip(scope))
        kept = self.answers.get(key)
        if kept is not None and self.is_current(kept[0], kept[1]):
            _, _, route, start, body = kept
            scope["route"] = route  # for the metrics' route label
            await send({**start, "headers": list(start["headers"])})
            await send({"type": "http.response.body", "body": body})
            return
        await self.record(key, scope, receive, send)

    async def record(self, key: Any, scope: Any, receive: Any, send: Any) -> None:
        """Answer through the app, keeping the answer when its route marked it reusable."""
        start: dict[str, Any] = {}
        parts: list[bytes] = []
        whole = True

        async def send_kept(message: Any) -> None:
            nonlocal whole
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                whole = whole and not message.get("more_body", False)
            else:
                whole = False
            await send(message)

        await self.app(scope, receive, send_kept)
        mark = (scope.get("state") or {}).get(REUSE)
        if mark is None or not whole or start.get("status") != 200 or len(parts) != 1:
            return
        body = parts[0]
        encoded = any(
            name == b"content-encoding" and b"gzip" in value
            for name, value in start.get("headers", ())
        )
        if encoded and not key[2]:  # never keep gzip where the key promises a plain body
            return
        if len(body) <= MAX_ANSWER_BYTES:
            start = {**start, "headers": tuple(start.get("headers", ()))}
            self.answers.put(key, (*mark, scope.get("route"), start, body), len(body) + 512)
