"""The Generate tab: class × seed grids from a run or the base BigGAN, latent walks as GIFs, base vs fine-tuned;
sharing a run on the Hugging Face Hub and loading a shared one (studio.hub_share).

`GenerateTab` holds the handlers (plain methods over `studio.generate` and `studio.hub_share`, so tests call them
directly) and the tab's own sampler cache; `render` lays out the components and wires them to it.
"""

from __future__ import annotations

import os

import gradio as gr

from studio import hub_share
from studio.data.augment import image_grid, to_pil
from studio.errors import UserError
from studio.generate import (BASE, MAX_FRAMES, MAX_PER_CLASS, RUN, SamplerCache, SourceInfo, compare_with_base,
                             generate_grid, imagenet_classes, interpolate, list_sources, source_info)
from studio.models.reach import can_download, why_not
from studio.ui import evaluate_panel
from studio.ui.common import GPU_EVENT, as_text, on_gpu, refusing, user_errors
from studio.ui.session import Sessions

BETWEEN = {"Two seeds": "seeds", "Two training images (BSA)": "images"}


def on_space() -> bool:
    """A Hugging Face Space: pushes go only through the visitor's own login (OAuth), never the Space's token."""
    return bool(os.environ.get("SPACE_ID"))


def space_login() -> bool:
    """The Space has the Hub's login (hf_oauth: true in its README sets OAUTH_CLIENT_ID) and gradio[oauth] is installed
    (requirements.txt), so gr.LoginButton works; without them gradio would refuse to start the app with one."""
    from importlib.util import find_spec

    from gradio.utils import get_space  # gradio's own test: its real login routes need SYSTEM=spaces as well

    return (on_space() and get_space() is not None and bool(os.environ.get("OAUTH_CLIENT_ID"))
            and all(map(find_spec, ("authlib", "itsdangerous"))))


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

    # -- the Hub ------------------------------------------------------------------------------------------
    def _token(self, oauth_token: gr.OAuthToken | None, *, pushing: bool) -> str | bool | None:
        """Whose Hub account a request acts as: on a Space the visitor's login only (False: none, so a public repo);
        a shared studio elsewhere has no login of its visitors', so none; your own machine, your saved login."""
        if on_space():
            if oauth_token is not None:
                return oauth_token.token
            if not pushing:
                return False
            if not space_login():
                raise UserError("This Space has no Hugging Face login (its README needs hf_oauth: true, its requirements "
                                "gradio[oauth]), and the studio never pushes with the Space's own token.")
            raise UserError("Log in with Hugging Face first (the button above): the studio pushes to your own account, "
                            "never with the Space's token.")
        if self.sessions.multi_user:
            if not pushing:
                return False
            raise UserError("A shared studio pushes only through a Space's Hugging Face login, never with the server's "
                            "token: run the studio on your own machine (or on a Space) to push.")
        return None  # your own machine: your saved login (push_run asks for it)

    def on_share_card(self, source: str | None, repo: str | None, license: str | None,
                      profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        """The model card a push would upload, for the picked run, and whether Push can work here: (card, note, button).
        Offline (or a shared studio without the Hub's login) says so at once, before anyone fills anything in."""
        if not source or not source.startswith(RUN):
            return "", "Pick a trained run (BSA or cGAN) above to share it.", gr.update(interactive=False)
        try:
            card = hub_share.card_preview(self.sessions.workspace(request), source[len(RUN):], repo_id=(repo or "").strip(),
                                          license=license or "other")
        except UserError as exc:
            return "", as_text(str(exc)), gr.update(interactive=False)
        if not can_download():
            return card, as_text(f"Pushing needs the Hub, and {why_not()}: export instead (python -m studio hub export)."), \
                gr.update(interactive=False)
        if on_space():
            if not space_login():
                return card, ("This Space has no Hugging Face login (hf_oauth: true in its README), so it cannot push "
                              "for you."), gr.update(interactive=False)
            note = (f"Pushes as **{as_text(profile.username)}**, with your own Hugging Face login." if profile is not None
                    else "Log in with Hugging Face (the button above) to push to your own account.")
            return card, note, gr.update(interactive=True)
        if self.sessions.multi_user:
            return card, ("A shared studio pushes only through a Space's Hugging Face login, never with the server's "
                          "token."), gr.update(interactive=False)
        return card, "Pushes with this machine's Hugging Face login (hf auth login).", gr.update(interactive=True)

    @refusing(1)
    def on_push(self, source: str | None, repo: str | None, private: bool, license: str | None,
                oauth_token: gr.OAuthToken | None = None, request: gr.Request = None, progress=gr.Progress()):
        if not source or not source.startswith(RUN):
            raise UserError("Pick a trained run (BSA or cGAN) above to share it.")
        if not (repo or "").strip():
            raise UserError("Name the repo to push to, as your-name/model-name.")
        token = self._token(oauth_token, pushing=True)
        name = source[len(RUN):]
        # The card's grid is drawn on the CPU: a push is not a GPU call (on ZeroGPU there is no GPU outside one).
        pushed = hub_share.push_run(self.sessions.workspace(request), name, repo.strip(), token=token,
                                    private=bool(private), license=license or "other", device="cpu",
                                    progress=lambda fraction, text: progress(fraction, desc=text))
        return f"{as_text(pushed.sentence(name)[:-1])}: [{pushed.repo_id}]({pushed.url})."

    @refusing(2, note=1)
    def on_hub_load(self, text: str | None, oauth_token: gr.OAuthToken | None = None, request: gr.Request = None):
        """Bring a shared run into this visitor's workspace (a shared studio: from the Hub only) and pick it."""
        ws = self.sessions.workspace(request)
        pulled = hub_share.pull(ws, text or "", token=self._token(oauth_token, pushing=False),
                                allow_local=not self.sessions.multi_user)
        return (gr.update(choices=list_sources(ws, dev=self.dev), value=f"{RUN}{pulled.run}"),
                as_text(pulled.sentence()))

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
        hub_repo = gr.Textbox(label="Load from the Hub", scale=3, elem_id="hub-load-repo",
                              placeholder="user/model-name" if sessions.multi_user else "user/model-name, or a folder",
                              info="A run someone shared (cGAN or BSA): it becomes one of your runs.")
        hub_load = gr.Button("Load", size="sm", scale=0, min_width=100, elem_id="hub-load")
    hub_status = gr.Markdown(elem_id="hub-load-status")
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

    with gr.Accordion("Share on the Hub", open=False, elem_id="share-accordion"):
        gr.Markdown("Upload the picked run as a Hugging Face model repo: the generator's weights as safetensors "
                    "(BSA: the adapter only, with its base BigGAN named), `config.json`, a sample grid and the model "
                    "card below. Anyone can then load it with *Load from the Hub*.")
        if space_login():
            gr.LoginButton(elem_id="share-login")
        with gr.Row():
            share_repo = gr.Textbox(label="Repo", placeholder="your-name/model-name", scale=3, elem_id="share-repo")
            share_license = gr.Dropdown(list(hub_share.LICENSES), value="other", label="Licence", scale=1,
                                        elem_id="share-license", info="other: none chosen")
            share_private = gr.Checkbox(False, label="Private", scale=0, min_width=100, elem_id="share-private")
        share_push = gr.Button("Push to the Hub", variant="primary", elem_id="share-push")
        share_status = gr.Markdown(elem_id="share-status")
        share_card = gr.Markdown(elem_id="share-card", container=True, max_height=480)

    evaluate_panel.render(sessions, source, dev=dev)

    source_outputs = [source_md, classes, truncation, interp_class, compare_class, compare_imagenet, compare_status,
                      compare_button]
    share_inputs, share_outputs = [source, share_repo, share_license], [share_card, share_status, share_push]
    source.change(tab.on_source, [source], source_outputs).then(tab.on_share_card, share_inputs, share_outputs)
    refresh.click(tab.sources, [source], [source]).then(tab.on_source, [source], source_outputs)
    sessions.on_load(tab.on_open, [source], [source]).then(tab.on_source, [source], source_outputs) \
        .then(tab.on_share_card, share_inputs, share_outputs)
    for event in (share_repo.blur, share_repo.submit, share_license.change):
        event(tab.on_share_card, share_inputs, share_outputs, show_progress="hidden")
    share_push.click(tab.on_push, [source, share_repo, share_private, share_license], [share_status])
    for event in (hub_load.click, hub_repo.submit):
        event(tab.on_hub_load, [hub_repo], [source, hub_status])
    button.click(on_gpu(tab.on_generate), [source, classes, seed, n, truncation],
                 [grid, gallery, download_grid, download_zip, status], **GPU_EVENT)
    between.change(tab.on_between, [between], [a, b, interp_class])
    interp_button.click(on_gpu(tab.on_interpolate), [source, between, a, b, interp_class, frames, truncation],
                        [gif, download_gif, interp_status], **GPU_EVENT)
    compare_button.click(on_gpu(tab.on_compare), [source, compare_imagenet, compare_class, seed, n, truncation],
                         [compare_base, compare_tuned, compare_status], **GPU_EVENT)
