"""The Generate tab: class × seed grids from a run or the base BigGAN, latent walks as GIFs, base vs fine-tuned.

`GenerateTab` holds the handlers (plain methods over `studio.generate`, so tests call them directly) and the
tab's own sampler cache; `render` lays out the components and wires them to it.
"""

from __future__ import annotations

import gradio as gr

from studio.data.augment import image_grid, to_pil
from studio.errors import UserError
from studio.generate import (BASE, MAX_FRAMES, MAX_PER_CLASS, SamplerCache, SourceInfo, compare_with_base, generate_grid,
                             imagenet_classes, interpolate, list_sources, source_info)
from studio.ui import evaluate_panel
from studio.ui.common import GPU_EVENT, as_text, on_gpu, refusing, user_errors
from studio.ui.session import Sessions

BETWEEN = {"Two seeds": "seeds", "Two training images (BSA)": "images"}


def opening_source(choices: list[tuple[str, str]]) -> str | None:
    """The newest trained run (list_sources puts runs first, newest first), else the first base model here."""
    values = [v for _, v in choices]
    runs = [v for v in values if not v.startswith(BASE)]
    ready = [v for label, v in choices if v.startswith(BASE) and label.endswith("· ready")]
    return next(iter(runs + ready + values), None)


def _whole(value: float | None, what: str) -> int:
    if value is None:
        raise UserError(f"Type a number for {what} first.")
    return int(value)


def _describe(info: SourceInfo) -> str:
    if info.method == "biggan":
        return f"**Base {info.name}**, by ImageNet class: {as_text(info.status)}."
    return (f"**{info.name}**: {info.method.upper()} at step {info.step}, {len(info.classes)} classes "
            f"({', '.join(info.classes)}).")


