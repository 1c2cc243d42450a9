"""vidfit: train and run video models on long videos within the memory of one GPU, and across many.

The entry points most users need; each layer's package (`vidfit.io`, `vidfit.data`, `vidfit.models`,
`vidfit.memory`, `vidfit.infer`, `vidfit.train`, `vidfit.config`, `vidfit.tasks`) exports the rest.
"""

from importlib.metadata import PackageNotFoundError, version

from vidfit.apps import predict, run_demo
from vidfit.config import Config, ConfigError, load_config
from vidfit.data import VideoDataset, VideoDatasetConfig
from vidfit.io import VideoReader
from vidfit.train import fit, plan_memory, test, validate

try:
    __version__ = version("vidfit")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Config",
    "ConfigError",
    "VideoDataset",
    "VideoDatasetConfig",
    "VideoReader",
    "__version__",
    "fit",
    "load_config",
    "plan_memory",
    "predict",
    "run_demo",
    "test",
    "validate",
]
