"""Methods, described once: the registry the CLI, the Train and Blend tabs, the jobs and ZeroGPU all read.

A method is a module with a `METHOD = Method(...)` (title, help, config class, presets, loop defaults, pre-flight
check, trainer factory, sampler loader, what its runs can do) and one line in METHODS. Training methods
(bsa.py, cgan.py) give `build_trainer(cfg, dataset, device=, meta=, ws=)` and studio.train runs them; a method
that is not a loop over a dataset (the blend, studio/guide.py) gives `run(ws, spec, **hooks)` instead.

What a trained run can make is the `Sampler` contract below, and `load_run_sampler` is the one way to get a run's.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from studio.errors import UserError

if TYPE_CHECKING:
    import torch

# name → module with METHOD; the order is the order the Train tab and the CLI list them in.
METHODS = {"cgan": "studio.methods.cgan", "bsa": "studio.methods.bsa", "blend": "studio.guide"}


@dataclass(frozen=True)
class Method:
    name: str
    title: str                                   # the Train tab's choice ("cGAN: train a …")
    help: str                                    # the CLI's one line
    config: type                                 # dataclass of options (studio.options metadata on its fields)
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # config and loop values by preset name
    preset_titles: dict[str, str] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)                # loop defaults (iters, sample_every, …)
    check: Callable | None = None                # (ws, spec) → None or UserError: what can fail before a job starts
    build_trainer: Callable | None = None        # training methods: (cfg, dataset, device=, meta=, ws=) → trainer
    run: Callable | None = None                  # other methods: (ws, spec, should_stop=, on_progress=) → state
    load_sampler: Callable | None = None         # (tensors, meta, device=, base=) → a Sampler of the run's checkpoint
    can: frozenset[str] = frozenset()            # what its samplers do beyond the contract: names in CAPABILITIES
    preset_for_data: Callable | None = None      # (dataset, given config) → (preset, why) or None: a preset the data picks

    @property
    def trains(self) -> bool:
        """A training method: `python -m studio train NAME`, a choice in the Train tab."""
        return self.build_trainer is not None


def method(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"Unknown method {name!r}: choose one of {', '.join(METHODS)}.")
    return importlib.import_module(METHODS[name]).METHOD


def training_methods() -> list[Method]:
    return [m for m in map(method, METHODS) if m.trains]


@runtime_checkable
class Sampler(Protocol):
    """What every generator the studio samples from offers: a trained run's (BSAAdapter, CGANSampler) and the base
    BigGAN's (studio.generate.BigGANSampler). Images are [n, 3, H, W] in [-1, 1]; the same seed gives the same images.
    `truncation` scales the latents; each sampler has its own default (`default_truncation`)."""

    classes: list[str]
    z_dim: int
    default_truncation: float

    def sample(self, n: int, *, label: str | None = None, seed: int = 0, truncation: float = ...) -> torch.Tensor:
        """n images of class `label` (None: cycling through the classes)."""

    def grid(self, per_class: int, *, seed: int = 0, truncation: float = ...) -> torch.Tensor:
        """Rows are classes, columns seeds: the same latents in every row."""

    def interpolate_seeds(self, a: int, b: int, frames: int = 8, *, label: str | None = None,
                          truncation: float = ...) -> torch.Tensor:
        """From the image `sample(1, seed=a)` draws to that of seed b, along the arc between their latents."""


# What a method's `can` may name, and the Sampler methods each one promises (tests/test_samplers.py checks them).
CAPABILITIES = {
    # a latent learned per training image: reconstruct(indices) and interpolate_images(i, j, frames)
    "reconstruct": ("reconstruct", "interpolate_images"),
    # a frozen pretrained base to compare with: sample_base(n, imagenet_class=, seed=, truncation=)
    "compare": ("sample_base",),
    # class embeddings that mix: mix_classes(z, class_weights) (what guidance steers) and interpolate_classes(a, b, …)
    "class_mix": ("mix_classes", "interpolate_classes"),
}


def load_run_sampler(run, device, step: int | None = None, *, base=None):
    """The Sampler of a run's newest checkpoint, or of its snapshot at `step` (`run` is a studio.run.RunFolder),
    with the run's config and the checkpoint. Every reader of a run's generator (Generate, sample, evaluate, the
    blend) loads it here. `base`: a pretrained model already loaded, for a method that adapts one to share it (a
    blend puts two BSA runs on one BigGAN)."""
    config = run.read_config()
    described = method(config["method"])
    if described.load_sampler is None:
        raise UserError(f"Run {run.name!r} is a {config['method']}: it has no generator to sample from.")
    if step is None and not run.has_checkpoint():
        raise UserError(f"Run {run.name!r} has no checkpoint yet: let it train until one is saved, or stop it to "
                        "save one.")
    ckpt = run.load_checkpoint() if step is None else run.load_snapshot(step)
    shared = {} if base is None else {"base": base}
    return described.load_sampler(ckpt.tensors, ckpt.meta, device=device, **shared), config, ckpt


def class_indices(classes: list[str], label: str | None, n: int):
    """Class indices for n images: all `label`, or cycling through every class when None."""
    import torch

    if label is None:
        return torch.arange(n) % len(classes)
    if label not in classes:
        raise UserError(f"This run knows the classes {', '.join(classes)}; there is no class {label!r}.")
    return torch.full((n,), classes.index(label))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Latents on the great circle from a to b ([d] or [1, d] each) at fractions t [F]: [F, d], exactly a at 0 and b at 1.

    A straight line between two Gaussian latents dips towards the origin, where samples turn dull and alike;
    the arc keeps every frame as typical as its ends.
    """
    import torch

    a, b = a.reshape(1, -1), b.reshape(1, -1)
    t = t.reshape(-1, 1).to(a)
    omega = torch.arccos((a / a.norm() * (b / b.norm())).sum().clamp(-1, 1))
    if omega < 1e-4:  # (nearly) the same direction: the arc is a line
        z = (1 - t) * a + t * b
    else:
        z = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    return torch.where(t == 0, a, torch.where(t == 1, b, z))