class GenerateTab:
    """The tab's handlers; each returns what its outputs show."""

    def __init__(self, sessions: Sessions, *, dev: bool = False, cache: SamplerCache | None = None):
        self.sessions, self.dev = sessions, dev
        self.cache = cache or SamplerCache()  # keyed by run folder, so users of a shared studio never share an entry

    @user_errors
    def sources(self, current: str | None = None, request: gr.Request = None):
        """The picker's choices, keeping `current` if it is still there."""
        choices = list_sources(self.sessions.workspace(request), dev=self.dev)
        values = [value for _, value in choices]
        return gr.update(choices=choices, value=current if current in values else opening_source(choices))

    @user_errors
    def on_open(self, current: str | None = None, request: gr.Request = None):
        """On page load: the picked run if it is still there, else the newest trained run (not the base model)."""
        choices = list_sources(self.sessions.workspace(request), dev=self.dev)
        keep = current in [v for _, v in choices] and not current.startswith(BASE)
        return gr.update(choices=choices, value=current if keep else opening_source(choices))

    def on_source(self, source: str | None, request: gr.Request = None):
        """Classes, truncation and the sections' class pickers for the chosen source (no weights are loaded)."""
        try:
            info = source_info(self.sessions.workspace(request), source)
        except UserError as exc:
            return (as_text(str(exc)), gr.update(choices=[], value=[]), gr.update(), gr.update(choices=[], value=None),
                    gr.update(choices=[], value=None), gr.update(), "", gr.update(interactive=False))
        classes = list(info.classes)
        compare_note = "" if "compare" in info.can else "Side by side with the base BigGAN needs a BSA run."
        # A fresh update per output: Gradio consumes the dicts it is given.
        return (_describe(info), gr.update(choices=classes, value=classes if info.method != "biggan" else classes[:1]),
                gr.update(value=info.truncation, maximum=1.0 if info.method == "biggan" else 2.0),
                gr.update(choices=classes, value=classes[0]),
                gr.update(choices=classes, value=classes[0]),
                gr.update(value=imagenet_classes()[info.class_init or 0]), compare_note,
                gr.update(interactive="compare" in info.can))

    @refusing(5, note=4)  # a refusal is said in the status line; the grid shown stays (no Error boxes)
    def on_generate(self, source, classes, seed, n, truncation, request: gr.Request = None):
        ws = self.sessions.workspace(request)
        loaded = self.cache.get(ws, source)
        seed = _whole(seed, "the seed")
        result = generate_grid(ws, loaded, classes, n=int(n), seed=seed, truncation=float(truncation))
        gallery = [(to_pil(img), caption) for img, caption in zip(result.images, result.captions)]
        status = (f"{len(result.images)} images from **{loaded.info.tag}**, seed {seed}: one row per class "
                  f"({', '.join(result.classes)}), the same latents in every row.")
        return (str(result.grid_path), gallery, gr.update(value=str(result.grid_path), visible=True),
                gr.update(value=str(result.zip_path), visible=True), status)

    def on_between(self, between):
        if BETWEEN.get(between) == "images":
            return (gr.update(label="From training image", value=0), gr.update(label="To training image", value=1),
                    gr.update(interactive=False))
        return gr.update(label="From seed"), gr.update(label="To seed"), gr.update(interactive=True)

    @refusing(3, note=2)
    def on_interpolate(self, source, between, a, b, label, frames, truncation, request: gr.Request = None):
        between = BETWEEN.get(between, between)
        what = "training images" if between == "images" else "seeds"
        a, b = _whole(a, f"the first of the two {what}"), _whole(b, f"the second of the two {what}")
        ws = self.sessions.workspace(request)
        loaded = self.cache.get(ws, source)
        result = interpolate(ws, loaded, between=between, a=a, b=b, frames=int(frames), label=label,
                             truncation=float(truncation))
        status = f"{len(result.frames)} frames between {what} {a} and {b}, played forward and back."
        return str(result.gif_path), gr.update(value=str(result.gif_path), visible=True), status

    @refusing(3, note=2)
    def on_compare(self, source, imagenet, label, seed, n, truncation, request: gr.Request = None):
        seed = _whole(seed, "the seed")
        loaded = self.cache.get(self.sessions.workspace(request), source)
        base, tuned = compare_with_base(loaded, imagenet_class=imagenet, label=label, n=int(n), seed=seed,
                                        truncation=float(truncation))
        imagenet = imagenet or imagenet_classes()[loaded.info.class_init or 0]
        status = (f"The same {len(base)} latents (seed {seed}): the base as ImageNet **{imagenet}**, "
                  f"the fine-tuned model as **{label or loaded.info.classes[0]}**.")
        return image_grid(base, nrow=len(base)), image_grid(tuned, nrow=len(tuned)), status


