"""How the API is served: uvicorn with bounded request heads, connections and idle time.

``pm25 serve`` and ``pm25 demo`` start uvicorn through :func:`serve_api`. The server parses
HTTP/1.1 with httptools (llhttp, uvicorn's C parser: a request costs a fraction of what
h11, the pure-Python one, costs) under :class:`BoundedHttpToolsProtocol`, which

- gives a client :data:`HEAD_TIMEOUT_S` to send a request line and headers, from when the
  connection opens or the previous answer ends (408, or a silent close if nothing came);
  the same time bounds how long the rest of a refused body (413, answered before it was
  read) is received and dropped, so that the client can read the answer: a lingering close;
- refuses a head still incomplete after :data:`MAX_HEAD_BYTES` with 414 (request line) or
  431 (headers), and other malformed HTTP with 400, as RFC 9457 problem documents instead
  of uvicorn's plain text (a complete head goes on to the app, whose guard bounds the
  target and the headers);
- refuses connections beyond :data:`MAX_CONNECTIONS` per process with 503.

Idle keep-alive connections close after :data:`KEEP_ALIVE_S`. The app's own limits (body
size, URL length, requests in flight) are in :mod:`service.api.guard`.
"""

from __future__ import annotations

import errno
import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.guard import target_too_long

#: The largest request line plus headers accepted as they arrive, in bytes.
MAX_HEAD_BYTES = 16 * 1024
#: Seconds a client has to send a complete request line and headers.
HEAD_TIMEOUT_S = 10.0
#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_S = 5
#: Open connections one server process accepts; more are answered 503 and closed.
MAX_CONNECTIONS = 1000
#: The longest request target httptools parses; longer ones get the guard's 414 from here.
MAX_PARSED_URL_BYTES = 0xFFFF
#: Seconds a shutdown waits for requests in progress.
GRACEFUL_SHUTDOWN_S = 10

#: RFC 9110's names where Python's differ (the app's problem documents use the same).
TITLES = {413: "Content Too Large", 414: "URI Too Long"}


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with bounds on the request head and problem documents.

    The head's deadline runs from the moment the connection opens or an answer ends until
    the next request's head is complete; a request being answered is never cut short by it.
    The head's size is counted from the end of the previous request (its body included), so
    the dropped rest of a refused body does not count.
    """

    head_timeout_s = HEAD_TIMEOUT_S
    max_connections = MAX_CONNECTIONS
    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: Any = None
        self._between = True  # the previous request (if any) is complete, the next not yet
        self._head_bytes = 0  # bytes received since then
        self._line_ended = False  # whether they hold the end of the request line
        self._heads = 0  # request heads completed on this connection

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
        between, heads = self._between, self._heads
        super().data_received(data)
        if not (between and self._between and self._heads == heads):
            return  # a head completed (or a body was being read): not a head's bytes alone
        if self.transport.is_closing():
            return
        self._head_bytes += len(data)
        self._line_ended = self._line_ended or b"\r\n" in data
        if self._head_bytes > self.max_head_bytes:
            if self._line_ended:
                self.refuse(431, f"the request line and headers are longer than "
                                 f"{self.max_head_bytes} bytes")  # fmt: skip
            else:
                self.refuse(414, f"the request line is longer than {self.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._between = False
        self._heads += 1
        self._stop_head_timer()
        if len(self.url) > MAX_PARSED_URL_BYTES:  # past what httptools parses (else the guard)
            self.refuse(414, target_too_long(len(self.url)))
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():  # else refused, or the client is gone
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()
        self._between, self._head_bytes, self._line_ended = True, 0, False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        """Answer a request httptools could not parse (uvicorn's answer is plain text)."""
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
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._between and self._head_bytes:
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


class PreflightError(Exception):
    """``pm25 serve`` cannot start: the message is the one line to print."""


def check_database(url: str) -> None:
    """Connect to ``url`` and check that its schema is at the newest revision.

    Done in the parent before uvicorn starts: a worker that cannot build the app would only
    print a traceback, and with ``--workers 2`` the parent would wait for it forever.

    Raises
    ------
    PreflightError
        The URL does not parse, names no installed driver, the database does not answer,
        or its schema is missing or behind; the message names ``PM25_DATABASE_URL`` with
        the password hidden.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from service.storage.db import driver_reason, make_engine, redact, redact_text
    from service.storage.migrate import SchemaNotReadyError, check_schema

    shown = redact(url)
    try:
        engine = make_engine(url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        reason = redact_text(driver_reason(exc), url)
        raise PreflightError(f"PM25_DATABASE_URL ({shown}) is not usable: {reason}") from None
    try:
        check_schema(engine, shown)
    except SchemaNotReadyError as exc:
        raise PreflightError(
            f"PM25_DATABASE_URL: database schema missing or out of date: {exc}"
        ) from None
    except (SQLAlchemyError, OSError) as exc:
        reason = redact_text(driver_reason(exc), url)
        raise PreflightError(f"PM25_DATABASE_URL ({shown}) does not answer: {reason}") from None
    finally:
        engine.dispose()


def check_port(host: str, port: int) -> None:
    """Check that ``host:port`` can be listened on (uvicorn sets ``SO_REUSEADDR`` too).

    Raises
    ------
    PreflightError
        The port is outside 1-65535, already in use, or the host is not an address here.
    """
    import socket

    if not 1 <= port <= 65535:
        raise PreflightError(f"port {port} is not a TCP port (1-65535): see PM25_API_PORT")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise PreflightError(f"cannot listen on host {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise PreflightError(f"cannot listen on {host}:{port}: {reason}") from None


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
    """uvicorn's settings for the API: the bounded httptools protocol, keep-alive and
    shutdown times, no access log (the benchmark serves its framework ceiling with the same)."""
    return {
        "http": BoundedHttpToolsProtocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "log_config": None,  # uvicorn's records go through the service's KST log format
        "log_level": log_level.lower(),
        "access_log": False,
    }
