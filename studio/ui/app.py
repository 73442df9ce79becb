"""Assemble the studio's tabs into one Gradio app and launch it."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.ui import dataset_tab
from studio.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MAX_UPLOAD = "200mb"  # one upload request; a zip of 300 paintings fits


def build_app(ws: Workspace) -> gr.Blocks:
    with gr.Blocks(title="ArtGAN Studio", analytics_enabled=False) as demo:
        gr.Markdown("# ArtGAN Studio\nMake art with GANs from a small dataset: curate, fine-tune, generate, blend.",
                    elem_id="studio-header")
        with gr.Tabs():
            with gr.Tab("Dataset", id="dataset"):
                dataset_tab.render(ws, demo)
            with gr.Tab("Train", id="train"):
                _coming("Training (BSA fine-tuning of BigGAN-deep, class-conditional GAN) is coming next.")
            with gr.Tab("Generate", id="generate"):
                _coming("Generating by art-movement class from a trained run is coming.")
            with gr.Tab("Blend", id="blend"):
                _coming("Blending two fine-tuned domains with CLIP prompts is coming.")
    return demo


def _coming(text: str) -> None:
    gr.Markdown(f"**Coming soon.** {text} Meanwhile, build your dataset in the Dataset tab.")


def launch(demo: gr.Blocks, ws: Workspace, *, host: str, port: int, share: bool) -> None:
    demo.queue(default_concurrency_limit=2).launch(
        server_name=host, server_port=port, share=share, allowed_paths=[str(ws.root)],
        max_file_size=MAX_UPLOAD, css_paths=[ASSETS / "studio.css"], theme=gr.themes.Soft(),
    )
