"""A toy training method, to show what a new method takes: this module and one line in studio.methods.METHODS.

It learns one colour per class (the class's mean image, blurred to a flat colour) by gradient descent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from studio.methods import Method, class_indices
from studio.options import option


@dataclass
class ToyConfig:
    lr: float = option(0.5, label="Learning rate", min=0, max=10)
    resolution: int = option(16, label="Resolution (px)", min=8, max=64)
    seed: int = option(0, label="Seed", min=0)

    @classmethod
    def from_dict(cls, d: dict) -> "ToyConfig":
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


class ToySampler:
    def __init__(self, colours: torch.Tensor, classes: list[str], resolution: int):
        self.colours, self.classes, self.resolution = colours, classes, resolution

    def sample(self, n: int, *, label: str | None = None, seed: int = 0, **_) -> torch.Tensor:
        c = class_indices(self.classes, label, n)
        return self.colours[c].reshape(n, 3, 1, 1).expand(n, 3, self.resolution, self.resolution).tanh()


class ToyTrainer:
    def __init__(self, cfg: ToyConfig, images, labels, classes, meta: dict):
        self.cfg, self.images, self.labels, self.classes, self.meta = cfg, images, labels, classes, meta
        self.colours = torch.zeros(len(classes), 3, requires_grad=True)
        self.opt = torch.optim.SGD([self.colours], lr=cfg.lr)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        target = self.images.mean(dim=(2, 3)).clamp(-0.99, 0.99).atanh()
        loss = (self.colours[self.labels] - target).pow(2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    def preview(self) -> tuple[torch.Tensor, int]:
        return ToySampler(self.colours.detach(), self.classes, self.cfg.resolution).sample(len(self.classes)), len(self.classes)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"colours": self.colours.detach().clone()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.colours.copy_(tensors["colours"])

    def checkpoint_meta(self) -> dict:
        return {**self.meta, "method": "toy", "config": asdict(self.cfg), "classes": self.classes}


def build_trainer(cfg: ToyConfig, dataset, *, device, meta: dict, ws=None) -> ToyTrainer:
    images, labels, classes = dataset.load_tensors(cfg.resolution)
    return ToyTrainer(cfg, images, labels, classes, meta)


def load_sampler(tensors: dict[str, torch.Tensor], meta: dict, *, device) -> ToySampler:
    return ToySampler(tensors["colours"], meta["classes"], ToyConfig.from_dict(meta["config"]).resolution)


METHOD = Method("toy", title="Toy: one flat colour per class", help="a toy method that learns each class's colour",
                config=ToyConfig, presets={"quick": {"iters": 3, "lr": 0.25}}, preset_titles={"quick": "3 steps"},
                loop={"iters": 5, "sample_every": 1, "checkpoint_every": 5}, build_trainer=build_trainer,
                load_sampler=load_sampler)
