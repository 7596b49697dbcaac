"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from medlabel.storage.db.base import Base
from medlabel.storage.db.models.annotations import Annotation, Draft, Revision
from medlabel.storage.db.models.audit import AuditEvent, AuditHead
from medlabel.storage.db.models.dicom_routes import DicomRoute
from medlabel.storage.db.models.evaluations import Evaluation
from medlabel.storage.db.models.images import Image, ImportRecord, Instance, Series, Study
from medlabel.storage.db.models.jobs import Job, JobLog
from medlabel.storage.db.models.models import ImageScore, ModelVersion
from medlabel.storage.db.models.pacs import PacsConnection
from medlabel.storage.db.models.projects import Export, Label, Project, ProjectMember
from medlabel.storage.db.models.proposals import Proposal
from medlabel.storage.db.models.review import Assignment, ReviewComment
from medlabel.storage.db.models.users import AuthToken, User

__all__ = [
    "Annotation",
    "Assignment",
    "AuditEvent",
    "AuditHead",
    "AuthToken",
    "Base",
    "DicomRoute",
    "Draft",
    "Evaluation",
    "Export",
    "Image",
    "ImageScore",
    "ImportRecord",
    "Instance",
    "Job",
    "JobLog",
    "Label",
    "ModelVersion",
    "PacsConnection",
    "Project",
    "ProjectMember",
    "Proposal",
    "ReviewComment",
    "Revision",
    "Series",
    "Study",
    "User",
]
