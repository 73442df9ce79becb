"""What every process the studio starts no longer spends: torch._dynamo in a training process (2.3 s), scipy.optimize
in a cGAN job (0.8 s), gradio's stub writer in the app (2.6-3.6 s). Each in a fresh process: a pytest worker may have
imported any of them already."""

from __future__ import annotations

import subprocess
import sys


def fresh_process(script: str) -> None:
    """Run `script` in a new interpreter (one thread); it prints "ok" when its checks pass."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"OMP_NUM_THREADS": "1", "PATH": "", "GRADIO_ANALYTICS_ENABLED": "False"})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


ADAM = r"""
import sys
import torch
from studio.devices import Adam

def train(cls, fused):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3))
    opt = cls(net.parameters(), lr=1e-2, betas=(0.0, 0.99), fused=fused)
    for step in range(6):
        if step == 3:  # a Continue: the state saved and loaded half way
            state = opt.state_dict()
            opt = cls(net.parameters(), lr=1e-2, betas=(0.0, 0.99), fused=fused)
            opt.load_state_dict(state)
        opt.zero_grad(set_to_none=True)
        net(torch.randn(2, 3, 8, 8)).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()], opt.state_dict()

ours = {fused: train(Adam, fused) for fused in (None, True)}
assert "torch._dynamo" not in sys.modules, "studio.devices.Adam imported torch._dynamo"
for fused, (params, state) in ours.items():
    want_params, want_state = train(torch.optim.Adam, fused)
    assert all(torch.equal(a, b) for a, b in zip(params, want_params)), fused
    assert state["param_groups"] == want_state["param_groups"]
    for i, s in want_state["state"].items():
        assert all(torch.equal(s[k], state["state"][i][k]) for k in s), (fused, i)
assert "torch._dynamo" in sys.modules  # the check above can fail: torch's own Adam does import it
print("ok")
"""


def test_adam_gives_torchs_weights_and_state_without_importing_dynamo():
    fresh_process(ADAM)


GRADIO = r"""
import studio.ui
import gradio as gr
import gradio.component_meta

assert gradio.component_meta.create_or_modify_pyi.__qualname__.startswith("_NoStubWriting."), "gradio writes its stubs"
with gr.Blocks() as demo:  # components still build, with their events
    box = gr.Textbox()
    box.submit(lambda s: s, box, box)
assert demo.config["components"]
print("ok")
"""


def test_gradio_imported_through_the_ui_package_writes_no_stubs():
    fresh_process(GRADIO)


LSAP = r"""
import sys
import numpy as np
from studio.methods.cgan import _linear_sum_assignment

ours = _linear_sum_assignment()
assert "scipy.optimize" not in sys.modules, "matching imported scipy.optimize"
rng = np.random.default_rng(0)
costs = [rng.random(shape) for shape in [(4, 4), (6, 9), (16, 40)]]
costs.append(np.where(rng.random((8, 12)) < 0.5, 1e9, rng.random((8, 12))))  # other classes' images, as matching's
from scipy.optimize import linear_sum_assignment

for cost in costs:
    assert all(np.array_equal(a, b) for a, b in zip(ours(cost), linear_sum_assignment(cost))), cost.shape
assert _linear_sum_assignment() is linear_sum_assignment  # once the package is loaded, its own
print("ok")
"""


def test_matching_pairs_as_scipy_does_without_importing_scipy_optimize():
    fresh_process(LSAP)
