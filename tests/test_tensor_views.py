"""Batched tensor edits for the unfrozen-backbone loop: geometry, colour and determinism."""

import dataclasses

import pytest
import torch

from model_export.tensor_views import TensorAugment, augment_batch

NOTHING = TensorAugment(crop_area=(1.0, 1.0), max_aspect=1.0, flip=0.0, jitter=0.0, grey=0.0, blur=0.0, degrade=0.0)


def images(count: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(1))


def run(pixels: torch.Tensor, config: TensorAugment, seed: int = 0) -> torch.Tensor:
    return augment_batch(pixels, config, torch.Generator().manual_seed(seed))


def test_no_edit_returns_the_image():
    pixels = images()
    assert torch.allclose(run(pixels, NOTHING), pixels, atol=1e-5)


def test_a_mirror_is_the_image_flipped():
    pixels = images()
    assert torch.allclose(run(pixels, dataclasses.replace(NOTHING, flip=1.0)), pixels.flip(-1), atol=1e-5)


def test_a_crop_magnifies_part_of_the_image():
    pixels = torch.zeros(8, 3, 32, 32)
    pixels[..., :, 16:] = 1.0  # left half black, right half white
    cropped = run(pixels, dataclasses.replace(NOTHING, crop_area=(0.1, 0.1)))
    assert cropped.shape == pixels.shape
    white = cropped.mean(dim=(1, 2, 3))
    assert ((white < 0.05) | (white > 0.95)).any(), "no crop fell inside one half"
    assert not torch.allclose(cropped, pixels)


@pytest.mark.parametrize("edit", ["jitter", "grey", "blur", "degrade"])
def test_each_edit_changes_texture_or_colour_but_keeps_a_flat_grey_image(edit):
    config = dataclasses.replace(NOTHING, **{edit: 1.0})
    pixels = images()
    assert not torch.allclose(run(pixels, config), pixels, atol=1e-3), f"{edit} changed nothing"
    flat = torch.full((2, 3, 16, 16), 0.5)
    if edit != "jitter":  # brightness moves even a flat image
        assert torch.allclose(run(flat, config), flat, atol=1e-5), f"{edit} moved a flat grey image"


def test_views_stay_in_range_and_depend_only_on_the_seed():
    pixels, config = images(16), TensorAugment()
    first, again, other = run(pixels, config, 3), run(pixels, config, 3), run(pixels, config, 4)
    assert first.min() >= 0 and first.max() <= 1 and first.shape == pixels.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
