"""Assemble the studio's tabs into one Gradio app and launch it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import gradio as gr

from studio.jobs import JobManager
from studio.ui import blend_tab, dataset_tab, generate_tab, train_tab
from studio.ui.session import Sessions
from studio.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MAX_UPLOAD = "200mb"  # one upload request; a zip of 300 paintings fits


def build_app(ws: Workspace, jobs: JobManager, *, dev: bool = False, multi_user: bool = False,
              on_new_workspace: Callable[[Workspace], None] | None = None) -> gr.Blocks:
    """The studio's page. With `multi_user`, every browser (or logged-in user) works in its own workspace under `ws`."""
    sessions = Sessions(ws, jobs, multi_user=multi_user, on_new_workspace=on_new_workspace)
    with gr.Blocks(title="ArtGAN Studio", analytics_enabled=False) as demo:
        gr.Markdown("# ArtGAN Studio\nMake art with GANs from a small dataset: curate, fine-tune, generate, blend."
                    + ("\n\n*Shared studio: your datasets and runs are yours alone, kept for this browser.*" if multi_user else ""),
                    elem_id="studio-header")
        sessions.render(demo)
        train_form = train_tab.browser_state()
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                dataset_tab.render(sessions)
            with gr.Tab("Train", id="train"):
                train_tab.render(sessions, train_form, dev=dev)
            with gr.Tab("Generate", id="generate"):
                generate_tab.render(sessions, dev=dev)
            with gr.Tab("Blend", id="blend"):
                blend_tab.render(sessions, dev=dev)
    return demo


def launch(demo: gr.Blocks, ws: Workspace, *, host: str, port: int, share: bool, multi_user: bool = False) -> None:
    demo.queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, share=share, allowed_paths=served_paths(ws, multi_user),
        max_file_size=MAX_UPLOAD, css_paths=[ASSETS / "studio.css"], theme=gr.themes.Soft(),
    )


def served_paths(ws: Workspace, multi_user: bool) -> list[str]:
    """Folders anyone may fetch a file from by its path. Gradio copies what a page shows into its cache, which it
    may do from the working or temp directory without being allowed to serve them; so a shared studio whose
    workspace lies there serves no folder at all. Elsewhere (a Space's /data) the workspace must be allowed, and
    the users' unguessable folder names are what keeps one from another's files."""
    if multi_user and any(ws.root.is_relative_to(Path(d).resolve()) for d in (os.getcwd(), tempfile.gettempdir())):
        return []
    return [str(ws.root)]
