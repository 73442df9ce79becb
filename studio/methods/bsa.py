"""Batch Statistics Adaptation (Noguchi & Harada 2019) of a frozen pretrained generator.

The base is a BigGAN-deep (downloaded, or `tiny` for tests) or one of the studio's own cGAN generators: the shipped
`studio-base` (checkpoints/studio-base/, offline) or `run:NAME`, a cGAN run of the workspace, either architecture.
Each says which of its layers BSA adapts (studio/models/adaptable.py); this module adapts through that, whatever the base.

Only small things learn: one latent per training image, one class embedding per label
(replacing the base's), a per-channel scale/shift after the first projection of the latent, and either
  - `scale-shift`: free per-channel scale and shift on every normalisation/FiLM output (~50k params at 256 px), or
  - `hyper-bn` (BigGAN only): additive changes to the batch-norms' scale/offset generator weights (the reference
    code's BigGAN recipe), kept as deltas so the base weights stay bit-for-bit unchanged.
  `auto` is hyper-bn on a BigGAN and scale-shift on a studio base.
All adaptation enters through forward hooks on the frozen model and starts at identity.
Loss (reference `get_loss`): L1 + 0.001·Σ VGG16 L1 (conv1_1…conv4_3) + 0.1·EMD(z, N(0,I)) + 0.02·mean(c²).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from studio.devices import PRECISIONS, adam, autocast, resolve_precision
from studio.errors import UserError
from studio.methods import Method, class_indices, slerp
from studio.models.adaptable import AdaptableLayer, scale_shift, tensor_fingerprint
from studio.options import option
from studio.run import load_optimizer_tensors, optimizer_tensors

ADAPT_MODES = ("auto", "hyper-bn", "scale-shift")
PERCEPTUALS = ("auto", "vgg16", "none", "tiny")
RUN_BASE = "run:"       # --model run:NAME: the generator of cGAN run NAME of the workspace
STUDIO_BASE_FILES = ("model.safetensors", "config.json")  # a studio base folder (checkpoints/studio-base/)
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass
class BSAConfig:
    model: str = option("biggan-deep-256", label="Base generator",
                        help="Pretrained generator to adapt: biggan-deep-128/256/512 (a download), a BigGAN folder, or "
                             "tiny; studio-base: the studio's own 32 px generator, shipped, offline (with the other "
                             "defaults, 1000 steps take under a minute on a CPU: 19 s on one busy core; the images "
                             "come out as soft colour studies, without their lines and edges); run:NAME: a cGAN run "
                             "of this workspace "
                             "(light or fastgan). Images are resized to the base's resolution.")
    adapt: str = option("auto", label="What adapts", choices=ADAPT_MODES,
                        help="auto: hyper-bn on a BigGAN, scale-shift on a studio base; hyper-bn: the reference recipe "
                             "(BigGAN only); scale-shift: per-channel γ/β on every batch norm or FiLM")
    batch: int = option(5, label="Batch", min=1, max=256, why_max="256 images of BigGAN-deep do not fit in a GPU's memory")  # reference: 5 per GPU
    lr: float | None = option(None, label="Learning rate (latents; others scale from it)", min=0, max=10,  # see GROUP_LR
                              help="empty: per base (BASE_DEFAULTS): 0.05 on a BigGAN (the reference), 0.2 on a studio "
                                   "base")
    lr_scale: float = option(0.2, label="LR decay factor", min=0, max=1)  # every lr is multiplied by this every lr_step steps
    lr_step: int = option(3000, label="LR decay every", min=1)
    perceptual: str = option("auto", label="Perceptual loss", choices=PERCEPTUALS,  # tiny: tests
                             help="VGG16 features of real and generated images compared; auto: VGG16 for a BigGAN "
                                  "(downloaded if need be), for a studio base only when its weights are on this machine")
    perceptual_weight: float = option(0.001, label="Perceptual weight", min=0)  # per VGG layer
    real_features: str = option("cache", label="Real features", choices=("cache", "recompute"))  # cache: the real images' VGG features, fixed, computed once (fast); recompute: every step
    layout: str = option("contiguous", label="Memory layout", choices=tuple(LAYOUTS))  # or channels_last: faster for sampling (1.15× on CPU), slower for training with VGG
    precision: str = option("auto", label="Precision", choices=PRECISIONS,  # bench/bsa_step.py --precision fp32 bf16
                            help="auto: bf16 autocast for the BigGAN and VGG forward passes where the device has fast "
                                 "bf16 (AMX/AVX-512-BF16 CPUs, recent GPUs), else fp32; parameters and losses stay fp32")
    emd_weight: float | None = option(None, label="EMD weight", min=0,
                                      help="empty: per base (BASE_DEFAULTS): 0.1 on a BigGAN (the reference), 0 on a "
                                           "studio base")
    class_weight: float = option(0.02, label="Class weight", min=0)
    z_noise: float = option(0.01, label="Latent noise", min=0)  # noise added to the learned latents at every step
    class_init: int | None = option(None, label="Start class (index)", min=0, max=999,
                                    why_max="ImageNet has 1000 classes, 0 to 999",
                                    help="the base class new labels start from (ImageNet's for a BigGAN, the base "
                                         "run's for a studio base); empty: the mean of all its classes")
    bn_truncation: float = option(1.0, label="BN truncation", min=0, max=1)  # which stored BN statistics the frozen model uses
    preview_truncation: float = option(0.5, label="Preview truncation", min=0, max=2)
    seed: int = option(0, label="Seed", min=0)

    def __post_init__(self) -> None:
        for name, value in BASE_DEFAULTS[base_kind(self.model)].items():  # empty: the base's own (saved as the value)
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.adapt not in ADAPT_MODES:
            raise UserError(f"Unknown adaptation {self.adapt!r}: choose {' or '.join(ADAPT_MODES)}.")
        if self.batch < 1 or self.lr <= 0 or self.lr_step < 1:
            raise UserError("Batch size, learning rate and lr step must be positive.")
        if not 0 < self.bn_truncation <= 1:
            raise UserError("BN truncation must be in (0, 1].")
        if self.layout not in LAYOUTS:
            raise UserError(f"Layout is one of {', '.join(LAYOUTS)}, not {self.layout!r}.")
        if self.precision not in PRECISIONS:
            raise UserError(f"Precision is one of {', '.join(PRECISIONS)}, not {self.precision!r}.")
        if self.real_features not in ("cache", "recompute"):
            raise UserError(f"real_features is 'cache' or 'recompute', not {self.real_features!r}.")

    @classmethod
    def from_dict(cls, d: dict) -> "BSAConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# What an empty field means, per kind of base. BigGAN: the reference's values. A studio base (32 px, 1.7 M parameters),
# measured on the demo's three styles, 25 images each, 1000 steps (bench/few_shot.py --methods bsa --bsa-set …): EMD at
# 0.1 (and at 0.01 or 0.001) pulls the latents towards random draws of N(0, I) harder than the pixel loss pulls them to
# their images: reconstruction L1 0.38 (0.37, 0.39) against 0.32 without it, and lr 0.2 instead of 0.05 gets 0.30 (0.5:
# 0.30). Sample precision moved with them (0.12 → 0.30 → 0.43) but swings as much between seeds and budgets, so only the
# reconstructions are firm evidence (docs/quality.md, "BSA from the studio base").
BASE_DEFAULTS: dict[str, dict[str, Any]] = {"biggan": {"lr": 0.05, "emd_weight": 0.1},
                                            "studio": {"lr": 0.2, "emd_weight": 0.0}}


# Reference learning rates (configs/default.yml): z 0.05, hyper-BN and the first-layer affine 5e-4,
# class embedding 1e-3. `lr` sets the latents; the rest keep the reference ratios. Free scale/shift
# (the SNGAN variant of the reference) learn at the latents' rate.
GROUP_LR = {"latents": 1.0, "hyper-bn": 0.01, "first-affine": 0.01, "scale-shift": 1.0, "class": 0.02}

PRESETS: dict[str, dict[str, Any]] = {
    # The seed's two tables, exactly; the reference decays lr every 3000 steps, so these never decay.
    "symbolic-seed": {"iters": 300, "batch": 5, "lr": 0.03, "lr_scale": 0.2},
    "abstract-seed": {"iters": 100, "batch": 5, "lr": 0.05, "lr_scale": 0.2},
    "reference": {"iters": 10000, "batch": 5, "lr": 0.05, "lr_scale": 0.2, "lr_step": 3000},
}
PRESET_TITLES = {"symbolic-seed": "Symbolic art (seed): 100 images, 300 iterations",
                 "abstract-seed": "Abstract art (seed): 25 images, 100 iterations",
                 "reference": "Reference (Noguchi & Harada): 10,000 iterations"}


def _stats(bn: nn.Module, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The running statistics BigGANBatchNorm picks for `truncation` (same interpolation as the package)."""
    coef, start = math.modf(truncation / bn.step_size)
    start = int(start)
    if coef == 0.0:
        return bn.running_means[start], bn.running_vars[start]
    mean = bn.running_means[start] * coef + bn.running_means[start + 1] * (1 - coef)
    var = bn.running_vars[start] * coef + bn.running_vars[start + 1] * (1 - coef)
    return mean, var


