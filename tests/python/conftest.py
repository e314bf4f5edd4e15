"""Shared fixtures: the built `smyrf` binary and a quickstart results file made once per session."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("SMYRF_BUILD_DIR", ROOT / "build"))
if not BUILD.is_absolute():
    BUILD = ROOT / BUILD
SMYRF = BUILD / "bin" / "smyrf"


@pytest.fixture(scope="session")
def smyrf_cli():
    assert SMYRF.exists(), f"{SMYRF} is missing: run scripts/setup.sh first"
    return SMYRF


@pytest.fixture(scope="session")
def quickstart_h5(smyrf_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "quickstart.h5"
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(ROOT / "configs/quickstart.json"),
                           "--output", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out
