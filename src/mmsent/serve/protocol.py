"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's headers.

uvicorn closes a kept-alive connection that stays silent (`timeout_keep_alive`), but
nothing closes one that sends part of a request's headers and then nothing more, nor a
fresh connection that never sends a byte: each holds a socket and a file descriptor for
as long as the client likes, and a few thousand such clients take the server down
(slowloris). h11 only bounds the headers' size (`h11_max_incomplete_event_size`), not
their time. Here a timer starts when a connection opens and again after every answer;
if the request's headers are not all in when it fires, the connection is closed.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0  # seconds a client has to send a request's headers, from connect or the last answer
KEEP_ALIVE = 5.0  # seconds a kept-alive connection may stay silent (uvicorn's default)


class HeaderDeadlineProtocol(H11Protocol):
    header_timeout = HEADER_TIMEOUT
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_deadline()  # the next request on this connection has its own time

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.header_timeout, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # IDLE: h11 has not seen a whole request head yet (a request being read or answered is not).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_options(header_timeout: float = HEADER_TIMEOUT) -> dict:
    """uvicorn.Config / uvicorn.run options: the h11 protocol above with this header deadline."""
    protocol = type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})
    return {"http": protocol, "timeout_keep_alive": KEEP_ALIVE}
