"""Batch Statistics Adaptation (Noguchi & Harada 2019) of a frozen BigGAN-deep.

Only small things learn: one latent per training image, one class embedding per label
(replacing ImageNet's), a per-channel scale/shift after the first linear layer, and either
  - `scale-shift`: free per-channel scale and shift on every batch-norm output (~50k params at 256 px), or
  - `hyper-bn`: additive changes to the batch-norms' scale/offset generator weights (the reference code's
    BigGAN recipe), kept as deltas so the base weights stay bit-for-bit unchanged.
All adaptation enters through forward hooks on the frozen model and starts at identity.
Loss (reference `get_loss`): L1 + 0.001·Σ VGG16 L1 (conv1_1…conv4_3) + 0.1·EMD(z, N(0,I)) + 0.02·mean(c²).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from studio.devices import PRECISIONS, autocast, resolve_precision
from studio.errors import UserError
from studio.methods import Method, class_indices, slerp
from studio.options import option
from studio.run import load_optimizer_tensors, optimizer_tensors

ADAPT_MODES = ("hyper-bn", "scale-shift")
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


@dataclass
class BSAConfig:
    model: str = option("biggan-deep-256", label="BigGAN-deep",  # a BigGAN-deep name, a local folder, or tiny
                        help="Pretrained generator to adapt: biggan-deep-128/256/512, a local folder, or tiny.")
    adapt: str = option("hyper-bn", label="What adapts", choices=ADAPT_MODES,
                        help="hyper-bn: the reference recipe; scale-shift: per-channel γ/β on every batch norm")
    batch: int = option(5, label="Batch", min=1, max=256, why_max="256 images of BigGAN-deep do not fit in a GPU's memory")  # reference: 5 per GPU
    lr: float = option(0.05, label="Learning rate (latents; others scale from it)", min=0, max=10)  # see GROUP_LR
    lr_scale: float = option(0.2, label="LR decay factor", min=0, max=1)  # every lr is multiplied by this every lr_step steps
    lr_step: int = option(3000, label="LR decay every", min=1)
    perceptual: str = option("vgg16", label="Perceptual loss", choices=("vgg16", "none", "tiny"),
                             help="VGG16 features of real and generated images compared")  # tiny: tests
    perceptual_weight: float = option(0.001, label="Perceptual weight", min=0)  # per VGG layer
    real_features: str = option("cache", label="Real features", choices=("cache", "recompute"))  # cache: the real images' VGG features, fixed, computed once (fast); recompute: every step
    layout: str = option("contiguous", label="Memory layout", choices=tuple(LAYOUTS))  # or channels_last: faster for sampling (1.15× on CPU), slower for training with VGG
    precision: str = option("auto", label="Precision", choices=PRECISIONS,  # bench/bsa_step.py --precision fp32 bf16
                            help="auto: bf16 autocast for the BigGAN and VGG forward passes where the device has fast "
                                 "bf16 (AMX/AVX-512-BF16 CPUs, recent GPUs), else fp32; parameters and losses stay fp32")
    emd_weight: float = option(0.1, label="EMD weight", min=0)
    class_weight: float = option(0.02, label="Class weight", min=0)
    z_noise: float = option(0.01, label="Latent noise", min=0)  # noise added to the learned latents at every step
    class_init: int | None = option(None, label="Start class (ImageNet index)", min=0, max=999,
                                    why_max="ImageNet has 1000 classes, 0 to 999",
                                    help="empty: the mean of all ImageNet classes")
    bn_truncation: float = option(1.0, label="BN truncation", min=0, max=1)  # which stored BN statistics the frozen model uses
    preview_truncation: float = option(0.5, label="Preview truncation", min=0, max=2)
    seed: int = option(0, label="Seed", min=0)

    def __post_init__(self) -> None:
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


def _biggan_batchnorms(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    return [(name, m) for name, m in model.generator.named_modules() if isinstance(m, BigGANBatchNorm)]


def _stats(bn: nn.Module, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The running statistics BigGANBatchNorm picks for `truncation` (same interpolation as the package)."""
    coef, start = math.modf(truncation / bn.step_size)
    start = int(start)
    if coef == 0.0:
        return bn.running_means[start], bn.running_vars[start]
    mean = bn.running_means[start] * coef + bn.running_means[start + 1] * (1 - coef)
    var = bn.running_vars[start] * coef + bn.running_vars[start + 1] * (1 - coef)
    return mean, var