def render(sessions: Sessions, *, dev: bool = False) -> None:
    """Build the tab's components in the current Blocks context and wire their events (sources are filled on load)."""
    tab = GenerateTab(sessions, dev=dev)
    imagenet = list(imagenet_classes())
    with gr.Row(equal_height=True):
        built = list_sources(sessions.at_build().ws, dev=dev)
        source = gr.Dropdown(built, value=opening_source(built), label="Generate from", scale=4, elem_id="generate-source",
                             info="A trained run (BSA or cGAN), or the pretrained BigGAN by ImageNet class.")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="generate-refresh")
    source_md = gr.Markdown(elem_id="generate-source-info")
    classes = gr.Dropdown([], multiselect=True, label="Classes", elem_id="generate-classes",
                          info="One row of the grid per class; type to search.")
    with gr.Row():
        seed = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id="generate-seed",
                         info="Same seed, same images.")
        n = gr.Slider(1, MAX_PER_CLASS, value=4, step=1, label="Images per class", elem_id="generate-n")
        truncation = gr.Slider(0.05, 2.0, value=0.5, step=0.05, label="Truncation", elem_id="generate-truncation",
                               info="Lower: safer, more alike; higher: more varied, more odd.")
    button = gr.Button("Generate", variant="primary", elem_id="generate-button")
    status = gr.Markdown(elem_id="generate-status")
    grid = gr.Image(label="Class × seed grid", type="filepath", interactive=False, height=460, elem_id="generate-grid", elem_classes=["pixel-art"])
    gallery = gr.Gallery(label="Images", columns=8, height=320, format="png", elem_id="generate-gallery",
                         elem_classes=["pixel-art-thumbs"])
    with gr.Row():
        download_grid = gr.DownloadButton("Download the grid (PNG)", visible=False, elem_id="generate-download-grid")
        download_zip = gr.DownloadButton("Download every image (zip)", visible=False, elem_id="generate-download-zip")

    with gr.Accordion("Interpolation", open=False):
        with gr.Row():
            between = gr.Radio(list(BETWEEN), value="Two seeds", label="Between", elem_id="generate-interp-between",
                               info="Training images: a BSA run's learned latents, numbered from 0.")
            interp_class = gr.Dropdown([], label="Class", elem_id="generate-interp-class",
                                       info="For seeds; training images keep their own.")
        with gr.Row():
            a = gr.Number(0, precision=0, minimum=0, label="From seed", elem_id="generate-interp-a")
            b = gr.Number(1, precision=0, minimum=0, label="To seed", elem_id="generate-interp-b")
            frames = gr.Slider(2, MAX_FRAMES, value=16, step=1, label="Frames", elem_id="generate-interp-frames")
        interp_button = gr.Button("Make the GIF", elem_id="generate-interp-button")
        interp_status = gr.Markdown(elem_id="generate-interp-status")
        gif = gr.Image(label="Animation", type="filepath", interactive=False, height=320, elem_id="generate-interp-gif", elem_classes=["pixel-art"])
        download_gif = gr.DownloadButton("Download the GIF", visible=False, elem_id="generate-interp-download")

    with gr.Accordion("Base BigGAN vs fine-tuned (BSA)", open=False):
        with gr.Row():
            compare_imagenet = gr.Dropdown(imagenet, value=imagenet[0], label="Base model's ImageNet class",
                                           elem_id="generate-compare-imagenet",
                                           info="Default: the class the run's embedding started from.")
            compare_class = gr.Dropdown([], label="Fine-tuned class", elem_id="generate-compare-class")
        compare_button = gr.Button("Compare (same seed and latents as above)", elem_id="generate-compare-button")
        compare_status = gr.Markdown(elem_id="generate-compare-status")
        with gr.Row():
            compare_base = gr.Image(label="Base BigGAN", type="pil", interactive=False, height=280, elem_id="generate-compare-base", elem_classes=["pixel-art"])
            compare_tuned = gr.Image(label="Fine-tuned", type="pil", interactive=False, height=280, elem_id="generate-compare-tuned", elem_classes=["pixel-art"])

    evaluate_panel.render(sessions, source, dev=dev)

    source_outputs = [source_md, classes, truncation, interp_class, compare_class, compare_imagenet, compare_status,
                      compare_button]
    source.change(tab.on_source, [source], source_outputs)
    refresh.click(tab.sources, [source], [source]).then(tab.on_source, [source], source_outputs)
    sessions.on_load(tab.on_open, [source], [source]).then(tab.on_source, [source], source_outputs)
    button.click(on_gpu(tab.on_generate), [source, classes, seed, n, truncation],
                 [grid, gallery, download_grid, download_zip, status], **GPU_EVENT)
    between.change(tab.on_between, [between], [a, b, interp_class])
    interp_button.click(on_gpu(tab.on_interpolate), [source, between, a, b, interp_class, frames, truncation],
                        [gif, download_gif, interp_status], **GPU_EVENT)
    compare_button.click(on_gpu(tab.on_compare), [source, compare_imagenet, compare_class, seed, n, truncation],
                         [compare_base, compare_tuned, compare_status], **GPU_EVENT)
