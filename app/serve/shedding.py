"""The HTTP protocol of `contextlake serve`: uvicorn's httptools protocol, except that a request that
admission control (app/serve/admission.py) would refuse at once is answered 503 from the protocol
itself, before a task, a scope or any middleware is made for it. Under a flood of retries that ignore
Retry-After, the refusals then cost a small part of the service's CPU and the admitted requests keep
theirs. A request behind another on a pipelined connection goes the usual way, so answers stay in order."""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.serve.admission import EXEMPT, HELD, REFUSAL_BODY, REFUSAL_HEADERS, AdmissionControl, deadline_ms

EXEMPT_PATHS = frozenset(p.encode() for p in EXEMPT)
REFUSAL = STATUS_LINE[503] + b"".join(n + b": " + v + b"\r\n" for n, v in REFUSAL_HEADERS) + b"\r\n" + REFUSAL_BODY


class _Refused:
    """Stands for the cycle of a request answered by the protocol: complete, so the parser's later
    callbacks for its body do nothing."""

    response_complete = True
    keep_alive = True
    disconnected = False

    def __init__(self) -> None:
        self.message_event = asyncio.Event()


def _admission_of(app: Any) -> AdmissionControl | None:
    """The admission control of the app under uvicorn's wrappers (each keeps the wrapped app as .app)."""
    for _ in range(10):
        control = getattr(getattr(app, "state", None), "admission", None)
        if isinstance(control, AdmissionControl):
            return control
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class SheddingProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission = _admission_of(self.app)
        self.refused = _Refused()  # one per connection: nothing is allocated per refusal

    def on_headers_complete(self) -> None:
        control = self.admission
        if (
            control is not None
            and (self.cycle is None or self.cycle.response_complete)  # its task starts now, not queued
            and not self.parser.should_upgrade()
            and httptools.parse_url(self.url).path not in EXEMPT_PATHS
        ):
            # Decided here for every request of a burst that arrives in one turn of the event loop, so
            # the slots are not all promised before the first task runs.
            if control.try_take():
                self.scope["state"][HELD] = True
            elif control.refuses_at_once(deadline_ms(self.headers)):
                self.transport.write(REFUSAL)
                self.cycle = self.refused  # type: ignore[assignment]
                if self.parser.get_http_version() == "1.0" or not self.parser.should_keep_alive():
                    self.transport.close()
                    return
                self.on_response_complete()
                return
        super().on_headers_complete()
