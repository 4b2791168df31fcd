"""Views in, backbone embeddings out: from the feature cache, or through a partly trainable backbone.

Both give what the base model outputs (GeM-pooled, unit-length 1280-d vectors) for (row, view)
pairs, so the head and the loss do not know which one feeds them.
- CachedEncoder: the backbone is frozen; every view was embedded once (model_export.features).
- LiveEncoder: the last `unfreeze` blocks of the backbone (and its 1x1 head convolution) train,
  at `train_size` pixels (128 takes a quarter of 224's time per view on a CPU, and the
  network, fully convolutional, serves at 224 with the same weights). Images are decoded once;
  edited views are made per batch in tensor ops (model_export.tensor_views) and run through the
  backbone at every step. Batch norm statistics stay frozen: batches this small would only add
  noise to them.
"""

import hashlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lookalike.embedding import ModelInfo
from lookalike.images import to_tensor
from model_export.data import TrainImage
from model_export.export_onnx import EmbeddingNet, load_backbone
from model_export.features import decode
from model_export.tensor_views import TensorAugment, augment_batch


class CachedEncoder:
    def __init__(self, features: np.ndarray) -> None:
        self.features = torch.from_numpy(features)

    def trainable(self) -> list[nn.Parameter]:
        return []

    def backbone_state(self) -> dict:
        return {}

    def __call__(self, rows: np.ndarray, views: np.ndarray) -> torch.Tensor:
        return self.features[torch.from_numpy(rows), torch.from_numpy(views)]


class LiveEncoder:
    def __init__(
        self,
        images: Sequence[TrainImage],
        unfreeze: int,
        info: ModelInfo,
        train_size: int,
        augment: TensorAugment,
        seed: int,
    ) -> None:
        self.net = EmbeddingNet(load_backbone(train_size))
        backbone = self.net.backbone
        if not 0 < unfreeze <= len(backbone._blocks):
            raise ValueError(f"unfreeze must be in 1..{len(backbone._blocks)} blocks, not {unfreeze}")
        backbone.requires_grad_(False)
        for module in (*backbone._blocks[-unfreeze:], backbone._conv_head):
            module.requires_grad_(True)
        self.augment, self.seed = augment, seed
        self.mean = torch.tensor(info.mean).reshape(1, 3, 1, 1)
        self.std = torch.tensor(info.std).reshape(1, 3, 1, 1)
        # Decoded and resized once, as indexing resizes (bytes, not floats: a quarter of the memory).
        unit = [to_tensor(decode(image), train_size, (0.0,) * 3, (1.0,) * 3, info.resize) for image in images]
        self.pixels = torch.from_numpy(np.round(np.stack(unit) * 255).astype(np.uint8))

    def trainable(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.net.parameters() if parameter.requires_grad]

    def backbone_state(self) -> dict:
        return self.net.backbone.state_dict()

    def __call__(self, rows: np.ndarray, views: np.ndarray) -> torch.Tensor:
        """View 0 is the image as indexed; any other view a fresh edit, seeded by the batch itself."""
        pixels = self.pixels[torch.from_numpy(rows)].float() / 255
        edited = torch.from_numpy(views > 0)
        if edited.any():
            digest = hashlib.sha256(np.concatenate([[self.seed], rows, views]).astype(np.int64).tobytes()).digest()
            generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
            pixels[edited] = augment_batch(pixels[edited], self.augment, generator)
        return self.net((pixels - self.mean) / self.std)
