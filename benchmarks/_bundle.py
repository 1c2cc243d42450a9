"""The wheels the GPU machine's image lacks, downloaded here and installed there without a network.

Download (on a machine with a network, in the project's venv): `python benchmarks/_bundle.py .gpu-bundle`
(`make gpu-bundle`). The versions are the ones this venv runs, so the GPU machine runs what the tests ran;
tensorboardX stands in for tensorboard (Lightning's TensorBoardLogger takes either; tensorboard with its
gRPC server would not fit the size limit). Install: `install_bundle(folder)`, which the suite calls first.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# What vidfit and its tests import beyond torch, torchvision, Lightning (with PyYAML, torchmetrics) and numpy.
PACKAGES = (
    "av", "pyyaml", "rich", "markdown-it-py", "mdurl", "pygments", "psutil", "tensorboardX", "protobuf",
    "pytest", "pluggy", "iniconfig", "pytest-timeout",
    # The `hf` extra, for the encoders section (Hugging Face video transformers, LoRA), and what it imports; not
    # hf-xet or kernels (downloads and hub kernels, which the suite never uses): 27 MiB, 20 without them.
    "transformers", "peft", "accelerate", "huggingface-hub", "tokenizers", "safetensors", "regex", "httpx2",
    "httpcore2", "h11", "anyio", "idna", "truststore", "typer", "click", "shellingham", "annotated-doc", "tomlkit",
    "tqdm",
)  # fmt: skip
# The modules those packages give (tensorboard does for tensorboardX), and the image's own (never bundled): what
# the suite checks before it starts.
IMPORTS = ("av", "yaml", "rich", "markdown_it", "pygments", "psutil", "tensorboardX|tensorboard", "google.protobuf",
           "pytest", "pytest_timeout", "transformers", "peft", "torch", "torchvision", "lightning", "torchmetrics",
           "numpy")  # fmt: skip
PLATFORM = ("--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64")  # fmt: skip
MAX_BUNDLE_BYTES = 60 * 2**20


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pinned(name: str) -> str:
    """`name==version` as this venv has it, else the name alone (the newest wheel)."""
    try:
        return f"{name}=={metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name


def download(folder: Path) -> list[Path]:
    """Downloads the wheels for CPython 3.12 on manylinux x86_64 into `folder`; fails above 60 MiB."""
    command = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps", *PLATFORM]
    subprocess.run([*command, "--dest", str(folder), *map(_pinned, PACKAGES)], check=True)
    wheels = sorted(folder.glob("*.whl"))
    total = sum(wheel.stat().st_size for wheel in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.1f} MiB  {wheel.name}")
    print(f"{total / 2**20:7.1f} MiB  in {folder}")
    if total > MAX_BUNDLE_BYTES:
        raise SystemExit(f"error: {folder} holds {total / 2**20:.1f} MiB, above the 60 MiB limit")
    return wheels


@dataclass(frozen=True)
class Installed:
    """What `install_bundle` did: the folder put first on the path, the wheels installed, those the image had."""

    target: Path | None
    wheels: tuple[str, ...]
    present: tuple[str, ...]


def install_bundle(folder: Path) -> Installed:
    """Installs the wheels of `folder` whose package this Python lacks into a temporary folder, first on the path.

    Each wheel goes in with `--no-deps`: the image's own torch, numpy and Lightning stay the ones used.
    The folder also goes into PYTHONPATH, with `src/`, for the subprocesses (pytest, DataLoader workers).
    """
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    missing = [wheel for wheel in wheels if not _has(wheel.name.split("-")[0])]
    present = tuple(wheel.name for wheel in wheels if wheel not in missing)
    target = None
    if missing:
        target = Path(tempfile.mkdtemp(prefix="vidfit-bundle-"))
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target)]
        subprocess.run([*pip, *map(str, missing)], check=True)
        sys.path.insert(0, str(target))
    source = str(Path(__file__).resolve().parent.parent / "src")
    sys.path.insert(0, source)
    paths = [str(target)] if target else []
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, source, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return Installed(target, tuple(wheel.name for wheel in missing), present)


def missing_modules() -> list[str]:
    """The modules of `IMPORTS` this Python cannot import (after `install_bundle`), alternatives as ``a|b``."""
    return [names for names in IMPORTS if not any(map(_importable, names.split("|")))]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def _has(distribution: str) -> bool:
    try:
        metadata.version(_normalize(distribution))
    except metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="download the GPU machine's wheels")
    parser.add_argument("folder", type=Path, help="where the wheels go (an ignored folder, e.g. .gpu-bundle)")
    download(parser.parse_args().folder)
