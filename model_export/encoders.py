"""Views in, backbone embeddings out: from the feature cache, or through a partly trainable backbone.

Both give what the base model outputs (GeM-pooled, unit-length 1280-d vectors) for (row, view)
pairs, so the head and the loss do not know which one feeds them.
- CachedEncoder: the backbone is frozen; every view was embedded once (model_export.features).
- LiveEncoder: the last `unfreeze` blocks of the backbone (and its 1x1 head convolution) train;
  views are rendered on the fly, identical to the cached ones (same seeds), and run through
  the backbone at every step. Batch norm statistics stay frozen: batches this small (a CPU
  fits a few dozen 224-pixel images a step) would only add noise to them.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lookalike.embedding import ModelInfo
from lookalike.images import to_tensor
from model_export.augment import TrainingViews, training_view
from model_export.data import TrainImage
from model_export.export_onnx import EmbeddingNet, load_backbone
from model_export.features import decode


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
        views: TrainingViews,
        info: ModelInfo,
    ) -> None:
        self.net = EmbeddingNet(load_backbone(info.input_size))
        backbone = self.net.backbone
        if not 0 < unfreeze <= len(backbone._blocks):
            raise ValueError(f"unfreeze must be in 1..{len(backbone._blocks)} blocks, not {unfreeze}")
        backbone.requires_grad_(False)
        for module in (*backbone._blocks[-unfreeze:], backbone._conv_head):
            module.requires_grad_(True)
        self.images, self.views, self.info = images, views, info

    def trainable(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.net.parameters() if parameter.requires_grad]

    def backbone_state(self) -> dict:
        return self.net.backbone.state_dict()

    def __call__(self, rows: np.ndarray, views: np.ndarray) -> torch.Tensor:
        info = self.info
        pixels = []
        for row, view in zip(rows.tolist(), views.tolist()):
            image = self.images[row]
            rendered = training_view(decode(image), image.digest, view, self.views.seed, self.views.config)
            pixels.append(to_tensor(rendered, info.input_size, info.mean, info.std, info.resize))
        return self.net(torch.from_numpy(np.stack(pixels)))
