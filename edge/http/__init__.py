"""The node's local HTTP: a small asyncio HTTP/1.1 server on h11 (`server`), the Request and
Response its handlers see (`messages`) and the Router that picks the handler (`router`).
edge.cameras.ingest and edge.diagnostics mount their routes on one Router; edge.agent serves it.
"""

from .errors import BodyTooLarge, HttpError
from .messages import (
    Headers,
    Request,
    Response,
    html_response,
    json_response,
    redirect,
    text_response,
)
from .router import ANY_METHOD, Handler, Router
from .server import HttpServer

__all__ = [
    "ANY_METHOD",
    "BodyTooLarge",
    "Handler",
    "Headers",
    "HttpError",
    "HttpServer",
    "Request",
    "Response",
    "Router",
    "html_response",
    "json_response",
    "redirect",
    "text_response",
]
