"""CLIP prompt guidance, and blending two fine-tuned domains under a prompt.

A prompt steers a generator by gradient ascent on CLIP's cosine similarity between the prompt and
random cutouts of the image (big-sleep's recipe): the latent z and a class mix always learn; with two
BSA runs of the same base, a per-layer mix between their adaptations learns too (or is set by hand).
`PromptGuide` is a studio.train TrainingMethod, so a blend runs through the one training loop: status,
previews (the frames), metrics (the score per step), stop and checkpoints come with it.
The blend is registered as a method (`METHOD`, config `BlendConfig`), so it is a job like training.
What it steers is a run's studio.methods.Sampler (its class_mix capability: `mix_classes`), through `SamplerTarget`.
Its result (image, frames, scores, result.json) lives in the run's folder, runs/<name>/result/; exports/ gets copies.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from studio.devices import PRECISIONS, adam, autocast, resolve_precision
from studio.errors import UserError
from studio.methods import Method
from studio.methods.bsa import BSAAdapter
from studio.options import check_values, option


@dataclass
class GuideConfig:
    prompt: str = option(label="Prompt", required=True,
                         help="what the image should show; several with weights: 'a:1 | b:0.5'")
    negative: str = option("", label="Negative prompt", help="what it should not show (same syntax)")
    steps: int = option(100, label="Steps", min=1, max=100_000, why_max="a blend settles within a few hundred steps")
    cutouts: int = option(32, label="Cutouts", min=1, max=256,  # 16-64 typical; fewer is faster and noisier
                          help="crops CLIP sees per step: more is steadier and slower")
    cut_min: float = option(0.5, label="Smallest cutout", min=0, max=1)  # crop side / image side, from [cut_min, cut_max]
    cut_max: float = option(0.95, label="Largest cutout", min=0, max=1)
    lr: float = option(0.05, label="Learning rate", min=0, max=10)  # Adam, on z, the class mix and the layer mix
    mix: str = option("auto", label="Mix",  # or one number in [0, 1] (0 = A, 1 = B), or one per layer
                      help="auto: the prompt decides the per-layer mix; or 0..1 (0 = all A, 1 = all B)")
    latent_weight: float = option(1.0, label="Latent weight", min=0)  # penalty on z's energy above a typical sample's
    ema: float = option(0.9, label="EMA", min=0, max=1)  # the result is rendered from an EMA of the parameters
    negative_weight: float = option(0.5, label="Negative weight", min=0)
    precision: str = option("auto", label="Precision", choices=PRECISIONS,  # bench/blend_step.py --precision fp32 bf16
                            help="auto: bf16 autocast for the generator and CLIP on GPUs with fast bf16, fp32 on a CPU "
                                 "(measured no faster there); the optimised values stay fp32")
    seed: int = option(0, label="Seed", min=0)

    def __post_init__(self) -> None:
        if not parse_prompts(self.prompt):
            raise UserError("Write a prompt: what the image should show, e.g. 'a stained glass window of a city'.")
        if not 1 <= self.cutouts <= 256:
            raise UserError(f"Cutouts must be between 1 and 256, not {self.cutouts}.")
        if not 0 < self.cut_min <= self.cut_max <= 1:
            raise UserError("Cutout sizes need 0 < cut_min ≤ cut_max ≤ 1.")
        if self.steps < 1:
            raise UserError("Steps must be at least 1.")
        if self.precision not in PRECISIONS:
            raise UserError(f"Precision is one of {', '.join(PRECISIONS)}, not {self.precision!r}.")
        self.mix_values()  # checks it

    def mix_values(self) -> list[float] | None:
        """None for auto; else one value for every layer, or one per layer (comma-separated)."""
        if self.mix == "auto":
            return None
        try:
            values = [float(v) for v in str(self.mix).split(",")]
        except ValueError:
            raise UserError(f"--mix is 'auto', a number from 0 to 1, or one such number per layer separated by "
                            f"commas; not {self.mix!r}.") from None
        if not all(0 <= v <= 1 for v in values):
            raise UserError(f"Mix values must be between 0 (all A) and 1 (all B), not {self.mix}.")
        return values


@dataclass
class BlendConfig(GuideConfig):
    """A blend job: the guidance settings, and which runs, CLIP and outputs."""

    a: str | None = option(None, label="Run A", required=True, help="a trained run (BSA or cGAN)")
    b: str | None = option(None, label="Run B (optional)", help="a second BSA run of the same BigGAN: blend the two domains")
    clip: str = option("ViT-B-32", label="CLIP", help="CLIP model: ViT-B-32 (LAION-2B weights), another open_clip name, "
                       "tiny, local-dir:FOLDER or a weights file")
    compare: bool = option(False, label="Compare with the base BigGAN (BSA runs)",
                           help="also guide the unadapted base BigGAN with the same prompt and seed")
    out: str | None = option(None, label="Output", required=True, help="the final image, FILE.png (a copy)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.a:
            raise UserError("Pick run A: a trained BSA or cGAN run.")
        if self.out is not None and not self.out.lower().endswith(".png"):
            raise UserError(f"--out must be a .png file, not {self.out!r}.")


def parse_prompts(text: str) -> list[tuple[str, float]]:
    """'a stained glass city:1 | fog:0.5' → [(text, weight)]; a weight is a number after the last ':'."""
    prompts = []
    for part in (text or "").split("|"):
        part = part.strip()
        match = re.fullmatch(r"(.*?):\s*(-?\d+(?:\.\d+)?)", part)
        body, weight = (match.group(1).strip(), float(match.group(2))) if match else (part, 1.0)
        if body:
            prompts.append((body, weight))
    return prompts


class Guidable(Protocol):
    """What the guide needs from a generator: z size, the classes it can mix, the layers it can mix."""

    z_dim: int
    class_names: list[str]
    mix_names: list[str]
    init_scale: float  # std of a typical z

    def render(self, z: torch.Tensor, class_weights: torch.Tensor, mix: torch.Tensor | None) -> torch.Tensor: ...


class BlendedAdapter(BSAAdapter):
    """Two BSA adapters of one base, mixed per layer: p = (1 − m)·A + m·B (m = 0: all A, 1: all B).

    Owns no parameters: the hooks it attaches read mixtures of A's and B's, so the mix gets gradients.
    """

    def __init__(self, a: BSAAdapter, b: BSAAdapter):
        nn.Module.__init__(self)
        if a.model is not b.model:
            raise ValueError("both adapters must sit on the same base model object")
        if a.adapt != b.adapt or set(a.bn_scale) != set(b.bn_scale):
            raise UserError(f"The two runs adapt BigGAN differently ({a.adapt} vs {b.adapt}): blend runs trained "
                            "with the same --adapt mode.")
        self.base, self.adapt, self.truncation = a.base, a.adapt, a.truncation
        self.parts = nn.ModuleList([a, b])
        self.bn_scale = a.bn_scale  # attach() hooks every key present here
        self.classes = [f"A: {c}" for c in a.classes] + [f"B: {c}" for c in b.classes]
        self._hooks = []
        self.layer_of = {key: layer_group(key) for key in a.bn_scale}
        self.mix_names = mix_layers(a.bn_scale)
        self.mix = torch.zeros(len(self.mix_names))

    @property
    def class_embed(self) -> torch.Tensor:
        a, b = self.parts
        return torch.cat([a.class_embed, b.class_embed])

    @property
    def free_latents(self) -> bool:
        return any(part.free_latents for part in self.parts)

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.parts
        return tuple(torch.cat(pair) for pair in zip(a.latent_stats(), b.latent_stats()))

    def _lerp(self, x: torch.Tensor, y: torch.Tensor, group: str) -> torch.Tensor:
        return torch.lerp(x, y, self.mix[self.mix_names.index(group)].to(x))

    def first_affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.parts
        return self._lerp(a.first_scale, b.first_scale, "first"), self._lerp(a.first_shift, b.first_shift, "first")

    def bn_affine(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.parts
        group = self.layer_of[key]
        return self._lerp(a.bn_scale[key], b.bn_scale[key], group), self._lerp(a.bn_shift[key], b.bn_shift[key], group)


def mix_layers(bn_keys) -> list[str]:
    """The mixable layers of an adapter, coarse to fine: the first affine, then each generator block."""
    return ["first", *sorted({layer_group(k) for k in bn_keys}, key=_group_order)]


def layer_group(bn_key: str) -> str:
    """A batch norm's generator block ('layers_3_bn_0' → 'layers_3'); the final batch norm is its own group."""
    parts = bn_key.split("_")
    return "_".join(parts[:2]) if parts[0] == "layers" else bn_key


