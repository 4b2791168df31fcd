"""docs/ARCHITECTURE.md names real files and real interfaces, so it cannot drift from the code unseen."""

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "layers" / "lookalike"
ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def _exists(name: str) -> bool:
    """A path from the repository's root or the package's, or a bare file name somewhere in the package."""
    if "/" in name.rstrip("/"):
        return (ROOT / name).exists() or (PACKAGE / name).exists()
    return (ROOT / name).exists() or (PACKAGE / name).exists() or any(PACKAGE.rglob(name))


def test_every_file_the_architecture_names_exists():
    named = set(re.findall(r"`([\w./-]+(?:\.py|/))`", ARCHITECTURE))
    assert len(named) > 40, f"found only {len(named)} file names: has the page's form changed?"
    missing = sorted(name for name in named if not _exists(name))
    assert not missing, f"docs/ARCHITECTURE.md names files that do not exist: {missing}"


def test_every_interface_the_architecture_lists_is_in_its_module():
    interfaces = ARCHITECTURE[ARCHITECTURE.index("## Interfaces") :]
    listed = re.findall(r"`([\w/]+)\.py` \(([^)]*)\)", interfaces)
    assert len(listed) >= 10, f"found only {len(listed)} modules in the interfaces paragraph"
    missing = [
        f"{module}.{name}"
        for module, names in listed
        for name in re.findall(r"`(\w+)`", names)
        if not hasattr(importlib.import_module("lookalike." + module.replace("/", ".")), name)
    ]
    assert not missing, f"docs/ARCHITECTURE.md lists interfaces that do not exist: {missing}"


def test_every_module_of_the_serving_package_is_on_the_page():
    modules = {path.name for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}
    named = set(re.findall(r"`(?:[\w./-]*/)?(\w+\.py)`", ARCHITECTURE))
    assert not modules - named, f"docs/ARCHITECTURE.md does not place these modules: {sorted(modules - named)}"
