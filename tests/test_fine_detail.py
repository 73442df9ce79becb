"""The fine-detail share that picks the cGAN's recipe for fine repeating patterns (studio/data/fine_detail.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from studio.data.families import family_images
from studio.data.fine_detail import FINE_MEDIAN, SIDE, fine_detail_shares, median_fine_detail


def _as_trained(family: str) -> torch.Tensor:
    """A family's training half as the cGAN sees it at 32 px (Dataset.load_tensors resizes with Lanczos)."""
    images = [np.asarray(im.resize((SIDE, SIDE), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1
              for _, _, im in family_images(family, 12, seed=3, size=64, split="train")]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)


def test_stripes_are_all_fine_detail_and_a_gradient_none():
    x = torch.arange(SIDE, dtype=torch.float32)
    stripes = torch.sin(2 * torch.pi * x / 4).expand(3, SIDE, SIDE)       # a 4 px period
    gradient = (x / SIDE).expand(3, SIDE, SIDE)
    shares = fine_detail_shares(torch.stack([stripes, gradient.clone(), gradient.mT.clone()]))
    assert shares[0] > 0.98 and shares[1] < 0.01 and shares[2] < 0.01  # no wrap-around edge


@pytest.mark.parametrize(("family", "fine"), [("textures", True), ("tiles", True), ("demo", False),
                                              ("horizons", False), ("posters", False), ("ornaments", False),
                                              ("brushwork", False)])
def test_the_patterned_families_and_only_they_are_fine_patterns(family, fine):
    assert (median_fine_detail(_as_trained(family)) >= FINE_MEDIAN) == fine


def test_other_sizes_are_refused_by_name():
    with pytest.raises(ValueError, match="32×32"):
        fine_detail_shares(torch.zeros(1, 3, 64, 64))


def test_a_datasets_share_is_worked_out_once_per_content(workspace, monkeypatch):
    from studio.data.dataset import Dataset, create_demo_dataset
    from studio.data.fine_detail import dataset_fine_detail

    create_demo_dataset(workspace, "swatches", family="textures", per_class=3, size=32)
    ds = Dataset.open(workspace, "swatches")
    share = dataset_fine_detail(ds)
    assert share == median_fine_detail(ds.load_tensors(SIDE)[0]) and share >= FINE_MEDIAN
    monkeypatch.setattr(Dataset, "load_tensors", lambda *a: pytest.fail("read the images again"))
    assert dataset_fine_detail(Dataset.open(workspace, "swatches")) == share  # the Train tab's page loads: no decoding
    monkeypatch.undo()
    create_demo_dataset(workspace, "sky", family="horizons", per_class=3, size=32)
    assert dataset_fine_detail(Dataset.open(workspace, "sky")) < FINE_MEDIAN  # other images, other fingerprint
