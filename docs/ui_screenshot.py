"""Screenshot a page of the Dagster UI with headless Chromium (how docs/ui-*.png are made).

    python3 tasks.py demo && python3 tasks.py dev --port 3391 &     # in a fresh clone
    python docs/ui_screenshot.py \
        http://127.0.0.1:3391/locations/calira_pipeline/asset-groups/staging/lineage \
        docs/ui-marts-lineage.png
    python docs/ui_screenshot.py URL OUT.png "chart/top_instruments"   # scrolled to that text
    python docs/ui_screenshot.py URL OUT.png "click:[Show Markdown]"   # clicks it (the chart)
    UI_SHOT_SIZE=1500x1250 python docs/ui_screenshot.py ...           # another window size

Chromium's own `--screenshot` cannot dismiss the UI's first-visit dialog, so this drives it over
the DevTools protocol: load the page, click "Skip" if the dialog is there, wait, capture.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any

import websockets

PORT = 9333  # Chromium's DevTools port, loopback only
WIDTH, HEIGHT = (int(n) for n in os.environ.get("UI_SHOT_SIZE", "1600x1000").split("x"))
SKIP_DIALOG = """(() => {
  for (const b of document.querySelectorAll('button'))
    if (b.textContent.trim() === 'Skip') { b.click(); return true; }
  return false;
})()"""
# Scrolls the innermost element whose whole text is the given text to the top of its scroller,
# or clicks it.
SCROLL_TO = """((text, click) => {
  const hits = [...document.querySelectorAll('body *')].filter(
    e => e.children.length === 0 && e.textContent.trim() === text);
  if (!hits.length) return false;
  if (click) hits[0].click(); else hits[0].scrollIntoView({block: 'start'});
  return true;
})(%s, %s)"""


def _page_socket() -> str:
    for _ in range(50):
        try:
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{PORT}/json"))
            return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        except (OSError, StopIteration):
            time.sleep(0.2)
    raise SystemExit("Chromium did not open its DevTools port")


async def _capture(url: str, scroll_to: str | None = None) -> bytes:
    async with websockets.connect(_page_socket(), max_size=2**28) as ws:
        ids = iter(range(1, 1_000))

        async def call(method: str, **params: Any) -> dict[str, Any]:
            sent = next(ids)
            await ws.send(json.dumps({"id": sent, "method": method, "params": params}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("id") == sent:
                    return dict(message.get("result", {}))

        await call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT,
                   deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await asyncio.sleep(8)  # the UI loads its definitions and lays out the graph
        await call("Runtime.evaluate", expression=SKIP_DIALOG)
        await asyncio.sleep(4)
        if scroll_to is not None:
            click = scroll_to.startswith("click:")
            text = scroll_to.removeprefix("click:")
            script = SCROLL_TO % (json.dumps(text), json.dumps(click))
            found = await call("Runtime.evaluate", expression=script, returnByValue=True)
            if not found.get("result", {}).get("value"):
                raise SystemExit(f"no element reads {scroll_to!r} on {url}")
            await asyncio.sleep(2)
        return base64.b64decode((await call("Page.captureScreenshot", format="png"))["data"])


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    scroll_to = sys.argv[3] if len(sys.argv) > 3 else None
    browser = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={PORT}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with open(out, "wb") as png:
            png.write(asyncio.run(_capture(url, scroll_to)))
    finally:
        browser.terminate()
        browser.wait(10)


if __name__ == "__main__":
    main()
