"""Assemble the studio's tabs into one Gradio app and launch it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import gradio as gr
from starlette.middleware import Middleware

from studio.data import limits
from studio.data.dataset import create_demo_dataset
from studio.errors import UserError
from studio.jobs import JobManager
from studio.ui import blend_tab, dataset_tab, generate_tab, train_tab
from studio.ui.early_head import EarlyHead
from studio.ui.session import PRIVATE, Sessions, private_dir
from studio.workspace import USERS, Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets"
MAX_UPLOAD = "200mb"  # one upload request; a zip of 300 paintings fits
START_HERE = ("**Start here:** the **Train** tab is filled in for the demo dataset: press **Start training** and "
              "watch the first previews appear. Bring your own paintings in **Dataset**, then train on them.")


def build_app(ws: Workspace, jobs: JobManager, *, dev: bool = False, multi_user: bool = False,
              on_new_workspace: Callable[[Workspace], None] | None = None, trust_forwarded: bool = False) -> gr.Blocks:
    """The studio's page. With `multi_user`, every browser (or logged-in user) works in its own workspace under `ws`;
    `trust_forwarded`: the app is behind a proxy (a Space's) whose X-Forwarded-For names the visitor's address."""
    sessions = Sessions(ws, jobs, multi_user=multi_user, on_new_workspace=on_new_workspace, trust_forwarded=trust_forwarded)
    sessions.keep_clean()
    with gr.Blocks(title="ArtGAN Studio", analytics_enabled=False) as demo:
        gr.Markdown("# ArtGAN Studio\nMake art with GANs from a small dataset: curate, fine-tune, generate, blend.\n\n"
                    + START_HERE
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


def first_visit(ws: Workspace) -> None:
    """A new workspace starts with the demo dataset, something to train on at once, offline, if its quota has room."""
    try:
        limits.check_room(ws, limits.demo_bytes(120, 256), "the demo dataset")
    except UserError as exc:  # a shared studio's quota smaller than the demo: the workspace starts empty
        print(f"New workspace {ws.root}: no demo dataset. {exc}", flush=True)
        return
    print(f"New workspace {ws.root}: creating the demo dataset (120 generated paintings in 3 classes)…", flush=True)
    create_demo_dataset(ws, "demo")


def launch(demo: gr.Blocks, ws: Workspace, *, host: str, port: int, share: bool, multi_user: bool = False) -> None:
    if multi_user:
        cache_from(ws)
    quiet_when_idle(demo.queue(default_concurrency_limit=2))
    demo.launch(
        server_name=host, server_port=port, share=share, allowed_paths=served_paths(ws, multi_user),
        blocked_paths=blocked_paths(ws), max_file_size=MAX_UPLOAD, css_paths=[ASSETS / "studio.css"], theme=gr.themes.Soft(),
        app_kwargs={"middleware": [Middleware(EarlyHead, html=ASSETS / "early_head.html")]},
    )


def quiet_when_idle(demo: gr.Blocks) -> None:
    """Gradio's queue looks for new events every millisecond while it has none (on Linux; 50 ms on Windows), and for
    progress to send every 10 ms: a tenth of a core for an app nobody uses. Every 20 ms and 100 ms: an event starts
    at most 20 ms later, and a progress bar moves ten times a second. Private attributes (gradio 6), hence the guard."""
    queue = getattr(demo, "_queue", None)
    if hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free"):
        queue.sleep_when_free, queue.progress_update_sleep_when_free = 0.02, 0.1


def served_paths(ws: Workspace, multi_user: bool) -> list[str]:
    """Folders anyone may fetch a file from by its path: your own workspace on your own machine; none in a shared
    studio, which serves only the copies gradio makes in its cache of what a handler gave a page (see cache_from)."""
    return [] if multi_user else [str(ws.root)]


def blocked_paths(ws: Workspace) -> list[str]:
    """Never served, whatever allowed_paths (or GRADIO_ALLOWED_PATHS) says: the server's private folder (its secret)
    and the visitors' folders of a shared studio, in either mode (a workspace may be shared, then opened alone)."""
    extra = [p.strip() for p in os.environ.get("GRADIO_BLOCKED_PATHS", "").split(",") if p.strip()]
    return [str(private_dir(ws)), str(ws.root / USERS), *extra]


_cache_roots: set[Path] = set()


def cache_from(ws: Workspace) -> None:
    """Let gradio copy into its cache the files a handler returns from `ws` (a visitor's gallery, previews, results).

    Gradio 6 copies a returned file into its cache, from where the page fetches it by an unguessable name, only if the
    file is under the working or temp directory or an allowed path, and allowed paths are served to anyone by path
    too. A shared studio allows no path and blocks the visitors' folders from being served, so this widens only the
    copy check (`gradio.processing_utils._check_allowed`) to the workspace, less its private folder. Files a
    visitor uploads are still checked by gradio alone, and should gradio stop calling this check, the files are refused
    (not served): the shared studio's test shows its gallery, so it would fail."""
    from gradio import processing_utils, utils

    _cache_roots.add(ws.root)
    check = processing_utils._check_allowed
    if getattr(check, "studio_cache_from", False):
        return

    def checked(path, check_in_upload_folder: bool):
        if not check_in_upload_folder and any(utils.is_in_or_equal(path, root) and not utils.is_in_or_equal(path, root / PRIVATE)
                                              for root in _cache_roots):
            return
        check(path, check_in_upload_folder)

    checked.studio_cache_from = True
    processing_utils._check_allowed = checked
