"""The reader queue's order under the project's active-learning strategy.

:func:`rank_images` builds :class:`~medlabel.active.Candidate` s from the image scores
pre-annotation stored (:class:`~medlabel.storage.db.models.ImageScore`; per image the
active model's score, else the newest) and ranks them with the project's strategy
(``projects.active_strategy``, default ``order``: by image id). Images handed out or
labelled already are the diversity strategies' "labelled" set.

Model-feature embeddings are comparable between images of one model only, so their kind
is ``model-features:<model id>``; thumbnails are ``thumbnail`` whatever the model (the
strategies compare only embeddings of one kind, see :mod:`medlabel.active.strategies`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from medlabel.active import Candidate, StrategyName, make_strategy
from medlabel.storage.db.models import ImageScore, ModelVersion, Project

log = logging.getLogger(__name__)

#: at most this many other images' embeddings seed the diversity strategies
MAX_LABELLED = 2000


def _best_scores(rows: Iterable[ImageScore], active: set[int]) -> dict[int, ImageScore]:
    """Per image: the active model's score, else the newest model's."""
    out: dict[int, ImageScore] = {}
    for r in rows:
        cur = out.get(r.image_id)
        if cur is None or (r.model_id in active, r.model_id) > (
            cur.model_id in active,
            cur.model_id,
        ):
            out[r.image_id] = r
    return out


def embedding_kind(score: ImageScore) -> str:
    """The comparable kind of a stored embedding (see the module docstring)."""
    kind = score.embedding_kind or "thumbnail"
    return f"{kind}:{score.model_id}" if kind == "model-features" else kind


def rank_images(s: Session, project_id: int, image_ids: Iterable[int]) -> list[int]:
    """``image_ids`` ordered by the project's strategy (no permission check)."""
    ids = sorted(set(int(i) for i in image_ids))
    project = s.get(Project, project_id)
    name = project.active_strategy if project is not None else StrategyName.ORDER.value
    if name == StrategyName.ORDER.value or len(ids) < 2:
        return ids
    active = set(
        s.scalars(
            select(ModelVersion.id).where(
                ModelVersion.project_id == project_id, ModelVersion.active.is_(True)
            )
        )
    )
    rows = list(s.scalars(select(ImageScore).where(ImageScore.project_id == project_id)))
    best = _best_scores(rows, active)
    wanted = set(ids)
    known = [r for i, r in sorted(best.items()) if i not in wanted and r.embedding][:MAX_LABELLED]
    labelled = [tuple(r.embedding) for r in known]
    candidates = []
    for i in ids:
        r = best.get(i)
        candidates.append(
            Candidate(
                i,
                uncertainty=None if r is None else min(1.0, max(0.0, float(r.uncertainty))),
                foreground=None if r is None else int(r.foreground),
                embedding=tuple(r.embedding) if r is not None and r.embedding else None,
                embedding_kind=embedding_kind(r) if r is not None else "",
            )
        )
    try:
        strategy = make_strategy(
            name,
            seed=project_id,
            labelled=labelled,
            labelled_kinds=[embedding_kind(r) for r in known],
        )
        return [r.image_id for r in strategy.rank(candidates)]
    except ValueError:  # an unknown stored name: keep the queue going
        log.warning(
            "project id=%s: strategy %r failed; image order", project_id, name, exc_info=True
        )
        return ids
