"""Trained models: training on accepted labels, the model directory format, prediction.

Importing this package (or :mod:`~medlabel.engines.deep.model_dir` and
:mod:`~medlabel.engines.deep.tasks`) does not import torch; the task modules that train
and predict (``segmentation`` and the modules it uses) import it and MONAI, installed by
the ``train`` extra.
"""

from __future__ import annotations
