"""Emails sent after the response has gone out.

A form that answers the same whether an address has an account (sign-up, password reset) must
also take the same time: rendering and sending a message only for known addresses would tell
them apart. The WSGI server calls the response's close() once the client has the whole body;
the messages are rendered and sent then, and a failure to send is logged, never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpResponse

log = logging.getLogger(__name__)

Send = Callable[[], object]


def send_after_response(response: HttpResponse, sends: list[Send]) -> HttpResponse:
    """Run each of `sends` (render and send one message) after `response` is delivered."""
    if not sends:
        return response
    close = response.close

    def close_then_send() -> None:
        close()
        for send in sends:
            try:
                send()
            except Exception:
                log.exception("an account email could not be sent")

    response.close = close_then_send
    return response
