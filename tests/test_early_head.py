"""The studio's early <head> lines reach the page before gradio's scripts, and nothing else the server sends changes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from studio.ui.app import ASSETS
from studio.ui.early_head import EarlyHead

PAGE = "<!doctype html><html><head><script type=module src=./assets/index.js></script></head><body><head></body></html>"


def _client() -> TestClient:
    async def page(request):
        return HTMLResponse(PAGE)

    async def stream(request):
        async def events():
            for i in range(3):
                yield f"data: <head>{i}\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/", page), Route("/queue/data", stream), Route("/other", page)],
                    middleware=[Middleware(EarlyHead, html=ASSETS / "early_head.html")])
    return TestClient(app)


def test_the_page_gets_the_early_lines_first_in_its_head_and_nothing_else_changes():
    client, early = _client(), (ASSETS / "early_head.html").read_text()
    page = client.get("/")
    assert page.text.startswith("<!doctype html><html><head>\n" + early + "<script type=module")
    assert page.text.count(early) == 1 and int(page.headers["content-length"]) == len(page.content)
    assert client.get("/other").text == PAGE  # only the page itself
    assert client.get("/queue/data").text == "data: <head>0\n\ndata: <head>1\n\ndata: <head>2\n\n"
    assert client.head("/").status_code in (200, 405)  # a HEAD request is passed through as it came
