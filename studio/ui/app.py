"""Assemble the studio's tabs into one Gradio app and launch it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.jobs import JobManager
from studio.ui import blend_tab, dataset_tab, generate_tab, train_tab
from studio.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MAX_UPLOAD = "200mb"  # one upload request; a zip of 300 paintings fits


def build_app(ws: Workspace, jobs: JobManager, *, dev: bool = False) -> gr.Blocks:
    with gr.Blocks(title="ArtGAN Studio", analytics_enabled=False) as demo:
        gr.Markdown("# ArtGAN Studio\nMake art with GANs from a small dataset: curate, fine-tune, generate, blend.",
                    elem_id="studio-header")
        train_form = train_tab.browser_state()
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                dataset_tab.render(ws, demo)
            with gr.Tab("Train", id="train"):
                train_tab.render(ws, demo, jobs, train_form, dev=dev)
            with gr.Tab("Generate", id="generate"):
                generate_tab.render(ws, demo, dev=dev)
            with gr.Tab("Blend", id="blend"):
                blend_tab.render(ws, demo, jobs, dev=dev)
    return demo


def launch(demo: gr.Blocks, ws: Workspace, *, host: str, port: int, share: bool) -> None:
    demo.queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, share=share, allowed_paths=[str(ws.root)],
        max_file_size=MAX_UPLOAD, css_paths=[ASSETS / "studio.css"], theme=gr.themes.Soft(),
    )
