"""Our own lines at the top of the page's <head>, where they run before gradio's scripts.

`launch(head=...)` adds its lines only once the app's config has loaded, after gradio's modules have read what they
use from `window`; the studio's page fix (assets/early_head.html) has to come first. A plain ASGI middleware: it
reads the page itself (a GET of the root, as HTML) and passes every other request through untouched (SSE included).
"""

from __future__ import annotations

from pathlib import Path


class EarlyHead:
    def __init__(self, app, html: Path) -> None:
        self.app, self.html = app, html.read_bytes()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/":
            return await self.app(scope, receive, send)
        start: dict = {}
        body: list[bytes] = []

        async def send_with_head(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                return await send(message)
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = b"".join(body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                page = page.replace(b"<head>", b"<head>\n" + self.html, 1)
            await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, send_with_head)
