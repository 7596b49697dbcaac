"""The closed vocabulary of audited actions."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """What an audit event records. Values are stable: they are part of the hashed rows."""

    # sessions and credentials
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    # accounts and permissions
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    MEMBER_SET = "member.set"
    MEMBER_REMOVE = "member.remove"
    # projects and their label schema
    PROJECT_CREATE = "project.create"
    PROJECT_UPDATE = "project.update"
    PROJECT_DELETE = "project.delete"
    LABEL_CREATE = "label.create"
    LABEL_UPDATE = "label.update"
    LABEL_DELETE = "label.delete"
    # image data
    IMAGE_IMPORT = "image.import"
    IMAGE_READ = "image.read"
    # DICOM receiver: which called AE title delivers into which project
    DICOM_ROUTE_CREATE = "dicom_route.create"
    DICOM_ROUTE_DELETE = "dicom_route.delete"
    # PACS (DICOMweb) connections; a push sends an annotation out as DICOM SEG or SR
    PACS_CONNECTION_CREATE = "pacs_connection.create"
    PACS_CONNECTION_DELETE = "pacs_connection.delete"
    PACS_PUSH = "pacs.push"
    # annotations
    ANNOTATION_SAVE = "annotation.save"
    ANNOTATION_RESTORE = "annotation.restore"
    ANNOTATION_SUBMIT = "annotation.submit"
    ANNOTATION_APPROVE = "annotation.approve"
    ANNOTATION_REJECT = "annotation.reject"
    ANNOTATION_REOPEN = "annotation.reopen"
    PROPOSAL_ACCEPT = "proposal.accept"
    PROPOSAL_REJECT = "proposal.reject"
    # reader studies: who reads which image, and the review conversation
    ASSIGNMENT_CREATE = "assignment.create"
    ASSIGNMENT_REMOVE = "assignment.remove"
    ASSIGNMENT_REASSIGN = "assignment.reassign"
    ASSIGNMENT_DISTRIBUTE = "assignment.distribute"
    ASSIGNMENT_CLAIM = "assignment.claim"
    REVIEW_COMMENT = "review.comment"
    REVIEW_RESOLVE = "review.resolve"
    # background jobs (what a job does is recorded by the services it calls)
    JOB_SUBMIT = "job.submit"
    JOB_CANCEL = "job.cancel"
    JOB_RETRY = "job.retry"
    # evaluation reports (label statistics against the reference)
    EVALUATION_CREATE = "evaluation.create"
    EVALUATION_READ = "evaluation.read"
    # trained models of a project (registry)
    MODEL_CREATE = "model.create"
    MODEL_ACTIVATE = "model.activate"
    MODEL_DELETE = "model.delete"
    MODEL_DOWNLOAD = "model.download"
    # data leaving the system
    EXPORT_CREATE = "export.create"
    EXPORT_DOWNLOAD = "export.download"
    AUDIT_EXPORT = "audit.export"
    # every table and blob at once: `medlabel backup` (in the source), `restore` (in the target)
    BACKUP_CREATE = "backup.create"
    BACKUP_RESTORE = "backup.restore"


class ImageReadKind(StrEnum):
    """Which image data an ``image.read`` event covers."""

    SLICE = "slice"
    THUMBNAIL = "thumbnail"
    VOLUME = "volume"
    MASK = "mask"
    DICOM_HEADER = "dicom_header"
    STATS = "stats"
