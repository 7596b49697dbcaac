"""All ORM models; importing this package registers every table on ``Base.metadata``."""

from medlabel.storage.db.base import Base
from medlabel.storage.db.models.annotations import Annotation, Draft, Revision
from medlabel.storage.db.models.images import Image, ImportRecord, Instance, Series, Study
from medlabel.storage.db.models.projects import Export, Label, Project, ProjectMember
from medlabel.storage.db.models.proposals import Proposal
from medlabel.storage.db.models.users import AuthToken, User

__all__ = [
    "Annotation",
    "AuthToken",
    "Base",
    "Draft",
    "Export",
    "Image",
    "ImportRecord",
    "Instance",
    "Label",
    "Project",
    "ProjectMember",
    "Proposal",
    "Revision",
    "Series",
    "Study",
    "User",
]
