"""Headless Chromium for the browser tests: Debian's package, never a downloaded browser."""

from __future__ import annotations

import contextlib

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_launch(playwright):
    """Launch Debian's Chromium through Playwright's sync API."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# axe-core, vendored from the npm registry package (static/vendor/axe-core-*/README.md).
AXE_PATH = "/static/vendor/axe-core-4.14.1/axe.min.js"
AXE_BLOCKING = ("serious", "critical")


def axe_violations(page, base_url: str) -> list[dict]:
    """axe-core's serious and critical violations on the page as loaded (with Bokeh's shadow
    roots), each as {id, impact, help, targets}."""
    page.add_script_tag(url=base_url + AXE_PATH)
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        targets: v.nodes.slice(0, 5).map(n => n.target.join(" "))}))"""
    )
    return [v for v in found if v["impact"] in AXE_BLOCKING]


def touch_drag(page, x: float, y: float, dy: float, steps: int = 8) -> None:
    """A one-finger vertical drag from (x, y) by dy CSS pixels, as a touch screen sends it."""
    cdp = page.context.new_cdp_session(page)
    point = {"x": x, "y": y}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    for k in range(1, steps + 1):
        moved = {"x": x, "y": y + dy * k / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [moved]})
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def context_close(context) -> None:
    """Close a browser context once its pages have no request in flight: a request the live
    server is still answering when the test's database access ends fails its teardown."""
    for page in context.pages:
        # a page that never settles (a poll every second) is closed anyway
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=10_000)
    context.close()
