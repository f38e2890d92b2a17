"""The web console (``gradguide web``): a FastAPI application with server-rendered pages.

``build_services(settings)`` opens the database, the knowledge base and the agent once;
``create_app(services)`` wires the routes; ``serve(settings)`` runs it with uvicorn. Every
route except the login page and the static files goes through ``guard`` (a role check, ids
in the path within range, and a CSRF check on every POST); before that, ``BodyGate``
(bot.web.gate) lets a request body in only from a logged-in user and only up to the cap.
Ticket actions call the handoff service the composition root gives it (``bot.root``), the
same use cases a counsellor's command in Telegram calls; the console imports no channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from bot.agent.agent import Agent
from bot.agent.curated import parse_cards
from bot.handoff.service import HandoffService
from bot.kb.models import Lang
from bot.kb.service import KnowledgeBase
from bot.prompts import Messages
from bot.settings import Settings
from bot.storage.console_store import Account, ConsoleStore, WebSession
from bot.storage.db import Database
from bot.storage.store import Clock, Store, utcnow
from bot.web.gate import MIB, BodyGate, Refusal, body_limit
from bot.web.labels import Labels
from bot.web.logs import configure_web_logging
from bot.web.security import LoginLimiter, same, token_hash

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "gg_session"
LOGIN_CSRF_COOKIE = "gg_login_csrf"
LANG_COOKIE = "gg_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
MAX_ID = 2**31 - 1
"""The largest id a path may name: the tables' ids are INTEGER (32 bits on PostgreSQL;
a bigger number made SQLite raise OverflowError and PostgreSQL refuse the query)."""

T = TypeVar("T")


@dataclass
class WebServices:
    """Everything the routes need, built once at start-up."""

    settings: Settings
    store: Store
    console: ConsoleStore
    kb: KnowledgeBase
    agent: Agent
    messages: Messages
    limiter: LoginLimiter
    handoff: HandoffService
    """The ticket use cases (claim, reply, transfer, resolve…), channel-free."""
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="web-kb")
    )
    """Knowledge-base and agent work is CPU-bound: one thread, off the event loop."""
    screened: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    """The unanswered page's questions: embedding and whether it is a crisis, by text."""

    @property
    def message_keys(self) -> frozenset[str]:
        return frozenset(self.messages.names())

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, partial(work, *args, **kwargs))

    async def reload_curated(self) -> int:
        """Give the agent the approved curated answers (as cards); how many are in use."""
        cards = parse_cards(await self.console.approved_cards())
        return await self.run(self.agent.use_curated, cards)

    async def close(self) -> None:
        await self.handoff.close()
        self.pool.shutdown(wait=False)


def build_services(
    settings: Settings,
    *,
    handoff: Callable[[Store, Messages], HandoffService],
    kb: KnowledgeBase | None = None,
    clock: Clock = utcnow,
) -> WebServices:
    database = Database.from_settings(settings)
    store = Store(database, clock=clock)
    console = ConsoleStore(store)
    knowledge = kb or KnowledgeBase.open(settings)
    messages = Messages.load()
    return WebServices(
        settings=settings,
        store=store,
        console=console,
        kb=knowledge,
        agent=Agent(knowledge, settings, messages),
        messages=messages,
        limiter=LoginLimiter(
            console,
            settings.web_login_attempts,
            dt.timedelta(minutes=settings.web_login_window_minutes),
        ),
        handoff=handoff(store, messages),
    )


# -- who is asking ---------------------------------------------------------------------


class NotLoggedIn(Exception):
    pass


class Forbidden(Exception):
    pass


class CsrfFailed(Exception):
    pass


@dataclass(frozen=True)
class Viewer:
    account: Account
    session: WebSession

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


def services_of(request: Request) -> WebServices:
    services: WebServices = request.app.state.services
    return services


def lang_of(request: Request) -> Lang:
    """The language cookie, else the browser's Accept-Language (zh or en), else zh."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in ("zh", "en"):
        return "en" if chosen == "en" else "zh"
    best: tuple[float, Lang] | None = None
    for part in request.headers.get("accept-language", "").split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("zh", "en"):
            continue
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if best is None or quality > best[0]:
            best = (quality, "en" if primary == "en" else "zh")
    return best[1] if best else "zh"


async def _viewer(request: Request) -> Viewer | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = await services_of(request).console.session(token_hash(token))
    return None if found is None else Viewer(found[1], found[0])


def _ids_in_range(request: Request) -> bool:
    """Every path parameter the route declares as ``int`` is a plain number from 1 to
    ``MAX_ID`` (anything else names nothing: 404, before a query is made)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return True
    for param in route.dependant.path_params:
        if param.field_info.annotation is not int:
            continue
        raw = str(request.path_params.get(param.alias, ""))
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_ID):
            return False
    return True


async def _check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not same(sent, expected):
        raise CsrfFailed