class BSAAdapter(nn.Module):
    """The trainable part of BSA, attached to a frozen BigGAN-deep by hooks; `generate` runs the adapted model.

    Also a run's studio.methods.Sampler, with all three capabilities: reconstruct (and interpolate_images),
    compare (sample_base: the frozen base alone) and class_mix.
    """

    default_truncation = 0.5  # z ~ N(0, 0.5²): BSA's sampling default

    def __init__(self, base: nn.Module, *, n_images: int, classes: list[str], adapt: str, class_init: int | None = None):
        super().__init__()
        self.base = [base]  # a list keeps the frozen model out of this module's parameters and state_dict
        cfg = base.config
        self.adapt = adapt
        self.classes = list(classes)
        self.latents = nn.Parameter(torch.zeros(n_images, cfg.z_dim))
        self.register_buffer("train_labels", torch.zeros(n_images, dtype=torch.long))  # class of each latent's image
        emb = base.embeddings.weight  # [z_dim, num_classes]
        init = emb[:, class_init] if class_init is not None else emb.mean(dim=1)
        self.class_embed = nn.Parameter(init.detach().clone().repeat(len(self.classes), 1))
        width = 16 * cfg.channel_width
        self.first_scale = nn.Parameter(torch.ones(width))
        self.first_shift = nn.Parameter(torch.zeros(width))
        self.bn_scale = nn.ParameterDict()
        self.bn_shift = nn.ParameterDict()
        for name, bn in _biggan_batchnorms(base):
            key = name.replace(".", "_")
            if adapt == "scale-shift":
                self.bn_scale[key] = nn.Parameter(torch.ones(bn.num_features))
                self.bn_shift[key] = nn.Parameter(torch.zeros(bn.num_features))
            elif bn.conditional:
                self.bn_scale[key] = nn.Parameter(torch.zeros_like(bn.scale.weight_orig))
                self.bn_shift[key] = nn.Parameter(torch.zeros_like(bn.offset.weight_orig))
        self._hooks: list = []
        self.truncation = 1.0

    @property
    def model(self) -> nn.Module:
        return self.base[0]

    @property
    def z_dim(self) -> int:
        return self.model.config.z_dim

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
        gen = self.model.generator
        self._hooks.append(gen.gen_z.register_forward_hook(self._first_hook))
        for name, bn in _biggan_batchnorms(self.model):
            key = name.replace(".", "_")
            if key in self.bn_scale:
                self._hooks.append(bn.register_forward_hook(self._bn_hook(key)))
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

    def _first_hook(self, module, inputs, out):
        # gen_z's output is later viewed as (B, 4, 4, 16·ch): channels are the fastest-moving index.
        scale, shift = self.first_affine()
        return (out.view(out.shape[0], -1, scale.numel()) * scale + shift).view_as(out)

    def _bn_hook(self, key: str):
        def hook(bn, inputs, out):
            scale, shift = self.bn_affine(key)
            if self.adapt == "scale-shift":
                return out * scale[None, :, None, None] + shift[None, :, None, None]
            x, truncation, cond = inputs
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
        cond = torch.cat([z, class_mix @ self.class_embed], dim=1)
        return self.model.generator(cond, self.truncation)

    def mix_classes(self, z: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
        """Images from latents z [B, z_dim] and class weights [B, n_classes]; differentiable (guidance steers it)."""
        return self.generate(z, class_mix=class_weights)

    def class_index(self, label: str | None, n: int) -> torch.Tensor:
        return class_indices(self.classes, label, n)

    @torch.no_grad()
    def sample(self, n: int, *, label: str | None = None, truncation: float = 0.5, seed: int = 0,
               truncate: bool = False, batch: int = 16) -> torch.Tensor:
        """n new images from z ~ N(0, t²) (or truncated to ±t), same seed → same images."""
        z = sample_latents(n, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed), truncate=truncate)
        return self._batched(z, self.class_index(label, n), batch)

    @torch.no_grad()
    def grid(self, per_class: int, *, seed: int = 0, truncation: float = 0.5, batch: int = 16) -> torch.Tensor:
        """Rows are classes, columns seeds: the same latent in every row shows what the class alone changes."""
        z = sample_latents(per_class, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed))
        labels = torch.arange(len(self.classes)).repeat_interleave(per_class)
        return self._batched(z.repeat(len(self.classes), 1), labels, batch)

    @torch.no_grad()
    def interpolate_classes(self, a: str, b: str, frames: int = 8, *, seed: int = 0, truncation: float = 0.5) -> torch.Tensor:
        """One latent, class embedding mixed from class a to class b."""
        ia, ib = self.class_index(a, 1)[0], self.class_index(b, 1)[0]
        t = torch.linspace(0, 1, frames, device=self.latents.device)[:, None]
        mix = (1 - t) * nn.functional.one_hot(ia, len(self.classes)).to(t) + t * nn.functional.one_hot(ib, len(self.classes)).to(t)
        z = sample_latents(1, self.latents.shape[1], truncation, torch.Generator().manual_seed(seed)).to(t.device)
        return self.generate(z.repeat(frames, 1), class_mix=mix)

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
        return self._batched(z, self.class_index(label or self.classes[0], frames), batch)

    @torch.no_grad()
    def sample_base(self, n: int, *, imagenet_class: int, seed: int = 0, truncation: float = 0.5,
                    batch: int = 16) -> torch.Tensor:
        """The frozen BigGAN alone, as ImageNet class `imagenet_class`, from the latents `sample(n, seed=seed)` uses."""
        from studio.models.biggan import one_hot_class

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
        adapter.truncation = cfg.bn_truncation
        return adapter.to(next(base.buffers()).device)


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
        self.adapter.truncation = cfg.bn_truncation
        self.adapter.train_labels.copy_(labels)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.perceptual = perceptual
        self.opt = torch.optim.Adam(self.adapter.param_groups(cfg.lr))
        self.gen = torch.Generator().manual_seed(cfg.seed)  # all training randomness: batches, noise, EMD samples
        preview_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.preview_z = sample_latents(8, base.config.z_dim, cfg.preview_truncation, preview_gen)
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
        samples = self.adapter.generate(self.preview_z.to(self.device), classes)
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
    """Load the frozen BigGAN and VGG, put the dataset on the device at the model's resolution, and set up BSA."""
    from studio.models.biggan import load_biggan
    from studio.models.vgg import load_vgg16

    base = load_biggan(cfg.model, device=device, seed=cfg.seed).to(memory_format=LAYOUTS[cfg.layout])
    images, labels, classes = dataset.load_tensors(base.config.output_dim)
    images = images.contiguous(memory_format=LAYOUTS[cfg.layout])
    if len(images) < MIN_IMAGES:
        raise UserError(f"BSA needs at least {MIN_IMAGES} images; dataset {dataset.name!r} has {len(images)}.")
    perceptual = None if cfg.perceptual == "none" else load_vgg16(cfg.perceptual, device=device, seed=cfg.seed).to(
        memory_format=LAYOUTS[cfg.layout])
    return BSATrainer(cfg, base, images, labels, classes, perceptual=perceptual, device=device,
                      meta={**meta, "base_model": cfg.model, "resolution": base.config.output_dim})


