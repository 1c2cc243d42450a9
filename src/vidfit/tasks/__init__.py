"""The tasks vidfit trains and runs, one folder each, registered by name (``experiment.task``).

A new task is a folder like these: its config sections, model builder, LightningModule, DataModule and
predictor, registered with `vidfit.config.register_task` when its package is imported.
"""

from vidfit.config import get_task, task_names

__all__ = ["get_task", "task_names"]
