"""Differentiable augmentation (DiffAugment) for training GANs on small datasets.

With 25-300 images the discriminator memorises the real set within a few thousand
steps. DiffAugment (Zhao et al. 2020) applies the same random, differentiable transform
to real *and* generated images in both the D and the G step, so D cannot overfit and G
still gets gradients through the transform. The transforms follow mit-han-lab/
data-efficient-gans `DiffAugment_pytorch.py` exactly (ranges, order, padding), with
`flip` added, and take one random draw per image.

Images are float NCHW in [-1, 1]. Like the reference, translation padding and cutout
fill with 0 in that space (mid-grey, not black), and `color` does not clamp, so outputs
can leave [-1, 1]; `to_pil` clamps only for display.

Also here, for reuse: `to_tensor`/`to_pil` (PIL <-> [-1, 1] tensors) and `image_grid`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from studio.errors import UserError

AUGMENT_POLICIES: tuple[str, ...] = ("color", "translation", "cutout", "flip")

# Reference constants: translation moves up to 1/8 of a side, cutout hides half a side.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


class UnknownPolicyError(UserError, ValueError):
    """An augmentation policy name that is not one of AUGMENT_POLICIES."""


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """Turn "color,translation" (or a list of names) into a validated tuple; "none"/"" -> ()."""
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    cleaned = [str(name).strip().lower() for name in names]
    cleaned = [name for name in cleaned if name and name != "none"]
    for name in cleaned:
        if name not in AUGMENT_POLICIES:
            raise UnknownPolicyError(
                f"Unknown augmentation policy {name!r}; valid names are "
                f"{', '.join(AUGMENT_POLICIES)} (comma-separated), or 'none'."
            )
    return tuple(cleaned)


# Random draws: made on the generator's device (torch requires it) in float32, then moved
# to the image, so a seed gives the same augmentation whatever the image's dtype.
def _rand(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    r = torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=device)
    return r.to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, (n,), generator=generator, device=device).to(x.device)


def _color(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    x = x + (_rand(x, g) - 0.5)  # brightness: +[-0.5, 0.5)
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * (_rand(x, g) * 2) + gray  # saturation: x[0, 2)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, g) + 0.5) + mean  # contrast: x[0.5, 1.5)


def _translation(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    n, c, h, w = x.shape
    sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    ty = _randint(-sh, sh + 1, n, x, g)
    tx = _randint(-sw, sw + 1, n, x, g)
    # Output pixel (i, j) reads input (i + ty, j + tx); indices falling outside land on a
    # one-pixel zero border. Two gathers (rows, then columns) cost O(NCHW), batch-wide.
    x_pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(h, device=x.device) + ty[:, None] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) + tx[:, None] + 1).clamp(0, w + 1)
    x_rows = x_pad.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2))
    return x_rows.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def _cutout(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    # As in the reference the centre may sit anywhere, so the square is clipped at the
    # border and sometimes fewer than ch*cw pixels are hidden.
    top = _randint(0, h + (1 - ch % 2), n, x, g) - ch // 2
    left = _randint(0, w + (1 - cw % 2), n, x, g) - cw // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + ch)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + cw)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


def _flip(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    flip = _rand(x, g) < 0.5
    return torch.where(flip, x.flip(3), x)


_AUGMENT_FNS: dict[str, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "color": _color,
    "translation": _translation,
    "cutout": _cutout,
    "flip": _flip,
}


def diff_augment(
    x: torch.Tensor,
    policy: str | Sequence[str] = "color,translation,cutout",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Augment a batch NCHW in [-1, 1], one random draw per image, in policy order.

    Differentiable w.r.t. `x`; output has x's shape, device and dtype. Pass a seeded
    `generator` (on any device) for reproducible draws; otherwise torch's global RNG is used.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"diff_augment expects a float tensor shaped NCHW, got {x.dtype} {tuple(x.shape)}.")
    for name in parse_policy(policy):
        x = _AUGMENT_FNS[name](x, generator)
    return x


class DiffAugment(torch.nn.Module):
    """`diff_augment` as a module, so a method can hold its policy next to D."""

    def __init__(self, *, policy: str | Sequence[str] = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.policy = parse_policy(policy)  # validate once, at construction
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy, self.generator)

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy) or 'none'}"


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float32 tensor [3, H, W] in [-1, 1] (converted to RGB)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def to_pil(t: torch.Tensor) -> Image.Image:
    """Tensor [3, H, W] (or [1, 3, H, W]) in [-1, 1] -> uint8 RGB image; values are clamped."""
    t = t.detach()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"to_pil expects a tensor shaped [3, H, W], got {tuple(t.shape)}.")
    arr = ((t.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def image_grid(tensors: torch.Tensor | Sequence[torch.Tensor], nrow: int,
               padding: int = 2, pad_value: float = 1.0, row_labels: Sequence[str] | None = None) -> Image.Image:
    """Lay out same-sized [3, H, W] images in [-1, 1], `nrow` per row, as one RGB image; with `row_labels`, a
    margin on the left names the rows (the first len(row_labels) of them)."""
    batch = tensors if isinstance(tensors, torch.Tensor) else torch.stack(list(tensors))
    if batch.ndim != 4 or batch.shape[0] == 0 or nrow < 1:
        raise ValueError("image_grid needs at least one [3, H, W] image and nrow >= 1.")
    batch = batch.detach().float().cpu()
    n, c, h, w = batch.shape
    rows = -(-n // nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for k in range(n):
        top, left = padding + (k // nrow) * (h + padding), padding + (k % nrow) * (w + padding)
        grid[:, top:top + h, left:left + w] = batch[k]
    image = to_pil(grid)
    return _label_rows(image, row_labels, cell=h, padding=padding) if row_labels else image


LABEL_MAX_CHARS = 18  # a longer class name is cut: the margin must not outgrow the images


def _label_rows(grid: Image.Image, labels: Sequence[str], *, cell: int, padding: int) -> Image.Image:
    """`grid` with a white margin on its left naming each row. Drawn into the pixels, not put in a caption, so the
    PNG says what its rows are wherever it is seen: the app, a file browser, an issue."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(10, min(28, cell // 6)))  # about a sixth of a row: readable, not loud
    texts = [t if len(t) <= LABEL_MAX_CHARS else t[:LABEL_MAX_CHARS - 1] + "…" for t in map(str, labels)]
    margin = max(font.getbbox(t)[2] for t in texts) + 2 * padding + 4
    out = Image.new("RGB", (grid.width + margin, grid.height), (255, 255, 255))
    out.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(out)
    for row, text in enumerate(texts):
        top, bottom = font.getbbox(text)[1::2]
        middle = padding + row * (cell + padding) + cell / 2
        draw.text((padding + 2, middle - (top + bottom) / 2), text, fill=(40, 40, 40), font=font)
    return out


def augment_preview(
    images: Sequence[Image.Image],
    policy: str = "color,translation,cutout,flip",
    per_image: int = 4,
    seed: int = 0,
) -> Image.Image:
    """One row per image: the original, then `per_image` augmented versions. Same seed, same grid.

    Images are resized to the first image's size so the grid has equal cells.
    """
    if not images or per_image < 1:
        raise ValueError("augment_preview needs at least one image and per_image >= 1.")
    size = images[0].size
    generator = torch.Generator().manual_seed(seed)
    cells = []
    for img in images:
        img = img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)
        x = to_tensor(img)
        augmented = diff_augment(x.expand(per_image, -1, -1, -1), policy, generator)
        cells.extend([x, *augmented])
    return image_grid(cells, nrow=per_image + 1)
