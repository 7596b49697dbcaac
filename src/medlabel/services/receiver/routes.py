"""Routes of the DICOM receiver: a called AE title delivers into one project.

Creating, listing and removing routes needs the reviewer role in the project (its
highest role) or a global administrator; ``actor`` None is the machine's operator (CLI).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence

from sqlalchemy import select

from medlabel.core.errors import ConflictError, InvalidInputError, NotFoundError
from medlabel.io.dimse import Peer, Refusal, RejectReason
from medlabel.security import audit
from medlabel.security.audit import AuditAction
from medlabel.security.roles import ProjectRole
from medlabel.services.access import Principal, project_role, require_project
from medlabel.services.context import Context
from medlabel.storage.db.models import DicomRoute, Project

log = logging.getLogger(__name__)

#: 1-16 printable ASCII characters, no backslash, no leading or trailing space (PS3.5 AE)
_AE_TITLE = re.compile(r"^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$")


def check_ae_title(value: str, what: str = "AE title") -> str:
    """``value`` without surrounding spaces, if it is a valid AE title.

    Raises
    ------
    InvalidInputError
        When it is empty, longer than 16 characters, or holds a backslash or a
        non-printable or non-ASCII character.

    Examples
    --------
    >>> check_ae_title(" CT_ROOM1 ")
    'CT_ROOM1'
    """
    title = value.strip()
    if not _AE_TITLE.match(title):
        raise InvalidInputError(
            f"{what} {value!r} is not valid: use 1-16 printable ASCII characters without "
            "a backslash, e.g. MEDLABEL_CT"
        )
    return title


def _networks(hosts: Iterable[str]) -> list[str]:
    out = []
    for host in hosts:
        try:
            out.append(str(ipaddress.ip_network(host.strip(), strict=False)))
        except ValueError:
            raise InvalidInputError(
                f"allowed host {host!r} is not an IP address or network (e.g. 10.1.2.3 or "
                "10.1.0.0/16); host names are not accepted"
            ) from None
    return sorted(set(out))


def add_route(
    ctx: Context,
    actor: Principal | None,
    project_id: int,
    ae_title: str,
    *,
    allowed_calling_aets: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
) -> DicomRoute:
    """Route studies sent to ``ae_title`` into a project.

    ``allowed_calling_aets`` and ``allowed_hosts`` (IP addresses or networks) restrict
    who may send; empty means anyone who reaches the port.

    Raises
    ------
    InvalidInputError
        An AE title or host is not valid.
    ConflictError
        Another route uses the AE title.
    NotFoundError, PermissionDeniedError
        The project does not exist, or the actor is not its reviewer.
    """
    title = check_ae_title(ae_title)
    callers = sorted({check_ae_title(a, "calling AE title") for a in allowed_calling_aets})
    hosts = _networks(allowed_hosts)
    with ctx.db.write() as s:
        if actor is not None:
            require_project(s, actor, project_id, ProjectRole.REVIEWER)
        elif s.get(Project, project_id) is None:
            raise NotFoundError(f"project {project_id} not found")
        if s.scalar(select(DicomRoute.id).where(DicomRoute.ae_title == title)) is not None:
            raise ConflictError(
                f"the AE title {title!r} already routes to a project; remove that route first "
                "or choose another title"
            )
        route = DicomRoute(
            ae_title=title,
            project_id=project_id,
            allowed_calling_aets=callers,
            allowed_hosts=hosts,
            created_by=actor.id if actor else None,
        )
        s.add(route)
        s.flush()
        audit.record(
            s,
            actor,
            AuditAction.DICOM_ROUTE_CREATE,
            target_type="dicom_route",
            target_id=route.id,
            project_id=project_id,
            details={"ae_title": title, "calling_aets": len(callers), "hosts": len(hosts)},
        )
    log.info("DICOM route %s -> project id=%s created", title, project_id)
    return route


def list_routes(
    ctx: Context, actor: Principal | None, project_id: int | None = None
) -> list[DicomRoute]:
    """Routes of one project, or of every project the actor is a reviewer of."""
    with ctx.db.read() as s:
        query = select(DicomRoute).order_by(DicomRoute.ae_title)
        if project_id is not None:
            if actor is not None:
                require_project(s, actor, project_id, ProjectRole.REVIEWER)
            query = query.where(DicomRoute.project_id == project_id)
        routes = list(s.scalars(query))
        if actor is None or actor.is_admin:
            return routes
        allowed: dict[int, bool] = {}
        out = []
        for route in routes:
            if route.project_id not in allowed:
                role = project_role(s, actor, route.project_id)
                allowed[route.project_id] = role is not None and role.at_least(ProjectRole.REVIEWER)
            if allowed[route.project_id]:
                out.append(route)
        return out


def find_route(ctx: Context, ae_title: str) -> DicomRoute | None:
    """The route of a called AE title (for the receiver and the operator)."""
    with ctx.db.read() as s:
        return s.scalar(select(DicomRoute).where(DicomRoute.ae_title == ae_title.strip()))


def remove_route(ctx: Context, actor: Principal | None, route_id: int) -> None:
    """Stop routing a called AE title (studies already received are kept).

    Raises
    ------
    NotFoundError, PermissionDeniedError
        No such route (or not visible to the actor), or the actor is not a reviewer of
        its project.
    """
    with ctx.db.write() as s:
        route = s.get(DicomRoute, route_id)
        if route is None:
            raise NotFoundError(f"DICOM route {route_id} not found")
        if actor is not None:
            require_project(s, actor, route.project_id, ProjectRole.REVIEWER)
        audit.record(
            s,
            actor,
            AuditAction.DICOM_ROUTE_DELETE,
            target_type="dicom_route",
            target_id=route.id,
            project_id=route.project_id,
            details={"ae_title": route.ae_title},
        )
        s.delete(route)
    log.info("DICOM route %s removed", route.ae_title)


def check_peer(route: DicomRoute | None, peer: Peer) -> Refusal | None:
    """Whether ``peer`` may deliver over ``route`` (None: yes)."""
    if route is None:
        return Refusal(
            f"no route for called AE title {peer.called_ae!r} (add one with `medlabel routes add`)",
            RejectReason.CALLED_AE,
        )
    if route.allowed_calling_aets and peer.calling_ae not in route.allowed_calling_aets:
        return Refusal(
            f"calling AE title {peer.calling_ae!r} may not send to {route.ae_title!r}",
            RejectReason.CALLING_AE,
        )
    if route.allowed_hosts:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            address = ipaddress.ip_address(peer.host)
        except ValueError:
            address = None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address is None or not any(
            address in ipaddress.ip_network(net) for net in route.allowed_hosts
        ):
            return Refusal(
                f"host {peer.host} may not send to {route.ae_title!r}", RejectReason.NO_REASON
            )
    return None
