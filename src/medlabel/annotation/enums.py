"""Closed vocabularies of the annotation domain."""

from __future__ import annotations

from enum import StrEnum


class LabelKind(StrEnum):
    """What a label annotates."""

    MASK = "mask"
    BOX = "box"
    POINT = "point"
    CLASSIFICATION = "classification"
    NOTE = "note"


class AnnotationState(StrEnum):
    """Life cycle of one reader's annotation of an image."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class AnnotationKind(StrEnum):
    """Whose annotation it is: one reader's, or the consensus of several (no owner)."""

    READER = "reader"
    CONSENSUS = "consensus"


class ReviewDecision(StrEnum):
    """A reviewer's verdict on a submitted annotation."""

    APPROVE = "approve"
    REJECT = "reject"


class CommentKind(StrEnum):
    """What a review comment was written with: a plain remark or a review decision."""

    COMMENT = "comment"
    APPROVE = "approve"
    REJECT = "reject"


class ImageStatus(StrEnum):
    """Work status of an image, derived from its annotations."""

    UNLABELLED = "unlabelled"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    APPROVED = "approved"


class RevisionSource(StrEnum):
    """Who produced a revision: a person or an engine (model or algorithm)."""

    HUMAN = "human"
    ENGINE = "engine"
    IMPORT = "import"


class ProposalState(StrEnum):
    """Life cycle of an engine's proposal: waiting for the user, then kept or dropped."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
