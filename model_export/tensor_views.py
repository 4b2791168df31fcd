"""Instance views for the unfrozen-backbone loop, made in batched tensor ops.

When the backbone trains, every view runs through it at every step, so views cannot be cached
and per-image PIL edits (model_export.augment, what the feature cache renders) would cost as
much as the network on two cores. Here a whole batch is edited at once, on (b, 3, s, s) pixels
in [0, 1] at the training size, with per-image random parameters:

- random resized crop and mirror, one affine grid_sample for the batch (crop and resize in a
  single interpolation). Area down to `crop_area[0]` of the image: the fragment and copy-edit
  queries of the evaluation are crops of their gallery image, and instance discrimination
  (SimCLR, MoCo) found the crop the single most useful edit;
- colour: brightness, contrast, saturation and a hue rotation (in YIQ space, a 3x3 matrix per
  image), and sometimes grey: copy detection's colour edits, and what keeps instance training
  from matching photos by their colour histogram alone;
- Gaussian blur: a separable convolution, one kernel per image (grouped convolution);
- resolution loss: halved and restored, the tensor stand-in for JPEG re-encoding and
  thumbnailing, which have no batched tensor form (the copy-detection edits that degrade detail).

Rotation, text overlays and other composites are left out: they are not among the edits the
evaluation applies, and a crop already covers the framing changes users make.

Randomness comes from a torch.Generator the caller seeds, so a batch's views depend only on
that seed (a resumed run draws the same views).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from model_export.augment import EditStrengths

# ITU-R BT.601 luma and the YIQ transform it belongs to: hue is a rotation of the (I, Q) plane.
_LUMA = torch.tensor([0.299, 0.587, 0.114])
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class TensorAugment(EditStrengths):
    grey: float = 0.1
    blur_sigma: tuple[float, float] = (0.3, 2.0)  # pixels at the training size
    degrade: float = 0.3  # probability of halving the resolution and restoring it


def augment_batch(pixels: torch.Tensor, config: TensorAugment, generator: torch.Generator) -> torch.Tensor:
    """(b, 3, s, s) in [0, 1] -> as many edited views, same size, still in [0, 1]."""
    count = len(pixels)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    def chance(probability: float) -> torch.Tensor:
        return torch.rand(count, generator=generator) < probability

    views = _crop_and_flip(pixels, config, uniform, chance)
    jittered = chance(config.jitter)
    views = _colour(views, config, uniform, jittered)
    views = torch.where(chance(config.grey)[:, None, None, None], _grey(views).expand_as(views), views)
    views = torch.where(chance(config.blur)[:, None, None, None], _blur(views, uniform(*config.blur_sigma)), views)
    views = torch.where(chance(config.degrade)[:, None, None, None], _degrade(views), views)
    return views.clamp(0.0, 1.0)


def _crop_and_flip(pixels: torch.Tensor, config: TensorAugment, uniform, chance) -> torch.Tensor:
    """One grid_sample: each output pixel reads the crop box of its image, mirrored or not."""
    area = uniform(*config.crop_area)
    log_aspect = uniform(-math.log(config.max_aspect), math.log(config.max_aspect))
    width = torch.sqrt(area * log_aspect.exp()).clamp(max=1.0)
    height = torch.sqrt(area / log_aspect.exp()).clamp(max=1.0)
    # Box centres in grid_sample's [-1, 1] coordinates, kept inside the image.
    centre_x = (2 * uniform(0.0, 1.0) - 1) * (1 - width)
    centre_y = (2 * uniform(0.0, 1.0) - 1) * (1 - height)
    mirror = torch.where(chance(config.flip), -1.0, 1.0)
    theta = torch.zeros(len(pixels), 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * mirror, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = nn.functional.affine_grid(theta, list(pixels.shape), align_corners=False)
    return nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _grey(pixels: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bchw,c->bhw", pixels, _LUMA)[:, None]


def _colour(pixels: torch.Tensor, config: TensorAugment, uniform, applied: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation (PIL's ImageEnhance formulas) and hue; factors are 1 where not applied."""

    def factor(strength: float) -> torch.Tensor:
        return torch.where(applied, uniform(1 - strength, 1 + strength), 1.0)[:, None, None, None]

    pixels = pixels * factor(config.brightness)
    mean_grey = _grey(pixels).mean(dim=(1, 2, 3), keepdim=True)
    pixels = (pixels - mean_grey) * factor(config.contrast) + mean_grey
    grey = _grey(pixels)
    pixels = (pixels - grey) * factor(config.saturation) + grey
    angle = torch.where(applied, uniform(-config.hue, config.hue), 0.0) * 2 * math.pi
    cos, sin = angle.cos(), angle.sin()
    rotation = torch.zeros(len(pixels), 3, 3)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    transform = torch.linalg.inv(_RGB_TO_YIQ) @ rotation @ _RGB_TO_YIQ
    return torch.einsum("bij,bjhw->bihw", transform, pixels)


def _blur(pixels: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A separable Gaussian per image: (b*3) channels through a grouped convolution."""
    count, channels, height, width = pixels.shape
    radius = math.ceil(3 * float(sigma.max()))
    offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype)
    kernels = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    flat = nn.functional.pad(pixels.reshape(1, count * channels, height, width), (radius,) * 4, mode="replicate")
    flat = nn.functional.conv2d(flat, kernels[:, None, None, :], groups=count * channels)
    flat = nn.functional.conv2d(flat, kernels[:, None, :, None], groups=count * channels)
    return flat.reshape(count, channels, height, width)


def _degrade(pixels: torch.Tensor) -> torch.Tensor:
    size = pixels.shape[-2:]
    smaller = nn.functional.interpolate(pixels, scale_factor=0.5, mode="area")
    return nn.functional.interpolate(smaller, size=size, mode="bilinear", align_corners=False)
