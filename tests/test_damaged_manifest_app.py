"""A workspace with a damaged dataset manifest still starts the app; the Train form offers the good datasets only."""

from __future__ import annotations

import json
import urllib.request

from conftest import running_app
from studio.data.dataset import create_demo_dataset
from studio.workspace import Workspace


def test_the_app_starts_on_a_workspace_with_a_damaged_manifest(tmp_path):
    ws = Workspace.resolve(tmp_path / "ws")
    create_demo_dataset(ws, "good", per_class=1, size=64)
    (ws.datasets / "bad").mkdir()
    (ws.datasets / "bad" / "dataset.json").write_text('{"images": 5}')
    with running_app(ws.root) as (url, _):
        config = json.loads(urllib.request.urlopen(f"{url}/config", timeout=10).read())
    dropdown = next(c["props"] for c in config["components"] if c.get("props", {}).get("elem_id") == "train-dataset")
    assert [value for _, value in dropdown["choices"]] == ["good"] and dropdown["value"] == "good"
