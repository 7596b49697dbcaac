"""The task registry: names, missing extras, tasks not available yet."""

from __future__ import annotations

import importlib.util

import pytest

from medlabel.core.errors import InvalidInputError, MissingDependencyError, NotFoundError
from medlabel.engines.deep import tasks
from medlabel.engines.deep.model_dir import TaskKind
from medlabel.engines.deep.tasks import (
    Example,
    LoggingReporter,
    Reporter,
    TrainingSet,
    get_task,
    parse_task,
)
from medlabel.imaging.volume import Volume


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(InvalidInputError, match="seg, cls, det"):
        parse_task("segment")


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        tasks.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name)
    )
    with pytest.raises(MissingDependencyError, match=r"medlabel\[train\]"):
        get_task("seg")
    assert not tasks.task_available("seg")


def test_tasks_whose_code_is_missing_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = tasks._Entry("medlabel.engines.deep.not_written_yet", "Nothing", ())
    monkeypatch.setitem(tasks._TASKS, TaskKind.DET, entry)
    assert not tasks.task_available("det")
    with pytest.raises(NotFoundError, match="not available yet"):
        get_task("det")


def test_segmentation_task_is_a_task_trainer(train_extra: None) -> None:
    trainer = get_task("seg")
    assert isinstance(trainer, tasks.TaskTrainer) and trainer.task is TaskKind.SEG


def test_reporters_fit_the_protocol() -> None:
    assert isinstance(LoggingReporter(), Reporter)
    from medlabel.jobs.reporter import MemoryReporter

    assert isinstance(MemoryReporter(), Reporter)  # the job system's reporter


def test_training_set_validates_examples() -> None:
    vol = Volume.from_spacing(__import__("numpy").zeros((1, 4, 4), "uint8"))
    with pytest.raises(InvalidInputError, match="no training examples"):
        TrainingSet(TaskKind.SEG, [])
    with pytest.raises(InvalidInputError, match="unique"):
        TrainingSet(TaskKind.SEG, [Example("a", vol, None), Example("a", vol, None)])
    with pytest.raises(ValueError, match="split"):
        Example("a", vol, None, split="test")
