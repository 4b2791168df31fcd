"""The architecture's import rules, checked by import-linter (contracts in pyproject.toml).

The contracts name packages, not modules, so every module of `lookalike`, `lab` and
`model_export`, including one added tomorrow, is checked without being listed.
"""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"Contracts: {len(contracts)} kept, 0 broken", result.stdout), result.stdout


def test_serving_never_imports_torch():
    code = "import sys, lookalike.cli, lookalike.http.app, lookalike.watch; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
