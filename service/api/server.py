"""How the API is served: uvicorn with bounded request heads, connections and idle time.

``pm25 serve`` and ``pm25 demo`` start uvicorn through :func:`serve_api`. The server uses
h11 (uvicorn's pure-Python HTTP/1.1 parser) because it bounds the request head
(``h11_max_incomplete_event_size``), with :class:`BoundedH11Protocol` on top, which

- gives a client :data:`HEAD_TIMEOUT_S` to send a request line and headers, from when the
  connection opens or the previous answer ends (408, or a silent close if nothing came);
  the same time bounds how long the rest of a refused body (413, answered before it was
  read) is received and dropped, so that the client can read the answer: a lingering close;
- refuses a head over :data:`MAX_HEAD_BYTES` with 414 (request line) or 431 (headers), and
  other malformed HTTP with 400, as RFC 9457 problem documents instead of uvicorn's plain
  text;
- refuses connections beyond :data:`MAX_CONNECTIONS` per process with 503.

Idle keep-alive connections close after :data:`KEEP_ALIVE_S`. The app's own limits (body
size, URL length, requests in flight) are in :mod:`service.api.guard`.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import h11
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

#: The largest request line plus headers accepted, in bytes.
MAX_HEAD_BYTES = 16 * 1024
#: Seconds a client has to send a complete request line and headers.
HEAD_TIMEOUT_S = 10.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 5
#: Open connections one server process accepts; more are answered 503 and closed.
MAX_CONNECTIONS = 1000
#: Seconds a shutdown waits for requests in progress.
GRACEFUL_SHUTDOWN_S = 10

#: RFC 9110's names where Python's differ (the app's problem documents use the same).
TITLES = {413: "Content Too Large", 414: "URI Too Long"}


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for the request head and problem documents.

    The deadline runs from the moment the connection opens or an answer ends until the next
    request's head is complete; a request being answered is never cut short by it.
    """

    head_timeout_s = HEAD_TIMEOUT_S
    max_connections = MAX_CONNECTIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: Any = None
        self._waiting_cycle: Any = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.logger.warning("refusing a connection: %d open", len(self.connections))
            self.refuse(503, "the server has too many open connections; try again shortly")
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._waiting_cycle:
            self._stop_head_timer()  # a request head arrived

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 could not parse (uvicorn's answer is plain text)."""
        pending = self.conn.trailing_data[0]
        limit = self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES
        if len(pending) > limit and b"\r\n" not in pending:
            self.refuse(414, f"the request line is longer than {limit} bytes")
        elif len(pending) > limit:
            self.refuse(431, f"the request line and headers are longer than {limit} bytes")
        else:
            self.refuse(400, "the request is not valid HTTP/1.1")

    def refuse(self, status: int, detail: str) -> None:
        """Write a problem document straight to the connection, then close it."""
        title = TITLES.get(status) or HTTPStatus(status).phrase
        body = json.dumps(
            {"type": "about:blank", "title": title, "status": status, "detail": detail},
            separators=(",", ":"),
        ).encode()
        head = [f"HTTP/1.1 {status} {title}".encode()]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/problem+json",
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._waiting_cycle = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.cycle is not self._waiting_cycle:
            return
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self.refuse(408, f"the request head did not arrive within {self.head_timeout_s:g} s")
        else:  # nothing came, or the rest of a body answered already (413): enough dropped
            self.transport.close()


def app_factory() -> FastAPI:
    """The app as each uvicorn worker builds it, from the process settings."""
    from service.api.app import create_app
    from service.logs import configure_logging
    from service.settings import get_settings

    settings = get_settings()
    if not logging.getLogger().handlers:  # a fresh worker process (``--workers N``)
        configure_logging(settings.log_level)
    return create_app(settings)


def serve_api(host: str, port: int, *, workers: int = 1, log_level: str = "info") -> None:
    """Run the API under uvicorn until interrupted (``workers`` processes share the port).

    Check the settings first (:func:`service.api.auth.check_admin_token`): a worker that
    cannot build the app stops with a traceback.
    """
    import uvicorn

    uvicorn.run(
        "service.api.server:app_factory",
        factory=True,  # an import string: ``workers > 1`` needs one
        host=host,
        port=port,
        workers=workers,
        **server_options(log_level),
    )


def server_options(log_level: str = "info") -> dict[str, Any]:
    """uvicorn's settings for the API: the bounded h11 protocol, keep-alive and shutdown
    times, no access log (the benchmark serves its framework ceiling with the same)."""
    return {
        "http": BoundedH11Protocol,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "log_config": None,  # uvicorn's records go through the service's KST log format
        "log_level": log_level.lower(),
        "access_log": False,
    }
