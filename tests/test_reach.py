"""One answer to "can a download happen?": HF_HUB_OFFLINE, else one real probe of the hub, kept; pickers and
loaders follow it, so an unreachable network is said at once instead of found out by a job minutes later."""

from __future__ import annotations

import socket

import pytest

from studio.errors import UserError
from studio.models import biggan, reach
from studio.models.biggan import load_biggan, resolve_biggan

REAL_PROBE = reach._probe


@pytest.fixture
def unreachable_hub(monkeypatch):
    """No HF_HUB_OFFLINE, and the hub at a local port nobody listens on: the real probe is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    probes: list[str] = []

    def counted(endpoint: str) -> bool:
        probes.append(endpoint)
        return REAL_PROBE(endpoint)

    monkeypatch.setattr(reach, "_probe", counted)
    reach.forget()
    return probes


def test_the_flag_answers_without_a_probe(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(reach, "_probe", lambda endpoint: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    assert not reach.can_download() and reach.why_not() == "HF_HUB_OFFLINE is set"
    assert reach.why_not(download=False) == "downloads are turned off"


def test_an_unreachable_hub_is_probed_once_and_said(unreachable_hub):
    assert not reach.can_download() and not reach.can_download()
    assert len(unreachable_hub) == 1  # the answer is kept
    assert reach.why_not() == "127.0.0.1 cannot be reached (no network?)"


def test_a_listening_hub_is_reachable(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setattr(reach, "_probe", REAL_PROBE)
        assert reach.can_download()


def test_pickers_and_loaders_follow_the_probe(unreachable_hub, monkeypatch, tmp_path):
    source = resolve_biggan("biggan-deep-256", checkpoints_dir=tmp_path)
    assert not source.available and source.status.startswith("not available offline: put config.json")
    monkeypatch.setattr(biggan, "_fetch", lambda *a, **k: pytest.fail("tried to download while unreachable"))
    with pytest.raises(UserError, match="cannot be reached") as e:
        load_biggan("biggan-deep-256", checkpoints_dir=tmp_path)
    assert str(tmp_path / "biggan-deep-256") in str(e.value)


def test_a_bsa_job_with_unreachable_weights_is_refused_at_submit(unreachable_hub, workspace):
    from studio.data.dataset import create_demo_dataset
    from studio.jobs import JobManager, JobRequest

    create_demo_dataset(workspace, "art", per_class=2, size=32)
    jobs = JobManager(workspace, background=False)
    with pytest.raises(UserError, match="not available offline: put config.json and pytorch_model.bin in"):
        jobs.submit(JobRequest("bsa", "r1", dataset="art", config={"model": "biggan-deep-128"}))
    assert jobs.runs() == []


def test_vgg16_offline_is_said_in_the_picker_and_a_bsa_job_needing_it_is_refused_at_submit(unreachable_hub, workspace):
    from studio.data.dataset import create_demo_dataset
    from studio.jobs import JobManager, JobRequest
    from studio.jobspec import check_before_queueing
    from studio.models.vgg import resolve_vgg16
    from studio.ui.train_tab import perceptual_choices

    if resolve_vgg16().path is not None:
        pytest.skip("VGG16 weights are on this machine")
    assert dict((v, label) for label, v in perceptual_choices(dev=False))["vgg16"].startswith(
        "VGG16: not available offline: download")  # not "(downloads 528 MB once)"
    create_demo_dataset(workspace, "art", per_class=2, size=32)
    jobs = JobManager(workspace, background=False)
    with pytest.raises(UserError, match=r"VGG16 for the perceptual loss is not available offline: .* put vgg16-397923af"):
        jobs.submit(JobRequest("bsa", "r1", dataset="art", config={"model": "tiny", "perceptual": "vgg16"}))
    assert jobs.runs() == []
    # Nothing to fetch: accepted (checked as a submit checks it, without starting a training process).
    check_before_queueing(workspace, JobRequest("bsa", "r2", dataset="art", config={"model": "tiny", "perceptual": "none"}))


def test_a_blend_of_a_bsa_run_whose_biggan_is_not_here_is_refused_at_submit(unreachable_hub, workspace):
    import torch

    from studio.jobs import JobManager, JobRequest
    from studio.run import RunFolder

    run = RunFolder(workspace.run_dir("moved"))  # trained elsewhere: its checkpoint came, its base model did not
    run.write_config({"method": "bsa", "dataset": "art", "config": {"model": "biggan-deep-128"}, "loop": {}})
    run.save_checkpoint({"adapter/x": torch.zeros(1)}, {"method": "bsa", "step": 1})
    jobs = JobManager(workspace, background=False)
    with pytest.raises(UserError, match="BigGAN 'biggan-deep-128' is not available offline: put config.json"):
        jobs.submit(JobRequest("blend", "b1", config={"a": "moved", "prompt": "a red circle", "clip": "tiny",
                                                       "out": str(workspace.exports / "b1.png")}))
    assert [v.run for v in jobs.runs()] == ["moved"]