def _group_order(name: str) -> tuple[int, str]:
    match = re.match(r"layers_(\d+)", name)
    return (int(match.group(1)), "") if match else (10**6, name)


class SamplerTarget:
    """A run's sampler (studio.methods.Sampler with the class_mix capability) as what the guide steers: z and a mix
    of its classes; for two blended BSA runs (a BlendedAdapter), the per-layer mix too."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.class_names = list(sampler.classes)
        self.mix_names = list(getattr(sampler, "mix_names", []))  # only a blend of two runs has layers to mix
        self.z_dim = sampler.z_dim
        self.init_scale = sampler.default_truncation  # a typical z: what sampling draws

    def render(self, z, class_weights, mix):
        if mix is not None:
            self.sampler.mix = mix
        return self.sampler.mix_classes(z, class_weights)


class BaseBigGANGuidable:
    """The pretrained BigGAN-deep with no adaptation: a mix over its 1000 ImageNet classes."""

    def __init__(self, model: nn.Module, truncation: float = 1.0):
        self.model, self.truncation = model, truncation
        self.embeddings = model.embeddings.weight.t()  # [1000, 128]
        from studio.generate import imagenet_classes

        self.class_names = list(imagenet_classes())
        self.mix_names: list[str] = []
        self.z_dim = model.config.z_dim
        self.init_scale = 0.5

    def render(self, z, class_weights, mix):
        adapter = self.model.__dict__.get("_bsa_adapter")
        if adapter is not None:
            adapter.detach_hooks()  # the base must run unadapted; whoever needs the adapter attaches it again
        return self.model.generator(torch.cat([z, class_weights @ self.embeddings], dim=1), self.truncation)


def guide_precision(name: str, device: torch.device) -> str:
    """The generator's precision in a guidance step: `name` resolved as studio.devices does, except that auto is fp32
    on a CPU. There one image (or a few) steered through BigGAN-deep-256 with a blend's hooks ran no faster in bf16
    (forward + backward on one AMX core: batch 1 1.8 s either way, batch 4 9.2-9.8 s either way): the convolutions
    gain, but the batch norms and the adapters' hooks compute in fp32 and the casts around them eat it."""
    if name == "auto" and device.type == "cpu":
        return "fp32"
    return resolve_precision(name, device)