def guard(role: str) -> Callable[[Request], Awaitable[Viewer]]:
    """The check on every page and action: a live session, the role (admins may do what
    counsellors do), ids in the path within range (else 404), and on anything but GET/HEAD
    a CSRF token matching the session's."""

    async def check(request: Request) -> Viewer:
        viewer = await _viewer(request)
        if viewer is None:
            raise NotLoggedIn
        if role == "admin" and not viewer.account.is_admin:
            logger.warning(
                "account %s (%s) refused on %s",
                viewer.account.id,
                viewer.account.role,
                request.url.path,
            )
            raise Forbidden
        if not _ids_in_range(request):
            request.state.viewer = viewer  # the 404 page with the console's menu
            raise StarletteHTTPException(404)
        if request.method not in ("GET", "HEAD"):
            await _check_csrf(request, viewer.csrf)
        request.state.viewer = viewer
        return viewer

    return check


counsellor = Depends(guard("counsellor"))
admin = Depends(guard("admin"))


# -- rendering -------------------------------------------------------------------------


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    services = services_of(request)
    lang = lang_of(request)
    messages = services.messages
    viewer: Viewer | None = getattr(request.state, "viewer", None)

    def t(key: str, **values: Any) -> str:
        return messages.get(key, lang, **values)

    local = services.settings.local_time

    keys = services.message_keys
    flash = context.pop("flash", None)
    flash_text = t(flash) if isinstance(flash, str) and flash in keys else None
    labels = Labels(t, keys)

    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request,
        template,
        {
            "t": t,
            "lang": lang,
            "viewer": viewer,
            "account": viewer.account if viewer else None,
            "csrf": viewer.csrf if viewer else "",
            "settings": services.settings,
            "flash_text": flash_text,
            "local": local,
            "labels": labels,
            "format_wait": labels.wait,
            **context,
        },
        status_code=status_code,
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _wants_html(request: Request) -> bool:
    """A page load (redirect to the login page), not a form post or a background fetch by
    console.js (those get 401)."""
    return request.method in ("GET", "HEAD") and "hx-request" not in request.headers


def _same_site_referer(request: Request) -> str:
    """The path of the page a form was posted from (this site only), else the start page."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/"
    path = referer.path
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path + (f"?{referer.query}" if referer.query else "")


def create_app(services: WebServices) -> FastAPI:
    from bot.web import accounts as account_routes
    from bot.web import admin as admin_routes
    from bot.web import auth as auth_routes
    from bot.web import counsellor as counsellor_routes
    from bot.web import curated as curated_routes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.store.db.migrate()
        await services.reload_curated()
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="GradGuide console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = services
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        if _wants_html(request):
            return redirect(f"/login?next={request.url.path}")
        message = services.messages.get("web_login_required", lang_of(request))
        return PlainTextResponse(message, status_code=401)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "error.html", 403, message_key="web_forbidden")

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed) -> Response:
        viewer: Viewer | None = getattr(request.state, "viewer", None)
        logger.warning("CSRF check failed on %s", request.url.path)
        await services.console.audit(
            viewer.account if viewer else None, "csrf_refused", request.url.path
        )
        return render(request, "error.html", 403, message_key="web_csrf_failed")

    @app.exception_handler(RequestValidationError)
    async def invalid_form(request: Request, exc: RequestValidationError) -> Response:
        """A form field out of bounds (too long, not a number): a page in the console's
        language instead of FastAPI's JSON, with a link back to the page the form was on."""
        logger.info("invalid form on %s: %s", request.url.path, exc.errors()[:3])
        return render(
            request,
            "error.html",
            422,
            message_key="web_invalid_form",
            back=_same_site_referer(request),
            back_key="web_back",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render(request, "error.html", 404, message_key="web_not_found")
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)

    async def signed_in(scope: Scope) -> bool:
        return await _viewer(Request(scope)) is not None

    def refuse(scope: Scope, refusal: Refusal, limit: int) -> Response:
        """The gate's answer, in the visitor's language; the connection is closed after it
        (the body it did not read is not waited for)."""
        lang = lang_of(Request(scope))
        if refusal is Refusal.NOT_LOGGED_IN:
            text = services.messages.get("web_login_required", lang)
        else:
            size = f"{limit / MIB:g} MB" if limit >= MIB else f"{limit // 1024} KB"
            text = services.messages.get("web_body_too_large", lang, limit=size)
        return PlainTextResponse(text, refusal.value, headers={"Connection": "close"})

    # added first, so that it runs inside security_headers (its answers get the headers)
    app.add_middleware(
        BodyGate, limit=body_limit(services.settings), signed_in=signed_in, refuse=refuse
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    app.include_router(auth_routes.router)
    app.include_router(counsellor_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(account_routes.router)
    app.include_router(curated_routes.router)
    return app


def serve(services: WebServices) -> None:
    """``gradguide web``: the console on ``web_host:web_port`` (uvicorn), with the services
    the composition root built (``bot.root.web_services``)."""
    import uvicorn

    settings = services.settings
    configure_web_logging(settings)
    if not services.kb.documents():
        services.kb.ensure_built()
    app = create_app(services)
    uvicorn.run(
        app,
        host=settings.web_host,
        port=settings.web_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's logs go through the root handlers, redacted (bot.web.logs)
        proxy_headers=True,
    )
