"""A recorded-exchange transport: ccxt's HTTP session answered from files, never the network.

A directory per exchange holds `routes.json` and the payloads it names:

    {"now": 1736920950000,
     "routes": [{"path": "/fapi/v1/klines", "match": {"symbol": "BTCUSDT"},
                 "status": 200, "headers": {}, "file": "klines_1m.json"}]}

A request is answered by the first route whose path equals the request's path and whose `match`
items all equal its query parameters; a route with `times` answers that many requests only. The
body is sent as recorded, so ccxt's own parsing and error handling run on it. `now` fixes the
exchange clock (ccxt's `milliseconds()`), so time windows are reproducible. A request no route
answers raises ReplayMissing: a test must know every call it makes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.structures import CaseInsensitiveDict


class ReplayMissing(LookupError):
    """No recording answers this request."""


class ReplaySession(requests.Session):
    def __init__(self, root: Path, *, delay_ms: int = 0) -> None:
        super().__init__()
        self.root = Path(root)
        manifest = json.loads((self.root / "routes.json").read_text())
        self.now_ms: int = int(manifest["now"])
        self.routes: list[dict] = manifest["routes"]
        self.delay = delay_ms / 1000
        self.requests: list[tuple[str, dict[str, str]]] = []

    def request(self, method, url, *args, **kwargs) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.requests.append((parts.path, query))
        if self.delay:
            time.sleep(self.delay)
        route = self.route(parts.path, query)
        response = requests.Response()
        response.status_code = int(route.get("status", 200))
        response.reason = requests.status_codes._codes.get(response.status_code, ("",))[0].upper()
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json", **route.get("headers", {})}
        )
        response._content = (self.root / route["file"]).read_bytes()
        response.url = url
        response.encoding = "utf-8"
        return response

    def route(self, path: str, query: dict[str, str]) -> dict:
        for route in self.routes:
            if route["path"] != path:
                continue
            if route.get("times") == 0:
                continue
            if all(str(query.get(k)) == str(v) for k, v in route.get("match", {}).items()):
                if "times" in route:
                    route["times"] -= 1
                return route
        raise ReplayMissing(f"{self.root.name}: no recording for {path} {query}")


def attach(exchange, root: Path, *, delay_ms: int = 0) -> ReplaySession:
    """Serve this ccxt exchange from the recordings in `root`, with its clock fixed to theirs.

    ccxt's throttle measures time with the same clock, so it is switched off: recordings need no
    pacing, and a fixed clock would make it sleep a full interval before every request.
    """
    session = ReplaySession(root, delay_ms=delay_ms)
    exchange.session = session
    exchange.milliseconds = lambda: session.now_ms
    exchange.enableRateLimit = False
    return session
