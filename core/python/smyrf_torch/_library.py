"""Finds and loads the operator library (libsmyrf_torch_ops.so) that CMake builds.

Looked for, in order: the path in $SMYRF_TORCH_OPS; a copy inside this package (an installed
wheel); <repository>/<$SMYRF_BUILD_DIR or build>/lib/ (the editable install scripts/setup.sh makes).
"""
import os
import pathlib

import torch

LIBRARY_NAME = "libsmyrf_torch_ops.so"
BUILD_COMMAND = "scripts/setup.sh   (or: cmake --build build --target smyrf_torch_ops)"


class OperatorLibraryNotFound(ImportError):
    """The package is installed but the C++ operator library has not been built."""


def candidate_paths():
    explicit = os.environ.get("SMYRF_TORCH_OPS")
    if explicit:
        return [pathlib.Path(explicit)]
    package = pathlib.Path(__file__).resolve().parent
    repository = package.parents[2]
    build = pathlib.Path(os.environ.get("SMYRF_BUILD_DIR", "build"))
    if not build.is_absolute():
        build = repository / build
    return [package / LIBRARY_NAME, build / "lib" / LIBRARY_NAME]


def load():
    """Loads the library once; raises OperatorLibraryNotFound naming where it looked and the fix."""
    if hasattr(torch.ops.smyrf, "attention"):
        return
    paths = candidate_paths()
    for path in paths:
        if path.is_file():
            torch.ops.load_library(str(path))
            return
    looked = "\n  ".join(str(p) for p in paths)
    raise OperatorLibraryNotFound(
        f"smyrf_torch: the operator library {LIBRARY_NAME} was not found. Looked in:\n  {looked}\n"
        f"Build it from the repository root with: {BUILD_COMMAND}\n"
        "or point $SMYRF_TORCH_OPS at a built copy.")
