"""Front-ends over the tasks: prediction from any checkpoint, and the demo."""

from vidfit.apps._demo import DemoResult, run_demo
from vidfit.apps._predict import predict

__all__ = ["DemoResult", "predict", "run_demo"]
