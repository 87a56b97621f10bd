"""The status page at ``/``: one HTML document with its stylesheet and script inlined from
package data (no build step, no external assets), links rendered on the server, and a
Content-Security-Policy that allows nothing but this origin and the page's own code.

The page holds no data, so it is served without a token; its script reads the API with the
token the operator enters (kept in ``sessionStorage``), and a 401 brings the prompt back.
"""

from __future__ import annotations

import base64
import hashlib
import html
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from exporter.http.context import SETTINGS

DASHBOARDS: tuple[tuple[str, str], ...] = (
    ("voxmon-overview", "Grafana: overview"),
    ("voxmon-stages", "Grafana: stages"),
    ("voxmon-orgs", "Grafana: organisations"),
    ("voxmon-daemon", "Grafana: daemon health"),
)
"""The shipped dashboards (uid, link text); ``tests/test_status_page.py`` checks the uids
against ``grafana/dashboards/``."""

API_LINKS = (("/metrics", "/metrics"), ("/openapi.json", "API (OpenAPI)"))


@dataclass(frozen=True, slots=True)
class Page:
    """The rendered document and the policy that lets exactly its inline code run."""

    body: bytes
    content_security_policy: str


def _asset(name: str) -> str:
    return (resources.files("exporter.http") / "static" / name).read_text(encoding="utf-8")


def _sha256(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def links(grafana_url: str) -> str:
    """The navigation links as HTML, every URL and text escaped."""
    targets = list(API_LINKS)
    if grafana_url:
        base = grafana_url.rstrip("/")
        targets += [(f"{base}/d/{uid}", text) for uid, text in DASHBOARDS]
    return "".join(
        f'<a href="{html.escape(href)}" rel="noreferrer">{html.escape(text)}</a>'
        for href, text in targets
    )


@cache
def render(grafana_url: str) -> Page:
    """The page for one configuration (built once per ``grafana_url``)."""
    style, script = _asset("status.css"), _asset("status.js")
    body = (
        _asset("status.html")
        .replace("@@LINKS@@", links(grafana_url))
        .replace("@@STYLE@@", style)
        .replace("@@SCRIPT@@", script)
    )
    policy = "; ".join((
        "default-src 'none'",
        f"script-src {_sha256(script)}",
        f"style-src {_sha256(style)}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ))  # fmt: skip
    return Page(body.encode(), policy)


async def get_status(request: web.Request) -> web.Response:
    """``GET /``: the status page (open; it carries no data)."""
    page = render(request.app[SETTINGS].grafana_url)
    response = web.Response(body=page.body, content_type="text/html", charset="utf-8")
    response.headers.update({
        "Content-Security-Policy": page.content_security_policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    })  # fmt: skip
    return response
