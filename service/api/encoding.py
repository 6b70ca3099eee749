"""Content negotiation shared by every route: gzip by ``Accept-Encoding``, ETags and
``If-None-Match``.

One reading of ``Accept-Encoding`` (q-values, ``*``, every field line) serves the routes
that send cached gzip bytes, the gzip middleware and the key of kept answers
(:mod:`service.api.reuse`), so they never disagree on what a client gets. A gzipped answer
is a different representation from the plain one, so its ETag differs (``-gz``); an
``If-None-Match`` naming either is answered 304 with the ETag it named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import Request, Response
from starlette.middleware.gzip import GZipMiddleware, GZipResponder, IdentityResponder

#: What a gzipped representation's ETag adds to the plain one's opaque tag.
GZIP_SUFFIX = "-gz"
_ETAG = re.compile(r'\s*(W/)?("[^"]*")\s*(?:,|$)')


def accepts_gzip(values: Iterable[str]) -> bool:
    """Whether ``Accept-Encoding`` (all its field lines) lets the answer be gzipped.

    RFC 9110 section 12.5.3: ``gzip`` (or ``x-gzip``) with a q-value above 0, or, when gzip is
    not named, ``*`` above 0. ``gzip;q=0`` refuses it; a q-value that is not a number counts
    as 0.

    Examples
    --------
    >>> accepts_gzip(["gzip, deflate"]), accepts_gzip(["gzip;q=0, identity"])
    (True, False)
    >>> accepts_gzip(["*"]), accepts_gzip(["*;q=0.5, gzip;q=0"]), accepts_gzip([])
    (True, False, False)
    """
    named: float | None = None
    star: float | None = None
    for value in values:
        for item in value.split(","):
            name, _, params = item.partition(";")
            name = name.strip().lower()
            q = 1.0
            for param in params.split(";"):
                key, _, number = param.partition("=")
                if key.strip().lower() == "q":
                    try:
                        q = float(number.strip())
                    except ValueError:
                        q = 0.0
                    if not 0.0 <= q <= 1.0:  # NaN too
                        q = 0.0
            if name in ("gzip", "x-gzip"):
                named = q if named is None else max(named, q)
            elif name == "*":
                star = q if star is None else max(star, q)
    if named is not None:
        return named > 0
    return star is not None and star > 0


def request_accepts_gzip(request: Request) -> bool:
    """:func:`accepts_gzip` of a request's ``Accept-Encoding`` field lines."""
    return accepts_gzip(request.headers.getlist("accept-encoding"))


def scope_accepts_gzip(scope: Any) -> bool:
    """:func:`accepts_gzip` of an ASGI scope's ``Accept-Encoding`` field lines."""
    return accepts_gzip(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"accept-encoding"
    )


def gzip_etag(etag: str) -> str:
    """The ETag of the gzipped representation of what ``etag`` tags (``"x"`` -> ``"x-gz"``)."""
    weak = etag.startswith("W/")
    opaque = etag[2:] if weak else etag
    if opaque.endswith(f'{GZIP_SUFFIX}"'):
        return etag
    return f'{"W/" if weak else ""}{opaque[:-1]}{GZIP_SUFFIX}"'


def if_none_match(request: Request) -> list[str] | None:
    """The opaque tags of ``If-None-Match`` (weak or not), ``["*"]``, or None when absent."""
    values = request.headers.getlist("if-none-match")
    if not values:
        return None
    tags: list[str] = []
    for value in values:
        if value.strip() == "*":
            return ["*"]
        tags += [m.group(2) for m in _ETAG.finditer(value)]
    return tags


def not_modified(request: Request, etag: str, cache_control: str) -> Response | None:
    """304 when ``If-None-Match`` names ``etag``, its gzipped twin, or ``*``; else None.

    The comparison is weak (RFC 9110 section 13.1.2: ``W/"x"`` matches ``"x"``), the list may
    name many tags, and the 304 carries the ETag the client named, so a cache refreshes the
    representation it holds, gzipped or not.
    """
    tags = if_none_match(request)
    if not tags:
        return None
    plain, packed = etag.removeprefix("W/"), gzip_etag(etag).removeprefix("W/")
    if tags == ["*"]:
        matched = packed if request_accepts_gzip(request) else plain
    else:
        found = [t for t in tags if t in (plain, packed)]
        if not found:
            return None
        matched = found[0]
    return Response(status_code=304, headers={"ETag": matched, "Cache-Control": cache_control})


class NegotiatedGZip(GZipMiddleware):
    """Starlette's gzip middleware, choosing by :func:`accepts_gzip` (Starlette's looks for
    the letters ``gzip`` anywhere, so ``gzip;q=0`` got gzip), giving a body it compresses the
    gzipped ETag (:func:`gzip_etag`), and naming ``Accept-Encoding`` in ``Vary`` once."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        responder: Any
        if scope_accepts_gzip(scope):
            responder = GZipResponder(
                self.app,
                self.minimum_size,
                compresslevel=self.compresslevel,
                thread_minimum_size=self.thread_minimum_size,
                exclude_content_types=self.exclude_content_types,
            )
        else:
            responder = IdentityResponder(
                self.app, self.minimum_size, exclude_content_types=self.exclude_content_types
            )

        async def send_tidy(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": tidy_headers(message.get("headers", []))}
            await send(message)

        await responder(scope, receive, send_tidy)


def tidy_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``Vary`` without repeated names, and a gzip ETag on a gzipped body."""
    out = list(headers)
    gzipped = any(k == b"content-encoding" and v.strip() == b"gzip" for k, v in out)
    for i, (key, value) in enumerate(out):
        if key == b"vary":
            names: list[str] = []
            for name in value.decode("latin-1").split(","):
                if name.strip() and name.strip().lower() not in (n.lower() for n in names):
                    names.append(name.strip())
            out[i] = (key, ", ".join(names).encode("latin-1"))
        elif key == b"etag" and gzipped:
            out[i] = (key, gzip_etag(value.decode("latin-1")).encode("latin-1"))
    return out
