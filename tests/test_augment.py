"""DiffAugment: each policy does what the reference does, differentiably and reproducibly."""

import pytest
import torch
from PIL import Image, ImageDraw

from studio.data.augment import (
    AUGMENT_POLICIES,
    DiffAugment,
    augment_preview,
    diff_augment,
    image_grid,
    parse_policy,
    to_pil,
    to_tensor,
)
from studio.errors import UserError


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=seeded(seed)) * 2 - 1


def test_parse_policy() -> None:
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy(" Color , flip ") == ("color", "flip")
    assert parse_policy(["cutout", "flip"]) == ("cutout", "flip")
    assert parse_policy("none") == () == parse_policy("")


def test_unknown_policy_is_named_in_one_sentence() -> None:
    with pytest.raises(ValueError, match="'rotate'") as info:
        parse_policy("color,rotate")
    message = str(info.value)
    assert all(name in message for name in AUGMENT_POLICIES)
    assert isinstance(info.value, UserError)
    with pytest.raises(ValueError):
        DiffAugment(policy="zoom")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "flip", "color,translation,cutout,flip"])
def test_shape_and_dtype_preserved(policy: str, dtype: torch.dtype) -> None:
    x = random_images(4, 24).to(dtype)
    y = diff_augment(x, policy, seeded())
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device


def test_non_square_images() -> None:
    x = random_images(4, 32)[:, :, :, :20]
    assert diff_augment(x, "color,translation,cutout,flip", seeded()).shape == x.shape


def test_none_is_identity() -> None:
    x = random_images()
    assert torch.equal(diff_augment(x, "none"), x)
    assert torch.equal(DiffAugment(policy="")(x), x)


def test_gradients_flow_to_the_image() -> None:
    x = random_images(4).requires_grad_()
    diff_augment(x, "color,translation,cutout,flip", seeded()).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_seeded_generator_is_reproducible() -> None:
    x = random_images()
    policy = "color,translation,cutout,flip"
    a = diff_augment(x, policy, seeded(7))
    assert torch.equal(a, diff_augment(x, policy, seeded(7)))
    assert not torch.equal(a, diff_augment(x, policy, seeded(8)))
    assert torch.equal(DiffAugment(policy=policy, generator=seeded(7))(x), a)


def test_translation_shifts_within_an_eighth_and_pads_with_zero() -> None:
    n, size = 64, 32
    x = torch.full((n, 3, size, size), -1.0)  # black background, so the 0 padding is visible
    x[:, :, 16, 16] = 1.0
    y = diff_augment(x, "translation", seeded())
    max_shift = size // 8
    shifts = set()
    for img in y:
        bright = (img[0] == 1.0).nonzero()
        assert len(bright) == 1  # moved, not blurred or duplicated
        dy, dx = (bright[0] - 16).tolist()
        assert abs(dy) <= max_shift and abs(dx) <= max_shift
        shifts.add((dy, dx))
        # Exactly the rows/columns uncovered by the shift are zero-padded.
        assert (img == 0).all(dim=0).sum() == size * size - (size - abs(dy)) * (size - abs(dx))
        assert ((img == 0) | (img == -1) | (img == 1)).all()
    assert len(shifts) > 10


def test_cutout_zeroes_one_half_side_square_per_image() -> None:
    n, size = 64, 32
    y = diff_augment(torch.ones(n, 3, size, size), "cutout", seeded())
    side = size // 2
    full_squares = 0
    for img in y:
        assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])  # all channels
        rows, cols = (img[0] == 0).nonzero().unbind(1)
        assert len(rows) > 0
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        assert len(rows) == (bottom - top) * (right - left)  # a solid rectangle
        # Like the reference, the square may be clipped by the border, never elsewhere.
        assert bottom - top == side or top == 0 or bottom == size
        assert right - left == side or left == 0 or right == size
        full_squares += len(rows) == side * side
    assert full_squares > 0