def load_sampler(tensors: dict[str, torch.Tensor], meta: dict, *, device: str | torch.device,
                 base: nn.Module | None = None) -> BSAAdapter:
    """Rebuild a trained adapter from a checkpoint, for sampling, on its frozen base: loaded here, or `base` when
    given (already loaded, and the same BigGAN: a blend shares one between two runs)."""
    from studio.models.biggan import load_biggan

    cfg = BSAConfig.from_dict(meta["config"])
    if base is None:
        base = load_biggan(cfg.model, device=device, seed=cfg.seed).to(memory_format=LAYOUTS[cfg.layout])
    return BSAAdapter.from_checkpoint(base, tensors, meta)


def check_job(ws, spec) -> None:
    """Before a job starts: the BigGAN it adapts and the VGG16 of its perceptual loss are here or downloadable."""
    from studio.models.vgg import resolve_vgg16

    check_base(spec.config)
    if (spec.config.get("perceptual") or BSAConfig.perceptual) == "vgg16":
        source = resolve_vgg16()
        if not source.available:
            raise UserError(f"VGG16 for the perceptual loss is {source.status}, then start again "
                            "(or choose Perceptual loss: none).")


def check_base(config: dict[str, Any]) -> None:
    """The BigGAN a BSA config adapts is here or downloadable (training, or sampling a run as a blend does)."""
    from studio.models.biggan import resolve_biggan

    source = resolve_biggan(config.get("model") or BSAConfig.model)
    if not source.available:
        raise UserError(f"BigGAN {source.name!r} is {source.status}, then start again.")


METHOD = Method("bsa", title="BSA: adapt a pretrained BigGAN-deep (frozen; only scale/shift, class and latents learn)",
                help="Batch Statistics Adaptation of a pretrained BigGAN-deep", config=BSAConfig, presets=PRESETS,
                preset_titles=PRESET_TITLES, loop={"iters": 1000, "sample_every": 100, "checkpoint_every": 500},
                check=check_job, build_trainer=build_trainer, load_sampler=load_sampler,
                can=frozenset({"reconstruct", "compare", "class_mix"}))
