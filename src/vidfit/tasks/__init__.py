"""The tasks vidfit trains and runs, one folder each, registered by name (``experiment.task``).

A new task is a folder like these, or a package of its own found through the ``vidfit.tasks`` entry points
(docs/PLUGINS.md): its config sections, model builder, LightningModule, DataModule and predictor, registered
with `vidfit.config.register_task` when its package is imported, written with the public names of the layers
below alone.
"""

from vidfit.config import get_task, task_names

__all__ = ["get_task", "task_names"]
