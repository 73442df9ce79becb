"""What a first-time user meets, handler by handler: curves with the run's own terms, a view for dwarfed terms, an
Evaluate that works offline, Generate opening on a trained run, a readable import report (the browser checks the rest)."""

from __future__ import annotations

import pytest

from studio.data.dataset import ImportReport, create_demo_dataset
from studio.methods.cgan import CGANConfig
from studio.train import LoopConfig, run_training
from studio.ui import dataset_tab, evaluate_panel, live
from studio.ui.generate_tab import opening_source

CGAN_ROWS = [{"step": s, "time": 0.1 * s, "d_loss": 1.3 - 0.01 * s, "g_loss": 0.7 + 0.01 * s} for s in range(10)]
BSA_ROWS = [{"step": s, "time": 0.1 * s, "l1": 0.3 - 0.01 * s, "perceptual": 0.8, "emd": 40.0 - s} for s in range(10)]


def test_each_run_brings_its_own_terms_and_a_new_spec():
    cgan, bsa = live.loss_frame(CGAN_ROWS), live.loss_frame(BSA_ROWS)
    assert live.plot_key(live.loss_frame([])) is None  # nothing to draw: the plot is left empty, not given an empty table
    assert live.plot_key(cgan) == (False, ("d_loss", "g_loss")) and live.plot_key(bsa)[1] == ("l1", "perceptual", "emd")
    update = live.plot_update(cgan)
    assert set(update["color_map"]) == {"d_loss", "g_loss"} and list(update["value"]["term"].unique()) == ["d_loss", "g_loss"]


def test_a_dwarfing_term_scales_every_term_to_its_own_range():
    bsa = live.loss_frame(BSA_ROWS)
    assert live.dwarfed(bsa) and not live.dwarfed(live.loss_frame(CGAN_ROWS))
    auto = live.plot_update(bsa, "auto")
    values = auto["value"].groupby("term")["value"]
    assert values.min().tolist() == [0.0] * 3 and (values.max() <= 1.0).all() and auto["y_title"] == live.SCALED_TITLE
    raw = live.plot_update(bsa, "raw")
    assert raw["value"]["value"].max() == 40.0 and raw["y_title"] == "value"
    assert live.plot_key(bsa, "raw") != live.plot_key(bsa, "auto")  # a view change rebuilds the plot


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from studio.workspace import Workspace

    ws = Workspace.resolve(tmp_path_factory.mktemp("ws"))
    create_demo_dataset(ws, "demo", per_class=6, size=32)
    run_training(ws, method="cgan", run_name="small", dataset="demo", cfg=CGANConfig(g_ch=8, d_ch=8, batch=8),
                 loop=LoopConfig(iters=2, sample_every=2, checkpoint_every=2), device="cpu")
    return ws


def test_evaluate_defaults_offline_to_the_judge_and_it_answers(trained, monkeypatch, quick_judge):
    from studio.evaluate import evaluate_history, evaluate_run, report_lines

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    choices, default = evaluate_panel.feature_choices(dev=False)
    assert default == "judge" and "judge" in dict((v, k) for k, v in choices)
    report = evaluate_run(trained, "small", n=30, features="judge", save=False)
    assert report["features"] == "judge:demo" and report["kid"]["value"] is not None
    fidelity = next(line for line in report_lines(report) if line.startswith("Class fidelity"))
    assert f"real images the judge did not learn from: {report['classifier']['heldout_accuracy']:.2f})" in fidelity
    assert evaluate_history(trained, "small", n=30, features="judge")[0]["step"] == 2


def test_generate_opens_on_the_newest_trained_run_not_the_base_model(trained):
    from studio.generate import list_sources

    choices = list_sources(trained, dev=True)
    assert choices[-1][1].startswith("biggan:") and opening_source(choices) == "run:small"
    base_only = [c for c in choices if c[1].startswith("biggan:")]
    assert opening_source(base_only) == "biggan:tiny"  # the one that is ready, not one that would download


def test_the_report_puts_the_reason_first_and_shortens_long_names():
    long = "a-very-long-folder-name/with-a-longer-file-name-than-any-column-can-show-painting.png"
    report = ImportReport("art", rejected=[{"file": long, "reason": "not an image (text)"}],
                          duplicates=[{"file": "b.png", "duplicate_of": "x/a.png", "kind": "exact"}])
    rows = dataset_tab._report_rows(report)
    assert rows[0][0] == "Rejected: not an image (text)" and rows[1][0] == "Skipped: the same image as a.png"
    short = rows[0][1]
    assert len(short) == dataset_tab.FILE_WIDTH and short.startswith("a-very-long") and short.endswith("painting.png")
