"""Front-ends over the tasks: prediction from any checkpoint, preparation, shards merged, and the demo."""

from vidfit.apps._demo import DemoResult, run_demo
from vidfit.apps._merge import MergeResult, merge
from vidfit.apps._predict import predict
from vidfit.apps._prepare import prepare

__all__ = ["DemoResult", "MergeResult", "merge", "predict", "prepare", "run_demo"]