class BigGANBase:
    """What BSA needs of a frozen BigGAN-deep: its adaptable layers, its class table, and how it renders."""

    kind = "biggan"

    def __init__(self, model: nn.Module):
        from studio.models.biggan import adaptable_layers

        self.model, self.layers = model, adaptable_layers(model)
        self.z_dim, self.resolution = model.config.z_dim, model.config.output_dim

    def class_table(self) -> torch.Tensor:
        return self.model.embeddings.weight.t()  # [1000, 128]: nn.Linear(1000 → 128) applied to one-hots

    def render(self, z: torch.Tensor, class_embedding: torch.Tensor, truncation: float) -> torch.Tensor:
        return self.model.generator(torch.cat([z, class_embedding], dim=1), truncation)


class StudioBase:
    """What BSA needs of a frozen studio cGAN generator (models/cgan.py or models/fastgan.py)."""

    kind = "studio"

    def __init__(self, model: nn.Module):
        self.model, self.layers = model, model.adaptable_layers()
        self.z_dim, self.resolution = model.arch.z_dim, model.arch.resolution

    def class_table(self) -> torch.Tensor:
        return self.model.embed.weight  # [classes, embed_dim]

    def render(self, z: torch.Tensor, class_embedding: torch.Tensor, truncation: float) -> torch.Tensor:
        return self.model(z, class_embedding=class_embedding)  # truncation is BigGAN's batch-norm statistics: none here


