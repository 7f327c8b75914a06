"""Screenshots of the built site as a reader sees it, with headless Chromium.

    mkdocs build --strict && python docs/scripts/screenshots.py [--site site] [--chromium chromium]

Serves the built site on localhost, opens each page in headless Chromium (driven over its
DevTools pipe, so that a page can be captured from a heading down), and writes
``docs/screenshots/{home,families,api-spatial-transformer}.png`` (1280 pixels wide). Nothing is
fetched from the network: the pages' web fonts, which the browser would load from Google, fall back
to the system's.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
WIDTH = 1280

# (file, page, element id to start at or None for the top, height in pixels)
SHOTS = [
    ("home.png", "", None, 900),
    ("families.png", "families/", "the-papers-families", 1300),
    ("api-spatial-transformer.png", "api/layers/", "stn.layers.SpatialTransformer", 1900),
]

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class DevTools:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (JSON messages ending in NUL)."""

    def __init__(self, chromium: str) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self._profile = tempfile.mkdtemp(prefix="stn-shots-")

        def wire() -> None:  # the child reads commands on fd 3 and writes replies on fd 4
            high_r, high_w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self._proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            preexec_fn=wire,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, session: str | None = None, **params: object) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events):
                self.events.clear()
                return
            self.events.append(self._read())
        raise TimeoutError(event)

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self._profile, ignore_errors=True)


def capture(tools: DevTools, url: str, element: str | None, height: int, path: Path) -> None:
    target = tools.send("Target.createTarget", url="about:blank")["targetId"]
    session = tools.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    tools.send("Page.enable", session)
    tools.send(
        "Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=height, deviceScaleFactor=1, mobile=False
    )
    tools.send("Page.navigate", session, url=url)
    tools.wait_for("Page.loadEventFired")
    top = 0.0
    if element is not None:
        script = f"document.getElementById({json.dumps(element)}).getBoundingClientRect().top + window.scrollY - 16"
        top = tools.send("Runtime.evaluate", session, expression=script, returnByValue=True)["result"]["value"]
    # Every picture loaded (lazy ones too) before the capture.
    tools.send(
        "Runtime.evaluate",
        session,
        expression="Promise.all([...document.images].map(i => { i.loading = 'eager'; "
        "return i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; }); }))",
        awaitPromise=True,
    )
    clip = {"x": 0, "y": max(0.0, top), "width": WIDTH, "height": height, "scale": 1}
    shot = tools.send("Page.captureScreenshot", session, format="png", clip=clip, captureBeyondViewport=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    tools.send("Target.closeTarget", targetId=target)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # no line per request
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default=str(ROOT / "site"), help="the built site (mkdocs build)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    site = Path(args.site)
    if not (site / "index.html").is_file():
        raise SystemExit(f"no built site at {site}: run mkdocs build --strict first")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    tools = DevTools(args.chromium)
    try:
        OUT.mkdir(parents=True, exist_ok=True)
        for file, page, element, height in SHOTS:
            capture(tools, base + page, element, height, OUT / file)
            print(f"wrote {(OUT / file).relative_to(ROOT)}")
    finally:
        tools.close()
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
