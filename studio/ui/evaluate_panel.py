"""The Generate tab's Evaluate panel: a run's report card, its most copy-like samples, and its metrics over time."""

from __future__ import annotations

import gradio as gr

from studio import zerogpu
from studio.errors import UserError
from studio.evaluate import evaluate_history, evaluate_run, report_lines
from studio.models.features import feature_status
from studio.ui.common import GPU_EVENT, on_gpu, refusing
from studio.ui.live import loss_frame
from studio.ui.session import Sessions

FEATURE_TITLES = {"clip": "CLIP ViT-B-32", "inception": "Inception-v3 (as in the literature)",
                  "judge": "Judge trained on the dataset"}


def feature_choices(dev: bool) -> tuple[list[tuple[str, str]], str]:
    """(label, name) of the feature networks with where each comes from, and the default: the first of CLIP and
    Inception whose weights are here, else the dataset-trained judge, which needs no weights."""
    statuses = {name: feature_status(name) for name in FEATURE_TITLES}
    present = [n for n in ("clip", "inception") if statuses[n].startswith("found")]
    short = {n: "not available offline (Evaluate says where to put it)" if s.startswith("not available") else s
             for n, s in statuses.items()}
    choices = [(f"{title}: {short[n]}", n) for n, title in FEATURE_TITLES.items()]
    return choices + ([("tiny: random features (developer)", "tiny")] if dev else []), (present or ["judge"])[0]


def _run_name(source: str | None) -> str:
    if not source or not source.startswith("run:"):
        raise UserError("Evaluate needs a trained run: pick one under 'Generate from'.")
    return source.split(":", 1)[1]


def report_markdown(report: dict) -> str:
    lines = report_lines(report)
    body = "\n".join(f"- **{lines[i]}**  \n  {lines[i + 1]}" for i in range(0, len(lines) - 1, 2))
    return (f"**{report['run']}** at step {report['step']}, {report['n_samples']} samples vs dataset "
            f"*{report['dataset']}*, features `{report['features']}`, {report['seconds']} s\n\n{body}")


def render(sessions: Sessions, source: gr.Dropdown, *, dev: bool = False) -> None:
    """Build the panel in the current Blocks context; `source` is the Generate tab's run picker."""
    from studio.train import resolve_device

    with gr.Accordion("Evaluate: is it art, is it diverse, or did it memorise the dataset?", open=False):
        with gr.Row():
            choices, default = feature_choices(dev)
            features = gr.Dropdown(choices, value=default, label="Feature network",
                                   elem_id="evaluate-features", info="Compare runs measured with the same one.")
            n = gr.Slider(20, 400, value=200, step=10, label="Samples", elem_id="evaluate-n")
            seed = gr.Number(0, precision=0, minimum=0, label="Seed")
        with gr.Row():
            button = gr.Button("Evaluate", variant="primary", elem_id="evaluate-button")
            history_btn = gr.Button("Over the saved checkpoints", elem_id="evaluate-history-button")
        card = gr.Markdown(elem_id="evaluate-card")
        gallery = gr.Gallery(label="Most copy-like samples: generated | nearest training image (worst first)", columns=4,
                             height=260, object_fit="contain", elem_id="evaluate-gallery", elem_classes=["pixel-art-thumbs"])
        with gr.Row():  # two charts: KID's scale would flatten the fractions
            kid_plot = gr.LinePlot(x="step", y="value", color="term", title="KID ×10³ over training", height=240,
                                   buttons=["fullscreen", "export"], elem_id="evaluate-history")
            share_plot = gr.LinePlot(x="step", y="value", color="term", title="Memorised, diversity, fidelity",
                                     height=240, buttons=["fullscreen", "export"], elem_id="evaluate-history-shares")

    @refusing(2)  # a refusal is said in the card; nothing turns into an Error box
    def on_evaluate(src, feats, count, seed_v, request: gr.Request):
        report = evaluate_run(sessions.workspace(request), _run_name(src), n=int(count), seed=int(seed_v or 0), features=feats,
                              device=resolve_device("auto"))
        pairs = [(item["image"], f"{'copy? ' if item['memorised'] else ''}×{item['ratio']:.2f} of the threshold")
                 for item in report["memorisation"]["gallery"]]
        return report_markdown(report), pairs

    button.click(on_gpu(on_evaluate, zerogpu.call_limit_s()), [source, features, n, seed], [card, gallery], **GPU_EVENT)

    @refusing(3, note=2)
    def on_history(src, feats, seed_v, request: gr.Request):
        rows = evaluate_history(sessions.workspace(request), _run_name(src), n=60, seed=int(seed_v or 0), features=feats, device=resolve_device("auto"))
        return (loss_frame([{"step": r["step"], "kid_x1000": r["kid_x1000"]} for r in rows]),
                loss_frame([{k: v for k, v in r.items() if k != "kid_x1000"} for r in rows]), gr.update())

    history_btn.click(on_gpu(on_history, zerogpu.call_limit_s()), [source, features, seed],
                      [kid_plot, share_plot, card], **GPU_EVENT)