def base_view(model: nn.Module) -> BigGANBase | StudioBase:
    """The BSA view of a frozen generator, made once per model (kept in its __dict__, outside its modules)."""
    view = model.__dict__.get("_bsa_view")
    if view is None:
        if hasattr(model, "generator") and hasattr(model, "embeddings"):
            view = BigGANBase(model)
        elif hasattr(model, "adaptable_layers"):
            view = StudioBase(model)
        else:
            raise UserError(f"BSA cannot adapt a {type(model).__name__}: its architecture does not say which layers "
                            "are adaptable (an adaptable_layers() method, see studio/models/adaptable.py).")
        model.__dict__["_bsa_view"] = view
    return view


def resolve_adapt(adapt: str, kind: str) -> str:
    if adapt == "auto":
        return "hyper-bn" if kind == "biggan" else "scale-shift"
    if adapt == "hyper-bn" and kind != "biggan":
        raise UserError("hyper-bn adapts the batch-norm generators of a BigGAN; a studio base adapts with scale-shift "
                        "(or auto).")
    return adapt


def _key(layer: AdaptableLayer) -> str:
    return layer.name.replace(".", "_")


class BSAAdapter(nn.Module):
    """The trainable part of BSA, attached to a frozen generator by hooks; `generate` runs the adapted model.

    Also a run's studio.methods.Sampler, with all three capabilities: reconstruct (and interpolate_images),
    compare (sample_base: the frozen BigGAN alone) and class_mix.
    """

    default_truncation = 0.5  # z ~ N(0, 0.5²): BSA's sampling default

    def __init__(self, base: nn.Module, *, n_images: int, classes: list[str], adapt: str, class_init: int | None = None):
        super().__init__()
        self.base = [base]  # a list keeps the frozen model out of this module's parameters and state_dict
        view = base_view(base)
        self.adapt = resolve_adapt(adapt, view.kind)
        self.classes = list(classes)
        self.latents = nn.Parameter(torch.zeros(n_images, view.z_dim))
        self.register_buffer("train_labels", torch.zeros(n_images, dtype=torch.long))  # class of each latent's image
        table = view.class_table()
        if class_init is not None and not 0 <= class_init < len(table):
            raise UserError(f"The start class must be a class index of the base, 0 to {len(table) - 1}, not {class_init}.")
        init = table[class_init] if class_init is not None else table.mean(dim=0)
        self.class_embed = nn.Parameter(init.detach().clone().repeat(len(self.classes), 1))
        first = next(layer for layer in view.layers if layer.first)
        self.first_scale = nn.Parameter(torch.ones(first.channels))
        self.first_shift = nn.Parameter(torch.zeros(first.channels))
        self.bn_scale = nn.ParameterDict()  # by layer key: batch norms of a BigGAN, norm/FiLM outputs of a studio base
        self.bn_shift = nn.ParameterDict()
        for layer in view.layers:
            if layer.first:
                continue
            key = _key(layer)
            if self.adapt == "scale-shift":
                self.bn_scale[key] = nn.Parameter(torch.ones(layer.channels))
                self.bn_shift[key] = nn.Parameter(torch.zeros(layer.channels))
            elif layer.module.conditional:
                self.bn_scale[key] = nn.Parameter(torch.zeros_like(layer.module.scale.weight_orig))
                self.bn_shift[key] = nn.Parameter(torch.zeros_like(layer.module.offset.weight_orig))
        self._hooks: list = []
        self.truncation = 1.0
        self.free_latents = False  # set from the run's config: True when no EMD ties the latents to N(0, I)

    @property
    def model(self) -> nn.Module:
        return self.base[0]

    @property
    def view(self) -> BigGANBase | StudioBase:
        return base_view(self.model)

    @property
    def z_dim(self) -> int:
        return self.view.z_dim

    def param_groups(self, lr: float) -> list[dict]:
        adapt_group = "scale-shift" if self.adapt == "scale-shift" else "hyper-bn"
        groups = [
            ("latents", [self.latents]),
            ("class", [self.class_embed]),
            ("first-affine", [self.first_scale, self.first_shift]),
            (adapt_group, [*self.bn_scale.values(), *self.bn_shift.values()]),
        ]
        return [{"params": p, "lr": lr * GROUP_LR[name], "base_lr": lr * GROUP_LR[name], "name": name} for name, p in groups]

    # -- hooks ------------------------------------------------------------------------------
    def attach(self) -> "BSAAdapter":
        """Register the adaptation hooks on the frozen model; the adapter attached before is detached (one at a time)."""
        current = self.model.__dict__.get("_bsa_adapter")
        if current is self and self._hooks:
            return self
        if current is not None:
            current.detach_hooks()
        # Set through __dict__: as an attribute, nn.Module would register the adapter as a submodule of the base.
        self.model.__dict__["_bsa_adapter"] = self
        for layer in self.view.layers:
            if layer.first:
                self._hooks.append(layer.module.register_forward_hook(self._first_hook(layer.form)))
            elif _key(layer) in self.bn_scale:
                self._hooks.append(layer.module.register_forward_hook(self._bn_hook(_key(layer), layer.form)))
        return self

    def detach_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self.model.__dict__.get("_bsa_adapter") is self:
            self.model.__dict__["_bsa_adapter"] = None

    # The hooks read the adaptation through these two methods, so a blend of two adapters can supply mixtures.
    def first_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.first_scale, self.first_shift

    def bn_affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        return self.bn_scale[key], self.bn_shift[key]

    def _first_hook(self, form: str):
        def hook(module, inputs, out):
            return scale_shift(out, form, *self.first_affine())
        return hook

    def _bn_hook(self, key: str, form: str):
        def hook(bn, inputs, out):
            scale, shift = self.bn_affine(key)
            if self.adapt == "scale-shift":
                return scale_shift(out, form, scale, shift)
            x, truncation, cond = inputs  # hyper-bn: a BigGANBatchNorm's
            mean, var = _stats(bn, truncation)
            normalized = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + bn.eps)
            return out + normalized * (cond @ scale.t())[:, :, None, None] + (cond @ shift.t())[:, :, None, None]
        return hook

    # -- generation ---------------------------------------------------------------------------
    def generate(self, z: torch.Tensor, class_index: torch.Tensor | None = None, class_mix: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents z [B, z_dim] and a class index per image (or a class mix [B, n_classes])."""
        self.attach()
        if class_mix is None:
            class_mix = nn.functional.one_hot(class_index, len(self.classes)).to(z.dtype)
        return self.view.render(z, class_mix @ self.class_embed, self.truncation)

    def mix_classes(self, z: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
        """Images from noise z [B, z_dim] and class weights [B, n_classes]; differentiable (guidance steers it)."""
        return self.generate(self.new_latents(z, class_weights), class_mix=class_weights)

    # -- new images: noise → latents -----------------------------------------------------------
    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per class [n_classes, z_dim], the mean and spread of the latents new images are drawn around.

        With EMD the learned latents are tied to N(0, I), so that is where new ones come from (the reference's
        sampling). Without it they wander (norms near 35 on the studio base where N(0, I)'s are 11) and N(0, I) draws
        land where the adapter never learned: blobs at chance fidelity (docs/quality.md, "BSA from the studio base").
        There each class's learned latents give the mean and the per-dimension spread (all latents' spread for a
        class of one image).
        """
        n, dim = len(self.classes), self.latents.shape[1]
        z = self.latents.detach()
        if not self.free_latents:
            return z.new_zeros(n, dim), z.new_ones(n, dim)
        mean, std = z.new_zeros(n, dim), z.std(0, unbiased=False).repeat(n, 1)
        for c in range(n):
            own = z[self.train_labels == c]
            if len(own):
                mean[c] = own.mean(0)
            if len(own) > 1:
                std[c] = own.std(0, unbiased=False)
        return mean, std

    def new_latents(self, noise: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Latents for new images of `classes` (indices [B], or weights [B, n_classes]) from noise ~ N(0, t²)."""
        if not self.free_latents:
            return noise  # EMD tied the learned latents to N(0, I): the noise is the latent, as in the reference
        weights = (classes if classes.dim() == 2 else nn.functional.one_hot(classes, len(self.classes))).to(noise)
        mean, std = (s.to(noise) for s in self.latent_stats())
        return weights @ mean + (weights @ std) * noise

    def class_index(self, label: str | None, n: int) -> torch.Tensor:
        return class_indices(self.classes, label, n)

    @torch.no_grad()
    def sample(self, n: int, *, label: str | None = None, truncation: float = 0.5, seed: int = 0,
               truncate: bool = False, batch: int = 16) -> torch.Tensor:
        """n new images from noise ~ N(0, t²) (or truncated to ±t) made latents (new_latents), same seed → same images."""
        z = sample_latents(n, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed), truncate=truncate)
        labels = self.class_index(label, n)
        return self._batched(self.new_latents(z, labels), labels, batch)

    @torch.no_grad()
    def grid(self, per_class: int, *, seed: int = 0, truncation: float = 0.5, batch: int = 16) -> torch.Tensor:
        """Rows are classes, columns seeds: the same latent in every row shows what the class alone changes."""
        z = sample_latents(per_class, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed))
        labels = torch.arange(len(self.classes)).repeat_interleave(per_class)
        return self._batched(self.new_latents(z.repeat(len(self.classes), 1), labels), labels, batch)

    @torch.no_grad()
    def interpolate_classes(self, a: str, b: str, frames: int = 8, *, seed: int = 0, truncation: float = 0.5) -> torch.Tensor:
        """One latent, class embedding mixed from class a to class b."""
        ia, ib = self.class_index(a, 1)[0], self.class_index(b, 1)[0]
        t = torch.linspace(0, 1, frames, device=self.latents.device)[:, None]
        mix = (1 - t) * nn.functional.one_hot(ia, len(self.classes)).to(t) + t * nn.functional.one_hot(ib, len(self.classes)).to(t)
        z = sample_latents(1, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed)).to(t.device)
        return self.mix_classes(z.repeat(frames, 1), mix)

    @torch.no_grad()
    def reconstruct(self, indices: list[int] | None = None, batch: int = 16) -> torch.Tensor:
        """The training images as the model learned them (their learned latents, no noise)."""
        idx = torch.tensor(indices if indices is not None else range(len(self.latents)))
        return self._batched(self.latents[idx], self.train_labels[idx], batch)

    @torch.no_grad()
    def interpolate_images(self, i: int, j: int, frames: int = 8, batch: int = 16) -> torch.Tensor:
        """A straight line between the learned latents (and classes) of training images i and j."""
        n = len(self.latents)
        if not (0 <= i < n and 0 <= j < n):
            raise UserError(f"Training image indices must be between 0 and {n - 1}.")
        t = torch.linspace(0, 1, frames, device=self.latents.device)[:, None]
        z = (1 - t) * self.latents[i] + t * self.latents[j]
        labels = self.train_labels
        mix = (1 - t) * nn.functional.one_hot(labels[i], len(self.classes)) + t * nn.functional.one_hot(labels[j], len(self.classes))
        return torch.cat([self.generate(z[k:k + batch], class_mix=mix[k:k + batch]) for k in range(0, frames, batch)])

    @torch.no_grad()
    def interpolate_seeds(self, a: int, b: int, frames: int = 8, *, label: str | None = None, truncation: float = 0.5,
                          batch: int = 16) -> torch.Tensor:
        """Along the arc from the latent `sample(1, seed=a)` draws to that of seed b, in one class (default: the first)."""
        za, zb = (sample_latents(1, self.latents.shape[1], truncation, torch.Generator().manual_seed(s)) for s in (a, b))
        z = slerp(za, zb, torch.linspace(0, 1, frames))
        labels = self.class_index(label or self.classes[0], frames)
        return self._batched(self.new_latents(z, labels), labels, batch)

    @torch.no_grad()
    def sample_base(self, n: int, *, imagenet_class: int, seed: int = 0, truncation: float = 0.5,
                    batch: int = 16) -> torch.Tensor:
        """The frozen BigGAN alone, as ImageNet class `imagenet_class`, from the noise `sample(n, seed=seed)` draws."""
        from studio.models.biggan import one_hot_class

        if self.view.kind != "biggan":
            raise UserError("This run adapts one of the studio's own generators, which has no ImageNet classes: "
                            "side by side with a base BigGAN needs a run that adapts a BigGAN.")
        z = sample_latents(n, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed)).to(self.latents.device)
        y = one_hot_class([imagenet_class] * n, self.model.config.num_classes).to(z.device)
        attached = self.model.__dict__.get("_bsa_adapter")
        if attached is not None:
            attached.detach_hooks()  # whichever adapter is on the base, the base must run without it
        try:
            return torch.cat([self.model(z[k:k + batch], y[k:k + batch], self.truncation) for k in range(0, n, batch)])
        finally:
            if attached is not None:
                attached.attach()

    def _batched(self, z: torch.Tensor, labels: torch.Tensor, batch: int) -> torch.Tensor:
        z, labels = z.to(self.latents.device), labels.to(self.latents.device)
        return torch.cat([self.generate(z[k:k + batch], labels[k:k + batch]) for k in range(0, len(z), batch)])

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def from_checkpoint(cls, base: nn.Module, tensors: dict[str, torch.Tensor], meta: dict) -> "BSAAdapter":
        cfg = BSAConfig.from_dict(meta["config"])
        adapter = cls(base, n_images=meta["n_images"], classes=meta["classes"], adapt=cfg.adapt)
        adapter.load_state_dict({k[len("adapter/"):]: v for k, v in tensors.items() if k.startswith("adapter/")})
        adapter.truncation, adapter.free_latents = cfg.bn_truncation, cfg.emd_weight == 0
        return adapter.to(next(iter([*base.parameters(), *base.buffers()])).device)


def emd_loss(z: torch.Tensor, generator: torch.Generator | None = None, ratio: int = 10) -> torch.Tensor:
    """Chamfer-style EMD between the batch's latents and ratio·B samples of N(0, I), as in the reference."""
    ref = torch.randn(ratio * z.shape[0], z.shape[1], generator=generator).to(z)
    d = torch.cdist(z, ref).pow(2)
    return d.min(dim=1).values.mean() + d.min(dim=0).values.mean()


def sample_latents(n: int, dim: int, truncation: float, generator: torch.Generator, *, truncate: bool = False) -> torch.Tensor:
    """z ~ N(0, t²), or N(0, 1) truncated to ±t (resampled, like scipy.truncnorm)."""
    if not truncate:
        return truncation * torch.randn(n, dim, generator=generator)
    z = torch.randn(n, dim, generator=generator)
    while (bad := z.abs() > truncation).any():
        z[bad] = torch.randn(int(bad.sum()), generator=generator)
    return z


class BSATrainer:
    """BSA as a TrainingMethod for studio.train: data on the device, optimiser, step, preview, checkpoint state."""

    def __init__(self, cfg: BSAConfig, base: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: list[str],
                 *, perceptual: nn.Module | None, device: torch.device | str = "cpu", meta: dict | None = None):
        self.cfg, self.device, self.meta = cfg, torch.device(device), meta or {}
        self.precision = self.meta["precision"] = resolve_precision(cfg.precision, self.device)
        torch.manual_seed(cfg.seed)
        self.adapter = BSAAdapter(base, n_images=len(images), classes=classes, adapt=cfg.adapt,
                                  class_init=cfg.class_init).to(self.device)
        self.adapter.truncation, self.adapter.free_latents = cfg.bn_truncation, cfg.emd_weight == 0
        self.adapter.train_labels.copy_(labels)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.perceptual = perceptual
        self.opt = adam(self.adapter.param_groups(cfg.lr), self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)  # all training randomness: batches, noise, EMD samples
        preview_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.preview_z = sample_latents(8, self.adapter.z_dim, cfg.preview_truncation, preview_gen)
        self.real_features = self._cache_real_features() if perceptual is not None and cfg.real_features == "cache" else None

    @torch.no_grad()
    def _cache_real_features(self, chunk: int = 8) -> list[torch.Tensor] | None:
        """The frozen VGG's features of every real image, once: they never change, and recomputing them was a
        third of the perceptual loss's cost. Kept on the device when they fit (about 69 MB an image at 256 px)."""
        per_image = sum(f[0].numel() for f in self.perceptual(self.images[:1])) * 4
        budget = (torch.cuda.mem_get_info(self.device)[0] // 4 if self.device.type == "cuda" else 8 * 2**30)
        if per_image * len(self.images) > budget:
            return None  # recompute instead: a cache must never be what runs a GPU out of memory
        parts = [self.perceptual(self.images[i:i + chunk]) for i in range(0, len(self.images), chunk)]
        return [torch.cat(layer) for layer in zip(*parts)]

    def _lr_factor(self, step: int) -> float:
        return self.cfg.lr_scale ** (step // self.cfg.lr_step)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = group["base_lr"] * self._lr_factor(step)
        batch = min(cfg.batch, len(self.images))
        idx = torch.randperm(len(self.images), generator=self.gen)[:batch].to(self.device)
        z = self.adapter.latents[idx]
        noise = cfg.z_noise * torch.randn(z.shape, generator=self.gen).to(self.device)
        real = self.images[idx]
        with autocast(self.device, self.precision):  # fp32 master parameters; the losses below are reduced in fp32
            fake = self.adapter.generate(z + noise, self.labels[idx])
            feats_fake = self.perceptual(fake) if self.perceptual is not None else None
        fake = fake.float()
        losses = {"l1": (fake - real).abs().mean()}
        if feats_fake is not None:
            feats_real = [f[idx] for f in self.real_features] if self.real_features is not None else self.perceptual(real)
            losses["perceptual"] = cfg.perceptual_weight * sum((a.float() - b.float()).abs().mean()
                                                               for a, b in zip(feats_fake, feats_real))
        losses["emd"] = cfg.emd_weight * emd_loss(z, self.gen)
        losses["class"] = cfg.class_weight * self.adapter.class_embed.pow(2).mean()
        loss = sum(losses.values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), **{k: v.detach() for k, v in losses.items()}, "lr": torch.tensor(self.opt.param_groups[0]["lr"])}

    @torch.no_grad()
    def preview(self) -> tuple[torch.Tensor, int]:
        """Row 1: training images; row 2: their reconstructions; then fixed-seed samples, cycling through classes."""
        n = min(4, len(self.images))
        idx = torch.arange(n, device=self.device)
        recon = self.adapter.generate(self.adapter.latents[idx], self.labels[idx])
        classes = torch.arange(len(self.preview_z), device=self.device) % len(self.adapter.classes)
        samples = self.adapter.generate(self.adapter.new_latents(self.preview_z.to(self.device), classes), classes)
        grid = torch.cat([self.images[idx], recon, samples[: 2 * n] if n < 4 else samples])
        return grid.float().cpu(), n

    def preview_rows(self) -> list[str]:
        """What each row of `preview` is: the training images, the model's reconstructions of them, fresh samples."""
        n = min(4, len(self.images))
        samples = 2 * n if n < 4 else len(self.preview_z)
        return ["real", "reconstruction", *["sample"] * -(-samples // n)]

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**self.sampler_tensors(), **optimizer_tensors(self.opt, "optim/adam"), "rng/train": self.gen.get_state()}

    def sampler_tensors(self) -> dict[str, torch.Tensor]:
        return {f"adapter/{k}": v for k, v in self.adapter.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.adapter.load_state_dict({k[len("adapter/"):]: v for k, v in tensors.items() if k.startswith("adapter/")})
        load_optimizer_tensors(self.opt, tensors, "optim/adam")
        if "rng/train" in tensors:
            self.gen.set_state(tensors["rng/train"])

    def checkpoint_meta(self) -> dict[str, Any]:
        return {**self.meta, "method": "bsa", "config": asdict(self.cfg), "classes": self.adapter.classes,
                "n_images": len(self.images), "trainable_parameters": self.adapter.trainable_count()}


MIN_IMAGES = 2  # one image has nothing to adapt "towards" but itself; the seed trains on 25-100


def build_trainer(cfg: BSAConfig, dataset, *, device: str | torch.device, meta: dict, ws=None) -> BSATrainer:
    """Load the frozen base and VGG, put the dataset on the device at the base's resolution, and set up BSA."""
    from studio.models.vgg import load_vgg16

    base, base_info = load_base(cfg.model, device=device, seed=cfg.seed, ws=ws)
    base = base.to(memory_format=LAYOUTS[cfg.layout])
    view = base_view(base)
    resolve_adapt(cfg.adapt, view.kind)  # hyper-bn on a studio base: refused before anything loads further
    images, labels, classes = dataset.load_tensors(view.resolution)  # any size in: resized to the base's
    images = images.contiguous(memory_format=LAYOUTS[cfg.layout])
    if len(images) < MIN_IMAGES:
        raise UserError(f"BSA needs at least {MIN_IMAGES} images; dataset {dataset.name!r} has {len(images)}.")
    perceptual_name = resolve_perceptual(cfg.perceptual, view.kind)
    perceptual = None if perceptual_name == "none" else load_vgg16(perceptual_name, device=device, seed=cfg.seed).to(
        memory_format=LAYOUTS[cfg.layout])
    return BSATrainer(cfg, base, images, labels, classes, perceptual=perceptual, device=device,
                      meta={**meta, "base_model": cfg.model, "resolution": view.resolution, "perceptual": perceptual_name,
                            **({"base": base_info} if base_info else {})})


def load_sampler(tensors: dict[str, torch.Tensor], meta: dict, *, device: str | torch.device,
                 base: nn.Module | None = None) -> BSAAdapter:
    """Rebuild a trained adapter from a checkpoint, for sampling, on its frozen base: loaded here (a studio base: the
    very weights the run was trained on, or a refusal), or `base` when given (already loaded, and the same base: a
    blend shares one between two runs)."""
    cfg = BSAConfig.from_dict(meta["config"])
    if base is None:
        base, _ = load_base(cfg.model, device=device, seed=cfg.seed, expect=meta.get("base"))
        base = base.to(memory_format=LAYOUTS[cfg.layout])
    return BSAAdapter.from_checkpoint(base, tensors, meta)


# -- bases ---------------------------------------------------------------------------------------
STUDIO_BASES = ("studio-base",)  # shipped in checkpoints/ (scripts/train_studio_base.py makes it)


def _studio_folder(model: str) -> Path | None:
    """The folder of a studio base named `model` (a name under checkpoints/, or a path), or None when it is not one."""
    from studio.models.biggan import CHECKPOINTS_DIR, is_path

    if model.startswith(RUN_BASE) or model.startswith("tiny"):
        return None
    folder = Path(model).expanduser() if is_path(model) else CHECKPOINTS_DIR / model
    if model in STUDIO_BASES or (folder / STUDIO_BASE_FILES[0]).is_file():
        return folder
    return None


def _complete_studio_folder(model: str, folder: Path) -> Path:
    """`folder`, once it holds every file of a studio base; else a UserError naming what is missing."""
    missing = [f for f in STUDIO_BASE_FILES if not (folder / f).is_file()]
    if missing:
        how = " (python scripts/train_studio_base.py makes it)" if model in STUDIO_BASES else ""
        raise UserError(f"The studio base {model!r} is not complete: {folder} has no {' or '.join(missing)}{how}.")
    return folder


def base_kind(model: str) -> str:
    """"studio" for the studio's own generators (studio-base, run:NAME, a folder with model.safetensors), else "biggan"."""
    return "studio" if model.startswith(RUN_BASE) or _studio_folder(model) is not None else "biggan"


def resolve_perceptual(name: str, kind: str) -> str:
    """auto: VGG16 for a BigGAN (downloaded if need be, as before); for a studio base only when it is on this machine,
    so the offline base trains offline."""
    if name != "auto":
        return name
    if kind == "biggan":
        return "vgg16"
    from studio.models.vgg import resolve_vgg16

    return "vgg16" if resolve_vgg16(download=False).path is not None else "none"


def load_base(model: str, *, device: str | torch.device, seed: int = 0, ws=None,
              expect: dict | None = None) -> tuple[nn.Module, dict | None]:
    """The frozen generator `model` names, in eval(), and for a studio base what identifies it (saved with the run,
    given back as `expect` to load exactly that again)."""
    if base_kind(model) == "studio":
        return load_studio_base(model, device=device, ws=ws, expect=expect)
    from studio.models.biggan import load_biggan

    return load_biggan(model, device=device, seed=seed), None


def _base_run(model: str, ws, expect: dict | None):
    from studio.run import RunFolder
    from studio.workspace import validate_name

    name = validate_name(model[len(RUN_BASE):], "run")
    if expect is not None:
        run = RunFolder(Path(expect["path"]))
        if not run.exists():
            raise UserError(f"Run {name!r}, the cGAN this BSA run adapts, is gone (it was at {run.path}): a BSA run keeps "
                            "only its adapter, so it cannot sample without that run.")
    elif ws is None:
        raise UserError(f"--model {model} names a run, and runs belong to a workspace: none was given.")
    else:
        run = RunFolder(ws.run_dir(name))
        if not run.exists():
            raise UserError(f"There is no run {name!r} to adapt: --model run:NAME takes a finished cGAN run of this "
                            "workspace.")
    method = run.read_config().get("method")
    if method != "cgan":
        raise UserError(f"Run {name!r} is a {method} run: BSA adapts the generator of a cGAN run (or a BigGAN, or "
                        "studio-base).")
    if expect is None and not run.has_checkpoint():
        raise UserError(f"Run {name!r} has no checkpoint yet: let it train until one is saved, then adapt it.")
    return run


def load_studio_base(model: str, *, device: str | torch.device = "cpu", ws=None,
                     expect: dict | None = None) -> tuple[nn.Module, dict]:
    """The EMA generator of a studio base, frozen, and its identity: where it is, which step, its weights' fingerprint.

    With `expect` (a run's saved identity) the same weights or a UserError: an adapter only means something on the
    exact generator it was trained on, so a base run trained further is read at the step the adapter knew."""
    import json

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from studio.methods.cgan import CGANConfig
    from studio.methods.cgan import load_sampler as load_cgan_sampler

    if model.startswith(RUN_BASE):
        run = _base_run(model, ws, expect)
        step = (expect or {}).get("step")
        ckpt = run.load_snapshot(step) if step in run.snapshot_steps() else run.load_checkpoint()
        tensors, meta = ckpt.section("g_ema"), ckpt.meta
        ident = {"kind": "run", "run": run.name, "path": str(run.path.resolve()), "step": int(meta["step"])}
    else:
        folder = _complete_studio_folder(model, _studio_folder(model))
        try:
            tensors = {k[len("g_ema/"):]: v for k, v in load_file(str(folder / STUDIO_BASE_FILES[0])).items()
                       if k.startswith("g_ema/")}
            meta = json.loads((folder / STUDIO_BASE_FILES[1]).read_text())
            meta["config"], meta["classes"]  # noqa: B018 - a config.json without them is not a studio base's
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"The studio base in {folder} could not be read ({type(exc).__name__}: {exc}): replace it "
                            "with a fresh copy.") from None
        ident = {"kind": "folder", "path": str(folder.resolve())}
    fingerprint = tensor_fingerprint(tensors)
    if expect is not None and expect.get("fingerprint") != fingerprint:
        raise UserError(f"The base generator {model!r} has changed since this BSA run was trained (its weights differ), "
                        "and an adapter only fits the generator it was trained on: train a new BSA run on it.")
    try:
        g = load_cgan_sampler({f"g_ema/{k}": v for k, v in tensors.items()}, meta, device=device).g
    except (RuntimeError, UserError, TypeError) as exc:
        raise UserError(f"The base generator {model!r} could not be built from its weights ({exc}).") from None
    cfg = CGANConfig.from_dict(meta["config"])
    return g.eval().requires_grad_(False), {**ident, "fingerprint": fingerprint, "arch": cfg.arch,
                                            "resolution": cfg.resolution, "classes": list(meta["classes"])}


def check_job(ws, spec) -> None:
    """Before a job starts: the base it adapts and the VGG16 of its perceptual loss are here or downloadable."""
    from studio.models.vgg import resolve_vgg16

    model = spec.config.get("model") or BSAConfig.model
    check_base(spec.config, ws)
    resolve_adapt(spec.config.get("adapt") or BSAConfig.adapt, base_kind(model))
    if resolve_perceptual(spec.config.get("perceptual") or BSAConfig.perceptual, base_kind(model)) == "vgg16":
        source = resolve_vgg16()
        if not source.available:
            raise UserError(f"VGG16 for the perceptual loss is {source.status}, then start again "
                            "(or choose Perceptual loss: none).")


def check_base(config: dict[str, Any], ws=None) -> None:
    """The base a BSA config adapts is here (or, a BigGAN, downloadable): training, or sampling a run as a blend does.
    A run:NAME base is looked up only with the workspace `ws`."""
    from studio.models.biggan import resolve_biggan

    model = config.get("model") or BSAConfig.model
    if model.startswith(RUN_BASE):
        if ws is not None:
            _base_run(model, ws, None)
        return
    folder = _studio_folder(model)
    if folder is not None:
        _complete_studio_folder(model, folder)
        return
    source = resolve_biggan(model)
    if not source.available:
        raise UserError(f"BigGAN {source.name!r} is {source.status}, then start again.")


METHOD = Method("bsa", title="BSA: adapt a pretrained generator, BigGAN-deep or the studio's own (frozen; only "
                                  "scale/shift, class and latents learn)",
                help="Batch Statistics Adaptation of a pretrained generator (BigGAN-deep, studio-base or a cGAN run)", config=BSAConfig, presets=PRESETS,
                preset_titles=PRESET_TITLES, loop={"iters": 1000, "sample_every": 100, "checkpoint_every": 500},
                check=check_job, build_trainer=build_trainer, load_sampler=load_sampler,
                can=frozenset({"reconstruct", "compare", "class_mix"}))
