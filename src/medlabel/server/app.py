"""``create_app(settings)``: the one place the HTTP application is wired."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware

from medlabel import __version__
from medlabel.core.settings import Settings
from medlabel.server.access import AccessLogMiddleware
from medlabel.server.api import (
    agreement,
    assignments,
    audit,
    auth,
    dicom_routes,
    engines,
    evaluations,
    exports,
    health,
    images,
    imports,
    jobs,
    models,
    projects,
    proposals,
    review,
    users,
)
from medlabel.server.api import annotations as annotations_api
from medlabel.server.api import pacs as pacs_api
from medlabel.server.errors import install_error_handlers
from medlabel.server.limits import BodyLimitMiddleware
from medlabel.server.origin import AuditOriginMiddleware
from medlabel.server.web import mount_web
from medlabel.services.context import Context, open_context

API_PREFIX = "/api"

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def create_app(settings: Settings, *, ctx: Context | None = None) -> FastAPI:
    """Build the FastAPI application for ``settings`` (opening the database and blob
    store unless a ready :class:`Context` is given)."""
    context = ctx or open_context(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        receiver = None
        if settings.dicom_port is not None:  # C-STORE receiver; `serve --workers N` runs its own
            from medlabel.services.receiver import Receiver

            receiver = Receiver(context)
            await run_in_threadpool(receiver.start)
        # settle jobs a dead process left running, run the queued ones
        await run_in_threadpool(context.start_jobs)
        if settings.prestart_workers:
            context.prestart_process_pool()
        preloader = None
        if settings.preload_engines:  # load models off the request path
            preloader = threading.Thread(
                target=context.preload_engines,
                args=(list(settings.preload_engines),),
                name="medlabel-preload-engines",
                daemon=True,
            )
            preloader.start()
        yield
        if receiver is not None:
            await run_in_threadpool(receiver.stop)
        if preloader is not None:
            # a process must not exit while a thread is still loading native libraries
            # (PyTorch aborts with "terminate called without an active exception")
            await run_in_threadpool(preloader.join, 300.0)
        if ctx is None:
            context.close()

    app = FastAPI(
        title="medlabel",
        version=__version__,
        description="AI-assisted annotation of medical images.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.ctx = context
    install_error_handlers(app)

    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )

    @app.middleware("http")
    async def _headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith(API_PREFIX):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(
        BodyLimitMiddleware,
        upload_limit=settings.max_upload_bytes,
        other_limit=settings.max_json_bytes,
    )
    app.add_middleware(AuditOriginMiddleware)  # client address for the audit log
    app.add_middleware(AccessLogMiddleware)  # outermost: request id, one line per request
    routers = (
        health,
        auth,
        users,
        projects,
        images,
        assignments,
        agreement,
        pacs_api,  # before annotations: POST /annotations/{id}/push
        review,  # before annotations: its POST /annotations/{id}/{action} would match first
        annotations_api,
        proposals,
        engines,
        imports,
        dicom_routes,
        exports,
        evaluations,
        models,
        audit,
        jobs,
    )
    for module in routers:
        app.include_router(module.router, prefix=API_PREFIX)
    mount_web(app)
    return app
