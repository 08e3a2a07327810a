"""A headless Chromium driven over the DevTools protocol: open a page, wait until it shows something,
click, take a PNG. Just what `scripts/ui_screenshots.py` needs; no browser-automation package.

The browser runs with a fresh profile (`--user-data-dir` in a temporary folder), no sandbox (root in a
container), no GPU and no background network traffic (no updates, sync or first-run pages), and
listens for DevTools on a port it picks itself (`--remote-debugging-port=0`, read back from
`DevToolsActivePort`). The websocket is aiohttp's (a dependency of MLflow).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


class Browser:
    """`async with Browser(width, height) as page:` — one tab of a fresh headless Chromium."""

    def __init__(self, width: int = 1280, height: int = 800, executable: str | None = None) -> None:
        self.width, self.height = width, height
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise FileNotFoundError(f"no Chromium found on PATH (tried {', '.join(CANDIDATES)}); "
                                    "install one, e.g. `apt-get install chromium`")
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        cmd = [self.executable, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-port=0",
               f"--window-size={self.width},{self.height}", "about:blank"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port = await self._devtools_port(Path(self._profile.name) / "DevToolsActivePort")
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [t for t in await response.json() if t["type"] == "page"]
        self._ws = await self._http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        await self.send("Page.enable")
        await self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                        deviceScaleFactor=1, mobile=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._ws.close()
        await self._http.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._profile.cleanup()

    async def _devtools_port(self, path: Path, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{self.executable} exited with code {self._proc.returncode} at start")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.executable} did not open its DevTools port within {timeout_s:.0f} s")

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result (events that arrive meanwhile are dropped)."""
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self._ws.receive()).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error in {expression[:80]!r}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = "") -> None:
        """Poll a JavaScript condition until it is true; TimeoutError naming `what` otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if await self.evaluate(expression):
                    return
            except RuntimeError:  # the page is between documents
                pass
            await asyncio.sleep(0.25)
        raise TimeoutError(f"the page did not show {what or expression!r} within {timeout_s:.0f} s")

    async def wait_for_text(self, text: str, timeout_s: float = 60.0) -> None:
        await self.wait_for(f"document.body && document.body.innerText.includes({json.dumps(text)})", timeout_s, text)

    async def click_text(self, text: str, selector: str = "button, [role=tab], [role=button], a, span") -> bool:
        """Click the innermost element matching `selector` whose text is exactly `text`; False if none."""
        return bool(await self.evaluate(
            f"(() => {{ const els = [...document.querySelectorAll({json.dumps(selector)})]"
            f".filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)});"
            " if (!els.length) return false; els[els.length - 1].click(); return true; })()"))

    async def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """Press the left mouse button at `start`, move to `end`, release (e.g. to widen a table column)."""
        (x0, y0), (x1, y1) = start, end
        await self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
        await self.send("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", clickCount=1)
        for i in range(1, steps + 1):
            await self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + (x1 - x0) * i / steps,
                            y=y0 + (y1 - y0) * i / steps, button="left", buttons=1)
        await self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", clickCount=1)

    async def wheel(self, x: float, y: float, delta_y: float) -> None:
        """Turn the mouse wheel at (x, y): scrolls whatever is under it, a cross-origin frame included."""
        await self.send("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0, deltaY=delta_y)

    async def press_escape(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)

    async def screenshot(self, path: Path, height: float | None = None) -> Path:
        """A PNG of the viewport; with `height`, only its top `height` pixels (no empty space below a table)."""
        clip = {"clip": {"x": 0, "y": 0, "width": self.width, "height": min(height, self.height), "scale": 1}} if (
            height) else {}
        data = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False, **clip)
        path.write_bytes(base64.b64decode(data["data"]))
        return path
