"""Choose the embedder's pooling and resize mode by the retrieval task the product must pass.

    python -m lab bench pooling_study [--sizes 224 288]

Gallery: the first 500 Tiny ImageNet validation images by file number (val_0 ... val_499).
Queries: each gallery image cropped to 50% of its area at a random position and aspect ratio
(log-uniform in [1/2, 2], clipped to fit; seed 2026), saved as a new PNG: the protocol of
lab.datasets, the same one tests/test_retrieval.py asserts on. Metric: the fraction of
queries whose source is the rank-1 gallery image by cosine; the product needs >= 95%.

Images go through the product's own path (lookalike.images.load_image and to_tensor, with the
export's mean/std); only the backbone and the pooling run in torch, so that one forward pass
serves all three poolings.

Measured on 2 CPU cores (torch 2.13 CPU), 2 x 500 images per row:

    size  resize          avg     gem     max  seconds
     224  squash        97.2%   97.6%   97.6%    126.1
     224  center-crop   91.8%   92.2%   89.4%    122.1

Squash is clearly better: a crop's aspect ratio is random, and a centre crop throws away part of
what the query shows. Between poolings the gaps are one or two queries of 500 (the standard
error is about 0.7 points), so pooling is a weak choice; GeM (p=3) is the export's default as it
ties for best here and sits between average and max pooling.
"""

import time
from collections.abc import Sequence

import numpy as np
import torch

from lab.bench import argument_parser
from lab.datasets import TINY_IMAGENET_VAL, half_area_crop_queries, tiny_imagenet_val
from lookalike.images import RESIZE_MODES, load_image, to_tensor
from model_export.export_onnx import MEAN, POOLINGS, STD, load_backbone, pool

GALLERY_SIZE = 500
BATCH = 50


def features(backbone, payloads: list[bytes], size: int, resize: str) -> torch.Tensor:
    """The backbone's 1280-channel feature maps for encoded images, as serving would prepare them."""
    maps = []
    for start in range(0, len(payloads), BATCH):
        images = [load_image(data, min_side=size) for data in payloads[start : start + BATCH]]
        batch = np.stack([to_tensor(image, size, MEAN, STD, resize) for image in images])
        with torch.no_grad():
            maps.append(backbone.extract_features(torch.from_numpy(batch)))
    return torch.cat(maps)


def rank1(gallery: torch.Tensor, queries: torch.Tensor) -> float:
    """Query i's source is gallery i."""
    gallery = torch.nn.functional.normalize(gallery, dim=1)
    queries = torch.nn.functional.normalize(queries, dim=1)
    best = (queries @ gallery.T).argmax(dim=1)
    return (best == torch.arange(len(queries))).float().mean().item()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224], help="model input sizes to try")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    images = list(tiny_imagenet_val(TINY_IMAGENET_VAL, GALLERY_SIZE))
    gallery_payloads = [image.data for image in images]
    query_payloads = half_area_crop_queries(images)

    print(f"{'size':>4}  {'resize':<11}  " + "  ".join(f"{name:>6}" for name in POOLINGS) + "  seconds")
    for size in args.sizes:
        backbone = load_backbone(size)
        for resize in RESIZE_MODES:
            started = time.perf_counter()
            gallery_maps = features(backbone, gallery_payloads, size, resize)
            query_maps = features(backbone, query_payloads, size, resize)
            scores = [rank1(pool(gallery_maps, name), pool(query_maps, name)) for name in POOLINGS]
            seconds = time.perf_counter() - started
            print(f"{size:>4}  {resize:<11}  " + "  ".join(f"{score:>6.1%}" for score in scores) + f"  {seconds:7.1f}")


if __name__ == "__main__":
    main()
