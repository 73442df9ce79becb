"""How much of a dataset is fine repeated detail (textiles, tilings, halftones): what picks the cGAN's recipe for it.

An image's *fine-detail share* is the part of its luminance variance at 3 or more cycles across a 32 px copy, periods
of about 10 px and less. Fine periodic patterns put almost all of it there (the median image: 0.97 on the textures and
tiles families), smooth scenes and flat layouts much less (horizons 0.13-0.14, posters 0.37-0.41, ornaments
0.49-0.54, the demo's drips, grids and stars 0.79-0.80; training halves of studio/data/families.py, three seeds; a
random field with a photograph's 1/f² spectrum: 0.50).
"""

from __future__ import annotations

import torch

SIDE = 32            # the size the share is measured at, whatever the images' own
MIN_CYCLES = 3       # cycles across SIDE px from which detail counts as fine
FINE_MEDIAN = 0.9    # a dataset is fine patterns when its median image's share reaches this
_MEDIANS: dict[str, float] = {}  # by dataset fingerprint (content hashes and crop): the Train tab asks on every page load


def fine_detail_shares(images: torch.Tensor) -> torch.Tensor:
    """[N] shares for images [N, 3, SIDE, SIDE] (any range): variance at ≥ MIN_CYCLES cycles over all variance."""
    if images.shape[-2:] != (SIDE, SIDE):
        raise ValueError(f"fine_detail_shares measures {SIDE}×{SIDE} images, not {tuple(images.shape[-2:])}.")
    luma = images.float().mean(dim=1)
    # Mirrored to twice the size first (a DCT's view): the FFT's wrap-around would turn a smooth sky's top and bottom
    # rows into an edge, and count it as fine detail.
    luma = torch.cat([luma, luma.flip(-1)], dim=-1)
    luma = torch.cat([luma, luma.flip(-2)], dim=-2)
    power = torch.fft.fft2(luma - luma.mean(dim=(1, 2), keepdim=True)).abs().pow(2)
    cycles = torch.fft.fftfreq(2 * SIDE) * SIDE  # cycles across the original SIDE px
    radius = torch.hypot(cycles[:, None], cycles[None, :])
    return power[:, radius >= MIN_CYCLES].sum(dim=1) / power.sum(dim=(1, 2)).clamp_min(1e-12)


def median_fine_detail(images: torch.Tensor) -> float:
    """The dataset's median share (a few smooth images among patterned ones do not change the verdict)."""
    return float(fine_detail_shares(images).median())


def dataset_fine_detail(ds) -> float:
    """`median_fine_detail` of a studio.data.dataset.Dataset's images at SIDE px, worked out once per fingerprint."""
    key = ds.fingerprint()
    if key not in _MEDIANS:
        if len(_MEDIANS) >= 256:  # a shared studio's many visitors: a bound, not a policy
            _MEDIANS.clear()
        _MEDIANS[key] = median_fine_detail(ds.load_tensors(SIDE)[0])
    return _MEDIANS[key]