def test_color_stays_within_reference_ranges() -> None:
    x = random_images(64)
    y = diff_augment(x, "color", seeded())
    # Saturation and contrast keep the image mean, so only brightness moves it: [-0.5, 0.5).
    shift = y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.5 + 1e-5 and shift.std() > 0.1
    # Colour around the per-pixel grey scales by saturation * contrast, in [0, 3).
    chroma_x = x - x.mean(dim=1, keepdim=True)
    chroma_y = y - y.mean(dim=1, keepdim=True)
    scale = (chroma_y * chroma_x).sum(dim=(1, 2, 3)) / chroma_x.square().sum(dim=(1, 2, 3))
    torch.testing.assert_close(chroma_y, chroma_x * scale[:, None, None, None], atol=1e-5, rtol=1e-4)
    assert scale.min() >= 0 and scale.max() < 3


def test_flip_only_flips() -> None:
    x = random_images(32)
    y = diff_augment(x, "flip", seeded())
    flipped = [torch.equal(b, a.flip(-1)) for a, b in zip(x, y)]
    kept = [torch.equal(b, a) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_pil_round_trip_and_grid() -> None:
    img = Image.new("RGB", (10, 6), (255, 0, 128))
    t = to_tensor(img)
    assert t.shape == (3, 6, 10) and t.min() == -1 and t.max() == 1
    assert to_pil(t).tobytes() == img.tobytes()
    grid = image_grid([t] * 5, nrow=3, padding=2)
    assert grid.size == (3 * 12 + 2, 2 * 8 + 2)


def test_augment_preview_size_and_determinism() -> None:
    images = []
    for k in range(3):
        img = Image.new("RGB", (32, 32), (20 * k, 60, 200))
        ImageDraw.Draw(img).ellipse((4 + k, 6, 24, 28), fill=(250, 200, 0))
        images.append(img)
    preview = augment_preview(images, per_image=4, seed=1)
    assert preview.mode == "RGB" and preview.size == (5 * 34 + 2, 3 * 34 + 2)
    assert preview.tobytes() == augment_preview(images, per_image=4, seed=1).tobytes()
    assert preview.tobytes() != augment_preview(images, per_image=4, seed=2).tobytes()
    # The first column is the untouched original.
    assert preview.crop((2, 2, 34, 34)).tobytes() == images[0].tobytes()


def test_vectorised_translation_and_cutout_match_a_plain_loop() -> None:
    # The same draws, in the same order, applied one image at a time with slicing.
    x = random_images(6, 24)[:, :, :, :16]
    n, _, h, w = x.shape
    torch.manual_seed(3)
    got = diff_augment(x, "translation,cutout")
    torch.manual_seed(3)
    ty, tx = torch.randint(-3, 4, (n,)), torch.randint(-2, 3, (n,))
    top, left = torch.randint(0, h + 1, (n,)) - 6, torch.randint(0, w + 1, (n,)) - 4
    want = torch.zeros_like(x)
    for k in range(n):
        dy, dx = int(ty[k]), int(tx[k])  # output (i, j) shows input (i + dy, j + dx)
        src = x[k, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        want[k, :, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)] = src
        t, l = int(top[k]), int(left[k])
        want[k, :, max(t, 0):max(t + 12, 0), max(l, 0):max(l + 8, 0)] = 0
    assert torch.equal(got, want)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_with_cpu_generator_matches_cpu() -> None:
    x = random_images(4)
    policy = "color,translation,cutout,flip"
    y = diff_augment(x.cuda(), policy, seeded(5))
    assert y.device == x.cuda().device
    torch.testing.assert_close(y.cpu(), diff_augment(x, policy, seeded(5)))


def test_grid_row_labels_sit_in_a_margin_and_long_ones_are_cut() -> None:
    t = to_tensor(Image.new("RGB", (32, 32), (255, 0, 128)))
    plain = image_grid([t] * 6, nrow=3)
    named = image_grid([t] * 6, nrow=3, row_labels=["abstract", "a class name far too long for any margin"])
    short = image_grid([t] * 6, nrow=3, row_labels=["abstract", "a class name far t…"])
    assert named.height == plain.height and named.width > plain.width
    assert named.tobytes() == short.tobytes()  # cut to LABEL_MAX_CHARS, with an ellipsis
    margin = named.width - plain.width
    assert named.crop((margin, 0, named.width, named.height)).tobytes() == plain.tobytes()
    ink = [(i, j) for i in range(margin) for j in range(named.height) if named.getpixel((i, j))[0] < 128]
    rows = {j // 34 for _, j in ink}
    assert rows == {0, 1}  # a label in each row, within its row
