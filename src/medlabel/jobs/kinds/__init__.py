"""The job kinds medlabel ships. Adding one: write its params model and function in a
module here and register it in :func:`register_all`."""

from __future__ import annotations

from medlabel.jobs.registry import JobKinds


def register_all(kinds: JobKinds) -> None:
    from medlabel.jobs.kinds import (
        evaluate,
        export,
        pacs_pull,
        preannotate,
        prepare_import,
        train,
    )

    kinds.register(export.KIND)
    kinds.register(evaluate.KIND)
    kinds.register(train.KIND)
    kinds.register(preannotate.KIND)
    kinds.register(pacs_pull.KIND)
    kinds.register(prepare_import.KIND)
