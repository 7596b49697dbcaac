"""Active-learning strategies on constructed candidates, and the reader queue following
the project's chosen strategy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from medlabel.active import (
    STRATEGIES,
    Candidate,
    CombinedStrategy,
    DiversityStrategy,
    ForegroundRandomStrategy,
    OrderStrategy,
    RandomStrategy,
    Strategy,
    UncertaintyStrategy,
    make_strategy,
)
from medlabel.core.errors import InvalidInputError
from medlabel.services import assignments as assign_svc
from medlabel.services.context import Context
from medlabel.services.projects import get_project, update_project
from medlabel.storage.db.models import ImageScore, ModelVersion
from tests.services.reader_study import make_study


def ids(strategy: Strategy, cands: list[Candidate]) -> list[int]:
    return [r.image_id for r in strategy.rank(cands)]


# edge cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", STRATEGIES)
def test_empty_and_single(name: str) -> None:
    s = make_strategy(name)
    assert s.rank([]) == []
    assert ids(s, [Candidate(7)]) == [7]


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_candidate_once_even_without_scores(name: str) -> None:
    cands = [Candidate(i) for i in (5, 2, 9, 1)]
    assert sorted(ids(make_strategy(name), cands)) == [1, 2, 5, 9]


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="distinct"):
        OrderStrategy().rank([Candidate(1), Candidate(1)])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        Candidate(1, uncertainty=1.5)
    with pytest.raises(ValueError, match="unknown active-learning strategy"):
        make_strategy("clever")
    with pytest.raises(ValueError, match="labelled kinds"):
        DiversityStrategy(((0.0,),), labelled_kinds=("a", "b"))


# each strategy ---------------------------------------------------------------------------
def test_order_is_by_id() -> None:
    assert ids(OrderStrategy(), [Candidate(3), Candidate(1), Candidate(2)]) == [1, 2, 3]


def test_random_is_seeded_and_stable_per_image() -> None:
    cands = [Candidate(i) for i in range(1, 40)]
    a, b, c = (ids(RandomStrategy(seed), cands) for seed in (1, 1, 2))
    assert a == b and a != c and a != sorted(a)
    # an image's draw does not depend on the other candidates
    fewer = [x for x in a if x % 2]
    assert ids(RandomStrategy(1), [Candidate(i) for i in fewer]) == fewer


def test_foreground_random_prefers_images_with_structures() -> None:
    cands = [Candidate(i, foreground=100 if i <= 20 else 0) for i in range(1, 41)]
    order = ids(ForegroundRandomStrategy(seed=3, background_weight=0.01), cands)
    top = order[:20]
    assert sum(i <= 20 for i in top) >= 18
    assert ids(ForegroundRandomStrategy(seed=3), cands) == ids(
        ForegroundRandomStrategy(seed=3), cands
    )


def test_uncertainty_most_uncertain_first_unscored_last() -> None:
    cands = [
        Candidate(1, uncertainty=0.1),
        Candidate(2),
        Candidate(3, uncertainty=0.9),
        Candidate(4, uncertainty=0.5),
        Candidate(5, uncertainty=0.5),
    ]
    ranked = UncertaintyStrategy().rank(cands)
    assert [r.image_id for r in ranked] == [3, 4, 5, 1, 2]
    assert ranked[0].score == 0.9 and ranked[-1].score == float("-inf")


def _clusters() -> list[Candidate]:
    """Two tight clusters (ids 1-3 near the origin, 4-6 near (10, 10)) and an outlier 7."""
    pts = {
        1: (0, 0),
        2: (0.1, 0),
        3: (0, 0.1),
        4: (10, 10),
        5: (10.1, 10),
        6: (10, 10.1),
        7: (-8, 9),
    }
    return [Candidate(i, embedding=tuple(map(float, p))) for i, p in pts.items()]


def test_diversity_spreads_over_clusters() -> None:
    first3 = ids(DiversityStrategy(), _clusters())[:3]
    groups = [{1, 2, 3}, {4, 5, 6}, {7}]
    assert all(len(set(first3) & g) == 1 for g in groups)


def test_diversity_starts_away_from_labelled_images() -> None:
    labelled = ((0.0, 0.0), (10.0, 10.0))
    assert ids(DiversityStrategy(labelled), _clusters())[0] == 7


def test_combined_weighs_uncertainty_and_diversity() -> None:
    base = {c.image_id: c for c in _clusters()}
    unc = {1: 0.9, 2: 0.85, 3: 0.8, 4: 0.2, 5: 0.2, 6: 0.2, 7: 0.05}
    cands = [Candidate(i, uncertainty=u, embedding=base[i].embedding) for i, u in unc.items()]
    order = ids(CombinedStrategy(labelled=((10.0, 10.0),)), cands)
    # the uncertain cluster first, but not two of its near-duplicates in a row
    assert order[0] in {1, 2, 3}
    assert order[1] not in {1, 2, 3}
    # pure uncertainty would take the near-duplicates one after the other
    assert ids(UncertaintyStrategy(), cands)[:3] == [1, 2, 3]


@pytest.mark.parametrize("strategy", [DiversityStrategy(), CombinedStrategy(unknown_weight=1.0)])
def test_mixed_embedding_kinds_are_never_compared(strategy: DiversityStrategy) -> None:
    # the majority: model features of one model (2 numbers); a thumbnail of the same
    # length, another model's features and a longer vector come after, by image id
    feats = [Candidate(c.image_id, embedding=c.embedding, embedding_kind="model-features:1")
             for c in _clusters()]  # fmt: skip
    others = [
        Candidate(20, embedding=(100.0, 100.0), embedding_kind="thumbnail"),
        Candidate(11, embedding=(-50.0, 0.0), embedding_kind="model-features:2"),
        Candidate(30, embedding=(1.0, 2.0, 3.0), embedding_kind="model-features:1"),
        Candidate(9),
    ]
    ranked = strategy.rank(feats + others)
    order = [r.image_id for r in ranked]
    assert sorted(order[:7]) == [1, 2, 3, 4, 5, 6, 7]
    assert order[7:] == [9, 11, 20, 30]
    assert all(r.score == float("-inf") for r in ranked[7:])
    # the far-away vectors of other kinds did not take part: same picks without them
    assert order[:7] == [r.image_id for r in strategy.rank(feats)]


def test_labelled_embeddings_of_another_kind_are_ignored() -> None:
    feats = [Candidate(c.image_id, embedding=c.embedding, embedding_kind="model-features:1")
             for c in _clusters()]  # fmt: skip
    # a thumbnail at the lone point 7 must not make 7 look labelled
    thumb = make_strategy("diversity", labelled=[(-8.0, 9.0)], labelled_kinds=["thumbnail"])
    same = make_strategy(
        "diversity", labelled=[(-8.0, 9.0), (0.0, 0.0)], labelled_kinds=["model-features:1"] * 2
    )
    assert ids(thumb, feats) == ids(DiversityStrategy(), feats)
    assert ids(same, feats)[0] in {4, 5, 6}  # away from both labelled points
    # ties between kinds: the longer vectors, then the kind's name
    tie = [Candidate(1, embedding=(0.0,), embedding_kind="a"),
           Candidate(2, embedding=(0.0, 1.0), embedding_kind="b")]  # fmt: skip
    assert ids(DiversityStrategy(), tie) == [2, 1]


# the queue follows the project's strategy --------------------------------------------------
def test_queue_follows_the_chosen_strategy(ctx: Context) -> None:
    study = make_study(ctx, readers_per_image=1, blinded=False)
    a, b, c = study.image_ids
    with ctx.db.write() as s:
        model = ModelVersion(
            project_id=study.project_id, task="seg", name="m", version=1, weights_digest="0" * 64
        )
        s.add(model)
        s.flush()
        for image_id, u in ((a, 0.1), (b, 0.2), (c, 0.8)):
            s.add(
                ImageScore(
                    project_id=study.project_id,
                    image_id=image_id,
                    model_id=model.id,
                    uncertainty=u,
                    foreground=10,
                    embedding=[u, 0.0],
                )
            )
    with ctx.db.read() as s:  # default: image order
        assert assign_svc.rank_candidates(s, study.project_id, [c, a, b]) == [a, b, c]
    with pytest.raises(InvalidInputError, match="unknown active_strategy"):
        update_project(ctx, study.admin, study.project_id, active_strategy="clever")
    update_project(ctx, study.admin, study.project_id, active_strategy="uncertainty")
    assert get_project(ctx, study.admin, study.project_id).project.active_strategy == "uncertainty"
    first = assign_svc.next_in_queue(ctx, study.ann, study.project_id)
    assert first is not None and first.image.id == c
    second = assign_svc.next_in_queue(ctx, study.bob, study.project_id)
    assert second is not None and second.image.id == b


def test_project_api_sets_the_strategy(admin: object) -> None:
    client = admin  # a logged-in TestClient
    created = client.post("/api/projects", json={"name": "AL"})  # type: ignore[attr-defined]
    assert created.status_code in (200, 201), created.text
    pid = created.json()["id"]
    assert created.json()["active_strategy"] == "order"
    r = client.patch(f"/api/projects/{pid}", json={"active_strategy": "uncertainty-diversity"})  # type: ignore[attr-defined]
    assert r.status_code == 200 and r.json()["active_strategy"] == "uncertainty-diversity"
    bad = client.patch(f"/api/projects/{pid}", json={"active_strategy": "clever"})  # type: ignore[attr-defined]
    assert bad.status_code == 422


def test_queue_compares_model_features_of_one_model_only(ctx: Context) -> None:
    from medlabel.services.active_ranking import rank_images

    study = make_study(ctx, readers_per_image=1, blinded=False)
    a, b, c = study.image_ids
    with ctx.db.write() as s:
        models = []
        for version in (1, 2):
            m = ModelVersion(
                project_id=study.project_id, task="seg", name="m", version=version,
                weights_digest=str(version) * 64,
            )  # fmt: skip
            s.add(m)
            s.flush()
            models.append(m.id)
        rows = (  # image, model, embedding, kind
            (a, models[0], [0.0, 1.0], "model-features"),
            (b, models[0], [1.0, 0.0], "model-features"),
            (c, models[1], [0.0, 1.0], "model-features"),  # same numbers, another model
        )
        for image_id, model_id, emb, kind in rows:
            s.add(
                ImageScore(
                    project_id=study.project_id, image_id=image_id, model_id=model_id,
                    uncertainty=0.5, foreground=1, embedding=emb, embedding_kind=kind,
                )
            )  # fmt: skip
    update_project(ctx, study.admin, study.project_id, active_strategy="diversity")
    with ctx.db.read() as s:
        scores = list(s.scalars(select(ImageScore).order_by(ImageScore.image_id)))
        order = rank_images(s, study.project_id, [a, b, c])
    from medlabel.services.active_ranking import embedding_kind

    assert [embedding_kind(r) for r in scores] == [
        f"model-features:{models[0]}",
        f"model-features:{models[0]}",
        f"model-features:{models[1]}",
    ]
    # image c's features come from another model: ranked after the comparable ones
    assert sorted(order[:2]) == [a, b] and order[2] == c
