"""Reading a built book as its readers do: Debian's Chromium, headless, driven by
Playwright, on pages served from localhost. ``make test`` (``.ci/run``) installs Chromium;
where it is absent the browser tests are skipped with a message saying so."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip(
            "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
        )
    return found


@contextlib.contextmanager
def served(root: Path) -> Iterator[str]:
    """``root`` over HTTP on a free localhost port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@dataclass
class PageReport:
    url: str
    outside: list[str] = field(default_factory=list)  # requests to any other host
    errors: list[str] = field(default_factory=list)  # console errors and page errors
    broken_images: list[str] = field(default_factory=list)
    raw_latex: list[str] = field(default_factory=list)
    text: str = ""


@contextlib.contextmanager
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def read_page(b, url: str, *, width: int = 1400, screenshot: Path | None = None) -> PageReport:
    """Load ``url`` like a reader: every request to another host, every console error,
    every image that did not load and any LaTeX left untypeset."""
    report = PageReport(url)
    origin = url.split("/", 3)[:3]
    page = b.new_page(viewport={"width": width, "height": 1000})
    page.on(
        "request",
        lambda r: (
            None
            if r.url.split("/", 3)[:3] == origin or r.url.startswith(("data:", "blob:"))
            else report.outside.append(r.url)
        ),
    )
    page.on("console", lambda m: report.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: report.errors.append(str(e)))
    page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(1500)  # MathJax typesets after load
    report.broken_images = page.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    report.text = page.evaluate("document.body.innerText")
    for marker in ("\\varepsilon", "\\frac", "\\(", "\\)", "$$"):
        if marker in report.text:
            report.raw_latex.append(marker)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return report


def solution_folding(b, url: str, screenshot: Path | None = None) -> tuple[bool, bool]:
    """(hidden before a click, shown after it) for the first folded solution on the page."""
    page = b.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url, wait_until="networkidle")
    solution = page.locator("div.solution.dropdown").first
    body = solution.locator("section, div.cell").first
    hidden = not body.is_visible()
    solution.locator("button.toggle-button").first.click()
    page.wait_for_timeout(600)
    shown = body.is_visible()
    if screenshot is not None:
        solution.scroll_into_view_if_needed()
        solution.screenshot(path=str(screenshot))
    page.close()
    return hidden, shown
