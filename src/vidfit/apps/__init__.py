"""Front-ends over the tasks: prediction from any checkpoint, feature extraction, preparation, shards merged,
reports, and the demo."""

from vidfit.apps._demo import DemoResult, run_demo
from vidfit.apps._extract import ExtractResult, extract
from vidfit.apps._merge import MergeResult, merge
from vidfit.apps._predict import parse_options, predict
from vidfit.apps._prepare import prepare
from vidfit.apps._report import ReportResult, write_report

__all__ = [
    "DemoResult",
    "ExtractResult",
    "MergeResult",
    "ReportResult",
    "extract",
    "merge",
    "parse_options",
    "predict",
    "prepare",
    "run_demo",
    "write_report",
]