def clip_precision(precision: str, device: torch.device) -> str:
    """The precision CLIP's image tower runs in, given the resolved precision of the rest of a hot loop.

    fp32 on a CPU: under bf16 autocast there, open_clip's residual stream turns bf16 while nn.MultiheadAttention's
    weights stay fp32, so attention leaves its fused path and the in-projection runs as a bmm that copies its weight
    once per token position (50 × 768 × 2304 a layer for ViT-B/32). Measured on one AMX core, ViT-B/32 on 32 images:
    forward 1.6 s fp32 against 1.9-2.5 s bf16, forward + backward 4.2-4.35 s against 3.9-4.9 s (docs/performance.md).
    """
    return "fp32" if device.type == "cpu" else precision


def make_cutouts(images: torch.Tensor, n: int, size: int, generator: torch.Generator,
                 cut_min: float = 0.5, cut_max: float = 0.95) -> torch.Tensor:
    """n random square crops of images[0] (side cut_min..cut_max of the image), resized to CLIP's size, half flipped."""
    side = images.shape[-1]
    fractions = torch.rand(n, generator=generator) * (cut_max - cut_min) + cut_min
    offsets = torch.rand(n, 2, generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    crops = []
    for frac, (ox, oy), flip in zip(fractions.tolist(), offsets.tolist(), flips.tolist()):
        s = max(1, round(side * frac))
        x, y = int(ox * (side - s + 1)), int(oy * (side - s + 1))
        crop = F.interpolate(images[:, :, y:y + s, x:x + s], size=(size, size), mode="bilinear", align_corners=False)
        crops.append(crop.flip(-1) if flip else crop)
    return torch.cat(crops)


class PromptGuide:
    """Optimise z, a class mix and (for blends) a per-layer mix so that the image matches the prompt."""

    def __init__(self, cfg: GuideConfig, target: Guidable, clip, *, device: torch.device, meta: dict | None = None):
        self.cfg, self.target, self.clip, self.device = cfg, target, clip, torch.device(device)
        self.meta = meta or {}
        # The generator's and CLIP's forward passes (and so their backward) under autocast; z, the mixes, Adam, the
        # similarity and the previews/result image stay fp32.
        self.precision = self.meta["precision"] = guide_precision(cfg.precision, self.device)
        self.clip_precision = self.meta["clip_precision"] = clip_precision(self.precision, self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        positives = parse_prompts(cfg.prompt)
        negatives = parse_prompts(cfg.negative)
        self.texts = clip.embed_texts([t for t, _ in positives]).to(device)
        self.weights = torch.tensor([w for _, w in positives], device=device)
        self.negatives = clip.embed_texts([t for t, _ in negatives]).to(device) if negatives else None
        z = target.init_scale * torch.randn(1, target.z_dim, generator=self.gen)
        self.params = nn.ParameterDict({"z": nn.Parameter(z.to(device)),
                                        "classes": nn.Parameter(torch.zeros(len(target.class_names), device=device))})
        self.fixed_mix = None
        if target.mix_names:
            if cfg.mix == "auto":
                self.params["mix"] = nn.Parameter(torch.zeros(len(target.mix_names), device=device))  # sigmoid(0) = ½
            else:
                values = cfg.mix_values()
                if len(values) not in (1, len(target.mix_names)):
                    raise UserError(f"These runs blend {len(target.mix_names)} layers ({', '.join(target.mix_names)}); "
                                    f"give one mix value, or {len(target.mix_names)}, not {len(values)}.")
                self.fixed_mix = torch.tensor(values * (len(target.mix_names) // len(values)), device=device)
        self.ema = {k: v.detach().clone() for k, v in self.params.items()}
        self.opt = adam(self.params.values(), device, lr=cfg.lr)
        self.scores: list[float] = []
        self.frames: list[torch.Tensor] = []

    # -- the parameters as the generator takes them ---------------------------------------
    def _mix(self, params) -> torch.Tensor | None:
        return torch.sigmoid(params["mix"]) if "mix" in params else self.fixed_mix

    def render(self, params=None) -> torch.Tensor:
        params = self.params if params is None else params
        return self.target.render(params["z"], torch.softmax(params["classes"], 0)[None], self._mix(params))

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The prompt's CLIP score of whole images: weighted mean cosine similarity with the positive prompts."""
        with autocast(self.device, self.clip_precision):
            emb = self.clip.embed_images(F.interpolate(images.float(), size=(self.clip.image_size,) * 2, mode="bilinear",
                                                       align_corners=False))
        return (emb.float() @ self.texts.t() * self.weights).sum(1) / self.weights.sum()

    # -- TrainingMethod -------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with autocast(self.device, self.precision):
            images = self.render()
        images = images.float()
        cuts = make_cutouts(images, cfg.cutouts, self.clip.image_size, self.gen, cfg.cut_min, cfg.cut_max).to(self.device)
        with autocast(self.device, self.clip_precision):
            emb = self.clip.embed_images(cuts)
        emb = emb.float()  # the similarity and every loss term reduce in fp32
        similarity = ((emb @ self.texts.t()) * self.weights).sum(1).mean() / self.weights.sum()
        loss = -similarity
        losses = {"similarity": similarity.detach()}
        if self.negatives is not None:
            away = (emb @ self.negatives.t()).mean()
            loss = loss + cfg.negative_weight * away
            losses["negative"] = away.detach()
        z = self.params["z"]
        energy = F.relu(z.pow(2).mean() - self.target.init_scale ** 2)  # only what lies beyond a typical sample
        loss = loss + cfg.latent_weight * energy
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for k, v in self.params.items():
                self.ema[k].lerp_(v, 1 - cfg.ema)
            score = self.score(images.detach())[0]  # the image this step optimised, judged whole
        self.scores.append(float(score))
        return {"loss": loss.detach(), **losses, "score": score, "latent_energy": energy.detach()}

    @torch.no_grad()
    def preview(self) -> tuple[torch.Tensor, int]:
        image = self.render(self.ema).float().cpu()
        self.frames.append(image[0])
        return image, 1

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**{f"params/{k}": v.detach() for k, v in self.params.items()},
                **{f"ema/{k}": v for k, v in self.ema.items()}}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.params.items():
                v.copy_(tensors[f"params/{k}"])
                self.ema[k].copy_(tensors[f"ema/{k}"])

    def checkpoint_meta(self) -> dict[str, Any]:
        return {**self.meta, "method": "blend", "config": asdict(self.cfg), "mix_names": self.target.mix_names}

    # -- results --------------------------------------------------------------------------
    @torch.no_grad()
    def result(self) -> dict[str, Any]:
        """The final image (from the averaged parameters), its score, the per-layer mix and the class mix."""
        image = self.render(self.ema)
        mix = self._mix(self.ema)
        classes = torch.softmax(self.ema["classes"], 0)
        top = classes.argsort(descending=True)[:5]
        return {"image": image[0].float().cpu(), "final_score": float(self.score(image)[0]), "scores": list(self.scores),
                "mix": [round(float(m), 4) for m in mix] if mix is not None else [],
                "mix_layers": list(self.target.mix_names),
                "classes": {self.target.class_names[i]: round(float(classes[i]), 4) for i in top.tolist()}}


def strip(frames: list[torch.Tensor], max_frames: int = 12) -> torch.Tensor:
    """At most max_frames evenly spaced frames (first and last included) for a film strip."""
    if len(frames) <= max_frames:
        return torch.stack(frames)
    idx = [round(i * (len(frames) - 1) / (max_frames - 1)) for i in range(max_frames)]
    return torch.stack([frames[i] for i in idx])


def load_target(ws, a: str, b: str | None, device: torch.device) -> SamplerTarget:
    """The generator to guide: run A alone, or runs A and B blended (two BSA runs of one base model)."""
    from studio.methods import load_run_sampler, method
    from studio.run import RunFolder

    sampler, config, _ = load_run_sampler(RunFolder(ws.run_dir(a)), device)
    if "class_mix" not in method(config["method"]).can:
        raise UserError(f"Run {a!r} is a {config['method']} run, whose classes do not mix: guide a BSA or cGAN run.")
    if b is None:
        return SamplerTarget(sampler)
    if config["method"] != "bsa":
        raise UserError(f"Blending needs two BSA runs; {a!r} is a {config['method']} run (blend two of its classes "
                        "by guiding it alone).")
    run_b = RunFolder(ws.run_dir(b))
    config_b = run_b.read_config()
    if config_b["method"] != "bsa":
        raise UserError(f"Blending needs two BSA runs; {b!r} is a {config_b['method']} run.")
    if config_b["config"]["model"] != config["config"]["model"]:
        raise UserError(f"Runs {a!r} and {b!r} adapt different BigGANs ({config['config']['model']} vs "
                        f"{config_b['config']['model']}); blend runs of the same base model.")
    sampler_b, _, _ = load_run_sampler(run_b, device, base=sampler.model)  # both adapters on one BigGAN
    return SamplerTarget(BlendedAdapter(sampler, sampler_b))


def blend_name(prompt: str, taken) -> str:
    """A blend's default run name: from the prompt's first words, made unique."""
    from studio.workspace import free_name

    return free_name("blend-" + (prompt[:32].lower() or "prompt"), taken)


def run_blend(ws, *, run_name: str, a: str, b: str | None, cfg: GuideConfig, clip: str = "ViT-B-32",
              device: str = "auto", compare: bool = False, should_stop=lambda: False, on_progress=None) -> dict[str, Any]:
    """Guide (and blend) under a prompt through the training loop; write runs/<name>/, its result in result/."""
    from studio.data.augment import image_grid, to_pil
    from studio.methods import method
    from studio.models.clip import load_clip
    from studio.run import RunFolder
    from studio.train import LoopConfig, resolve_device, train
    from studio.workspace import validate_name

    validate_name(run_name, "run")
    run = RunFolder(ws.run_dir(run_name))
    if run.exists():
        raise UserError(f"Run {run_name!r} already exists: choose another name for this blend.")
    dev = resolve_device(device)
    target = load_target(ws, a, b, dev)
    if compare and "compare" not in method(RunFolder(ws.run_dir(a)).read_config()["method"]).can:
        # before the loop: a blend must not train and then refuse
        raise UserError("Compare needs a BSA run: a cGAN has no pretrained base to compare with.")
    encoder = load_clip(clip, device=dev)
    run.write_config({"method": "blend", "a": a, "b": b, "clip": clip, "config": asdict(cfg), "device": str(dev)})
    guide = PromptGuide(cfg, target, encoder, device=dev, meta={"run": run_name, "a": a, "b": b, "clip": clip})
    loop = LoopConfig(iters=cfg.steps, sample_every=max(1, cfg.steps // 12), checkpoint_every=10**9)
    state = train(run, guide, loop, should_stop=lambda: should_stop() or run.stop_file.exists(), on_progress=on_progress)
    result = guide.result()
    image, frames = result.pop("image"), strip(guide.frames)
    report = {"run": run_name, "a": a, "b": b, "prompt": cfg.prompt, "negative": cfg.negative, "seed": cfg.seed,
              "clip": encoder.name, "state": state, **result, "image": str(run.save_result_image("image", to_pil(image))),
              "frames": str(run.save_result_image("frames", image_grid(frames, nrow=len(frames))))}
    if compare:  # the same prompt and seed on the unadapted BigGAN (BSA runs) — is fine-tuning helping?
        adapted = target.sampler
        base = PromptGuide(cfg, BaseBigGANGuidable(adapted.model, adapted.truncation), encoder, device=dev)
        for step in range(cfg.steps):
            if should_stop() or run.stop_file.exists():
                break
            base.train_step(step)
        base_result = base.result()
        report["base"] = {"final_score": base_result["final_score"], "scores": base_result["scores"],
                          "image": str(run.save_result_image("base", to_pil(base_result["image"])))}
    run.save_result(report)
    return report


def _legacy_result(ws, name: str) -> Path:
    """Where a blend made before results lived with their run kept its report (read while the run exists)."""
    return ws.exports / "blends" / name / "result.json"


def blend_result_path(ws, name: str) -> Path | None:
    """The file a blend's report is read from, or None before it has one."""
    from studio.run import RunFolder

    run = RunFolder(ws.run_dir(name))
    if run.result_path.exists():
        return run.result_path
    return _legacy_result(ws, name) if run.exists() and _legacy_result(ws, name).exists() else None


def blend_result(ws, name: str) -> dict[str, Any] | None:
    """A blend's report (runs/<name>/result/result.json), or None before it has one."""
    import json

    from studio.run import RunFolder

    run = RunFolder(ws.run_dir(name))
    result = run.read_result()
    if result is None and run.exists() and _legacy_result(ws, name).exists():
        result = json.loads(_legacy_result(ws, name).read_text())
    return result


def blend_results(ws) -> list[dict[str, Any]]:
    """Every blend's report, newest first; a run deleted takes its result with it."""
    found = []
    for run_dir in ws.runs.iterdir() if ws.runs.exists() else ():
        try:
            path = blend_result_path(ws, run_dir.name)
            result = blend_result(ws, run_dir.name) if path else None
        except (UserError, OSError, ValueError):
            continue  # a damaged result is said where the run is opened, not here
        if result:
            found.append((path.stat().st_mtime, result))
    return [result for _, result in sorted(found, key=lambda item: -item[0])]


def execute_blend(ws, spec, *, should_stop=lambda: False, on_progress=None, **_) -> str:
    """Run a blend job's spec (studio.jobspec.JobRequest, method "blend"); returns the state it ended in.

    With `out` (a .png path) the final image is copied there too."""
    import shutil

    cfg = BlendConfig(**check_values(BlendConfig, spec.config))
    guide = {k: v for k, v in asdict(cfg).items() if k in GuideConfig.__dataclass_fields__}
    report = run_blend(ws, run_name=spec.run, a=cfg.a, b=cfg.b or None, cfg=GuideConfig(**guide), clip=cfg.clip,
                       device=spec.device, compare=cfg.compare, should_stop=should_stop, on_progress=on_progress)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report["image"], cfg.out)
    return report["state"]


def check_blend(ws, spec) -> None:
    """Before a blend job starts: its runs have checkpoints, compare has a base to compare with, CLIP is here."""
    from studio.methods import method
    from studio.models.clip import resolve_clip
    from studio.run import RunFolder

    cfg = BlendConfig(**check_values(BlendConfig, spec.config))
    for name in filter(None, (cfg.a, cfg.b)):
        if not RunFolder(ws.run_dir(name)).has_checkpoint():
            raise UserError(f"Run {name!r} has no checkpoint yet: train it first.")
        saved = RunFolder(ws.run_dir(name)).read_config()
        if saved["method"] == "bsa":  # a BSA run samples through its frozen BigGAN: that must be here too
            from studio.methods.bsa import check_base

            check_base(saved["config"])
    kind = RunFolder(ws.run_dir(cfg.a)).read_config()["method"]
    if cfg.compare and "compare" not in method(kind).can:
        raise UserError(f"Compare needs a BSA run: {cfg.a!r} is a {kind} run, which has no pretrained base to compare with.")
    source = resolve_clip(cfg.clip)
    if not source.available:
        raise UserError(f"CLIP {source.name!r} is {source.status}.")


METHOD = Method("blend", title="Blend: steer a run with a CLIP prompt, or blend two BSA runs",
                help="guide a run (or blend two BSA runs) with a CLIP text prompt", config=BlendConfig,
                check=check_blend, run=execute_blend)


def run_mix_layers(ws, name: str) -> list[str]:
    """The layers a blend of BSA run `name` with another can mix, read from its checkpoint (no model loaded)."""
    from studio.run import RunFolder

    adapter = RunFolder(ws.run_dir(name)).load_checkpoint().section("adapter")
    return mix_layers([k.split(".", 1)[1] for k in adapter if k.startswith("bn_scale.")])
