"""``GET /dashboard``: one static page drawing the timeline and the stats of an experiment.

The page holds no data: it is public, and it reads the admin API (``/v1/experiments``,
``/{name}/timeline``, ``/{name}/stats``) with the admin bearer token like any other
admin client. The token comes from a password field or the URL fragment
(``/dashboard#token=...``: a fragment is never sent to the server, so it stays out of
access logs and ``Referer``); the page keeps it in ``sessionStorage`` (this tab only)
and drops it from the address bar. No cookie is set, so no other site can make the
browser call the admin API on the user's behalf.

Everything is inline (no CDN: deployments may have no internet), and the
Content-Security-Policy allows exactly the page's own script and style (by hash) and
``fetch`` to this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

PAGE = Path(__file__).resolve().parent.parent / "dashboard.html"


def _digest(body: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


@cache
def page() -> tuple[str, dict[str, str]]:
    """The page and its security headers (read once)."""
    html = PAGE.read_text(encoding="utf-8")
    scripts = " ".join(_digest(s) for s in re.findall(r"<script>(.*?)</script>", html, re.S))
    styles = " ".join(_digest(s) for s in re.findall(r"<style>(.*?)</style>", html, re.S))
    policy = (f"default-src 'none'; script-src {scripts}; style-src {styles}; "
              "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
              "frame-ancestors 'none'")
    headers = {"Content-Security-Policy": policy, "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
               "Cache-Control": "no-cache"}
    return html, headers


async def dashboard(request: Request) -> Response:
    """The dashboard page (static; its data needs the admin token)."""
    html, headers = page()
    return HTMLResponse(html, headers=headers)
