"""Errors of edge.http, details as attributes. A handler may raise HttpError (or let the
server's BodyTooLarge escape): the server answers it as JSON `{"error", "reason"}` with its
status, the same shape the node's endpoints use for their own refusals."""

from __future__ import annotations


class HttpError(Exception):
    """A request refused with `status`; `reason` is a short code, `detail` the words."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail


class BodyTooLarge(HttpError):
    """The request's body is over the server's `limit` in bytes, so the server did not read (the
    rest of) it and will close the connection after answering. `size` is the declared
    Content-Length, or None for a chunked body that ran over while being read."""

    def __init__(self, *, limit: int, size: int | None) -> None:
        said = f"{size} bytes" if size is not None else f"over {limit} bytes"
        super().__init__(413, "too-large", f"the body is {said}, at most {limit} are accepted")
        self.limit = limit
        self.size = size
