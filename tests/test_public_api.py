"""Tasks use only the public names of the layers below them, as a task in a package of its own must."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).parents[1] / "src" / "vidfit"
# The layers a task stands on; a task's own modules (``vidfit.tasks.action._model``) are its to import.
LAYERS = ("io", "data", "models", "memory", "infer", "train", "config", "apps")


def private_imports(path: Path) -> list[str]:
    """``file:line: module`` of each import of a vidfit layer's private module (``vidfit.<layer>._x``) in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "vidfit" and len(parts) > 2 and parts[1] in LAYERS and parts[2].startswith("_"):
                found.append(f"{path.name}:{node.lineno}: {name}")
                break
    return found


def test_tasks_import_no_private_module_of_the_layers_below() -> None:
    files = sorted((SOURCE / "tasks").rglob("*.py"))
    assert len(files) > 10
    assert [line for path in files for line in private_imports(path)] == []


def test_the_check_finds_every_spelling_of_a_private_import(tmp_path: Path) -> None:
    source = tmp_path / "task.py"
    source.write_text(
        "from vidfit.train._guard import OomGuard\n"
        "import vidfit.data._dataset\n"
        "from vidfit.infer import _engines\n"
        "def late():\n    from vidfit.memory._step import Precision\n"
        "from vidfit.train import GuardedModule\n"
        "from vidfit.tasks.action._model import build_model\n"
        "from vidfit.data import VideoDataset\n",
        encoding="utf-8",
    )
    assert private_imports(source) == [
        "task.py:1: vidfit.train._guard",
        "task.py:2: vidfit.data._dataset",
        "task.py:3: vidfit.infer._engines",
        "task.py:5: vidfit.memory._step",
    ]
