"""The ASGI app of ``llmops view``: a thin layer that renders the public queries.

Stack: Starlette (routing, requests, responses) served by uvicorn. Both are small, typed, pure
Python, and already what the ecosystem runs ASGI on; the pages are server-rendered with the Jinja2
the project already depends on (autoescaping on), plus one static script for live updates and
review keys. No Node build, no CDN: templates and assets are package data in the wheel.

Safety (model output, prompts, case inputs and trace attributes are untrusted):

- every value goes through Jinja2's autoescape; the script builds DOM with ``textContent`` only;
- a Content-Security-Policy allows scripts, styles, images and fetches from this origin only
  (no inline script, no inline style), and no framing;
- on a loopback bind, requests whose ``Host`` is not a loopback name are refused (DNS
  rebinding); on any other bind, every request needs the access token (``?token=`` once, then a
  SameSite=Strict cookie, or ``Authorization: Bearer``);
- the only write, ``POST /api/review``, needs ``X-LLMOps-Review: 1`` and a JSON body (a cross-site
  form or image cannot send either without a CORS preflight this app never answers), an
  ``Origin`` equal to this server's when the browser sends one, and is refused in read-only mode;
- ids from the URL are only ever SQL parameters or checked prompt names: nothing reads a path
  from the URL (static files come from a fixed list).
"""

from __future__ import annotations

import datetime
import hmac
import json
import math
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from llmops.errors import LLMOpsError, UserError
from llmops.view import queries as q
from llmops.view import review as rv

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HERE = Path(__file__).parent
STATIC = {"view.css": "text/css; charset=utf-8", "view.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
COOKIE = "llmops_view_token"
WRITE_HEADER = "x-llmops-review"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name only reaches this machine."""
    import ipaddress

    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


# ---- formatting helpers for the templates ----------------------------------------------------------
def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _usd(x: float | None) -> str:
    return "" if x is None else f"${x:.4f}"


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class ViewApp:
    """The viewer's state (project, mode, token) and its Starlette routes.

    Args:
        project: The open project (see :func:`llmops.view.open_project`).
        read_only: Refuse review writes.
        token: Access token every request must carry (None: none needed; loopback only).
        loopback: The server is bound to a loopback address: refuse non-loopback ``Host`` headers.
    """

    def __init__(self, project: q.ViewProject, *, read_only: bool = False, token: str | None = None,
                 loopback: bool = True) -> None:
        self.project = project
        self.read_only = read_only
        self.token = token
        self.loopback = loopback
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(when=_when, dur=_dur, pct=_pct, num=_num, usd=_usd, pretty=_pretty)
        self.env.globals.update(read_only=read_only, qs=self._qs)
        # The paired statistics of a big comparison take a while (the bootstrap resamples every
        # case): they are computed off the request path, one at a time, and the page polls.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-view-stats")
        self._pending: dict[tuple[Any, ...], Future[Any]] = {}
        self.starlette = Starlette(routes=[
            Route("/", self._home),
            Route("/runs", self._runs_page),
            Route("/runs/{run_id}", self._run_page),
            Route("/runs/{run_id}/cell", self._cell_page),
            Route("/compare", self._compare_page),
            Route("/traces", self._traces_page),
            Route("/traces/{trace_id}", self._trace_page),
            Route("/prompts", self._prompts_page),
            Route("/prompts/{name}", self._prompt_page),
            Route("/review", self._review_page),
            Route("/static/{name}", self._static),
            Route("/favicon.ico", self._favicon),
            Route("/api/runs", self._api_runs),
            Route("/api/live", self._api_live),
            Route("/api/runs/{run_id}", self._api_matrix),
            Route("/api/runs/{run_id}/progress", self._api_progress),
            Route("/api/runs/{run_id}/cell", self._api_cell),
            Route("/api/compare", self._api_compare),
            Route("/api/compare/statistics", self._api_statistics),
            Route("/api/traces", self._api_traces),
            Route("/api/traces/{trace_id}", self._api_trace),
            Route("/api/prompts", self._api_prompts),
            Route("/api/prompts/{name}/diff", self._api_prompt_diff),
            Route("/api/review", self._api_review, methods=["GET", "POST"]),
        ], exception_handlers={LLMOpsError: self._error, 404: self._not_found})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry: access rules first, then the routes, with the security headers added."""
        if scope["type"] == "http":
            refusal = self._refuse(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if self.token and self._token_in_query(scope) and scope["method"] == "GET":
                await self._set_cookie_and_redirect(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", []))
                    headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                                (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
                                (b"cache-control", b"no-store")]
                    message["headers"] = headers
                await send(message)

            await self.starlette(scope, receive, send_with_headers)
            return
        await self.starlette(scope, receive, send)

    # ---- access rules -------------------------------------------------------------------------------
    @staticmethod
    def _headers(scope: Scope) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

    def _token_in_query(self, scope: Scope) -> str | None:
        for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            if key == "token":
                return str(value)
        return None

    def _token_ok(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        offered: list[str] = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered.append(auth[7:].strip())
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                offered.append(value)
        query = self._token_in_query(scope)
        if query is not None:
            offered.append(query)
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)

    def _refuse(self, scope: Scope) -> ASGIApp | None:
        headers = self._headers(scope)
        host = headers.get("host", "")
        if self.loopback and not is_loopback(_host_name(host)):
            return PlainTextResponse(f"llmops view: refused Host {host!r} (this server answers loopback names "
                                     "only; this protects against DNS rebinding)", status_code=403)
        if self.token and not self._token_ok(scope, headers):
            return PlainTextResponse("llmops view: this server needs its access token: open the URL it printed "
                                     "at start (with ?token=...)", status_code=401)
        if scope["method"] not in ("GET", "HEAD"):
            return self._write_refusal(scope, headers)
        return None

    def _write_refusal(self, scope: Scope, headers: dict[str, str]) -> ASGIApp | None:
        if scope["method"] != "POST" or scope["path"] != "/api/review":
            return PlainTextResponse("method not allowed", status_code=405)
        if self.read_only:
            return JSONResponse({"error": "llmops view runs with --read-only: review marks are off"}, status_code=403)
        if headers.get(WRITE_HEADER) != "1":
            return JSONResponse({"error": f"a review write needs the {WRITE_HEADER} header (same-origin rule)"},
                                status_code=403)
        if not headers.get("content-type", "").startswith("application/json"):
            return JSONResponse({"error": "a review write needs a JSON body"}, status_code=415)
        origin = headers.get("origin")
        scheme = scope.get("scheme", "http")
        if origin is not None and origin != f"{scheme}://{headers.get('host', '')}":
            return JSONResponse({"error": f"cross-origin write refused (Origin {origin})"}, status_code=403)
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return JSONResponse({"error": "cross-site write refused"}, status_code=403)
        return None

    async def _set_cookie_and_redirect(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._token_ok(scope, self._headers(scope)):
            await PlainTextResponse("llmops view: wrong access token", status_code=401)(scope, receive, send)
            return
        rest = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        target = scope["path"] + ("?" + urlencode(rest) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.token or "", httponly=True, samesite="strict", path="/")
        await response(scope, receive, send)

    # ---- rendering ----------------------------------------------------------------------------------
    @staticmethod
    def _qs(base: dict[str, Any] | None = None, **changes: Any) -> str:
        params = {k: v for k, v in {**(base or {}), **changes}.items() if v not in (None, "", False)}
        return ("?" + urlencode(params)) if params else ""

    def _page(self, template: str, request: Request, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(request_path=request.url.path, args=dict(request.query_params),
                                                       **context)
        return HTMLResponse(html)

    async def _error(self, request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, UserError) else 500
        message = exc.message if isinstance(exc, LLMOpsError) else str(exc)
        hint = exc.hint if isinstance(exc, LLMOpsError) else None
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "hint": hint}, status_code=status)
        html = self.env.get_template("error.html").render(message=message, hint=hint, request_path="",
                                                          args={})
        return HTMLResponse(html, status_code=status)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return await self._error(request, UserError(f"no page {request.url.path}"))

    @staticmethod
    def _int(request: Request, key: str, default: int = 0) -> int:
        raw = request.query_params.get(key)
        if raw in (None, ""):
            return default
        try:
            return int(raw)
        except ValueError:
            raise UserError(f"'{key}' must be a whole number, got {raw!r}", key=key) from None

    @staticmethod
    def _time(request: Request, key: str) -> float | None:
        raw = request.query_params.get(key)
        if not raw:
            return None
        try:
            return datetime.datetime.fromisoformat(raw).timestamp()
        except ValueError:
            raise UserError(f"'{key}' must be a date or date and time (YYYY-MM-DD[THH:MM]), got {raw!r}",
                            key=key) from None

    # ---- pages --------------------------------------------------------------------------------------
    async def _home(self, request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    def _runs(self, request: Request) -> q.RunsPage:
        return q.list_runs(self.project, suite=request.query_params.get("suite") or None,
                           outcome=request.query_params.get("outcome") or None, offset=self._int(request, "offset"),
                           limit=self._int(request, "limit", q.PAGE_SIZE))

    def _runs_page(self, request: Request) -> Response:
        return self._page("runs.html", request, page=self._runs(request), newest=q.newest_run_created(self.project))

    def _matrix(self, request: Request) -> q.RunMatrix:
        return q.run_matrix(self.project, request.path_params["run_id"],
                            failures_only=request.query_params.get("failures") == "1",
                            search=request.query_params.get("q", ""), offset=self._int(request, "offset"),
                            limit=self._int(request, "limit", q.CASES_PAGE_SIZE))

    def _run_page(self, request: Request) -> Response:
        matrix = self._matrix(request)
        marks = rv.load_marks(self.project)
        rid = matrix.run.run_id
        return self._page("run.html", request, m=matrix, marks=marks,
                          review_id=lambda unit: q.review_id_for_unit(rid, unit),
                          progress=q.run_progress(self.project, rid))

    def _cell(self, request: Request) -> q.CellDetail:
        p = request.query_params
        for key in ("case", "prompt", "model"):
            if not p.get(key):
                raise UserError(f"missing query parameter '{key}'", key=key)
        return q.cell_detail(self.project, request.path_params["run_id"], p["case"], p["prompt"], p["model"])

    def _cell_page(self, request: Request) -> Response:
        return self._page("cell.html", request, c=self._cell(request))

    def _compare(self, request: Request, statistics: bool = True) -> q.SideBySide | None:
        p = request.query_params
        if not p.get("a"):
            return None
        return q.side_by_side(self.project, p["a"], p.get("b") or p["a"], a_prompt=p.get("a_prompt"),
                              a_model=p.get("a_model"), b_prompt=p.get("b_prompt"), b_model=p.get("b_model"),
                              offset=self._int(request, "offset"), limit=self._int(request, "limit", q.CASES_PAGE_SIZE),
                              statistics=statistics)

    def _statistics_job(self, s: q.SideBySide) -> Future[Any]:
        key = (s.a_run, s.a_prompt, s.a_model, s.b_run, s.b_prompt, s.b_model)
        with self.project._lock:
            job = self._pending.get(key)
            if job is None or (job.done() and job.exception() is not None):
                job = self._executor.submit(q.pair_statistics, self.project, s.a_run, s.b_run, a_prompt=s.a_prompt,
                                            a_model=s.a_model, b_prompt=s.b_prompt, b_model=s.b_model)
                self._pending[key] = job
            return job

    def _compare_page(self, request: Request) -> Response:
        recent = q.list_runs(self.project, limit=30).runs
        s = self._compare(request, statistics=False)
        if s is not None and s.comparison is None:
            self._statistics_job(s)
        return self._page("compare.html", request, s=s, recent=recent)

    def _traces(self, request: Request) -> q.TracesPage:
        p = request.query_params
        status = p.get("status") or None
        if status not in (None, "ok", "error"):
            raise UserError(f"status must be ok or error, got {status!r}", key="status")
        return q.list_traces(self.project, name=p.get("name") or None, model=p.get("model") or None,
                             prompt=p.get("prompt") or None, status=status,  # type: ignore[arg-type]
                             since=self._time(request, "since"), until=self._time(request, "until"),
                             offset=self._int(request, "offset"), limit=self._int(request, "limit", q.PAGE_SIZE))

    def _traces_page(self, request: Request) -> Response:
        return self._page("traces.html", request, page=self._traces(request))

    def _trace_page(self, request: Request) -> Response:
        view = q.trace_view(self.project, request.path_params["trace_id"])
        return self._page("trace.html", request, t=view,
                          review_id=lambda span: q.review_id_for_span(view.trace.trace_id, span))

    def _prompts_page(self, request: Request) -> Response:
        return self._page("prompts.html", request, prompts=q.list_prompts(self.project))

    def _diff(self, request: Request) -> q.PromptDiff:
        a = self._int(request, "a", -1)
        b = self._int(request, "b", -1)
        return q.prompt_diff(self.project, request.path_params["name"], None if a < 0 else a, None if b < 0 else b)

    def _prompt_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        info = next((p for p in q.list_prompts(self.project) if p.name == name), None)
        if info is None:
            raise UserError(f"no prompt '{name}'", key=name)
        return self._page("prompt.html", request, info=info, d=self._diff(request))

    def _review_page(self, request: Request) -> Response:
        return self._page("review.html", request, r=rv.review_summary(self.project))

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:  # a fixed list: nothing from the URL becomes a path
            raise UserError(f"no static file '{name}'")
        return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name])

    async def _favicon(self, request: Request) -> Response:
        return Response((HERE / "static" / "favicon.svg").read_bytes(), media_type=STATIC["favicon.svg"])

    # ---- JSON API -----------------------------------------------------------------------------------
    @staticmethod
    def _json(model: Any) -> JSONResponse:
        data = model.model_dump(mode="json") if hasattr(model, "model_dump") else model
        return JSONResponse(data)

    def _api_runs(self, request: Request) -> Response:
        return self._json(self._runs(request))

    def _api_live(self, request: Request) -> Response:
        ids = [i for i in request.query_params.get("runs", "").split(",") if i][:100]
        return JSONResponse({"newest": q.newest_run_created(self.project),
                             "runs": [q.run_progress(self.project, i).model_dump(mode="json") for i in ids]})

    def _api_matrix(self, request: Request) -> Response:
        return self._json(self._matrix(request))

    def _api_progress(self, request: Request) -> Response:
        return self._json(q.run_progress(self.project, request.path_params["run_id"]))

    def _api_cell(self, request: Request) -> Response:
        return self._json(self._cell(request))

    def _api_compare(self, request: Request) -> Response:
        s = self._compare(request)
        if s is None:
            raise UserError("missing query parameter 'a' (the baseline run)", key="a")
        return self._json(s)

    def _api_statistics(self, request: Request) -> Response:
        s = self._compare(request, statistics=False)
        if s is None:
            raise UserError("missing query parameter 'a' (the baseline run)", key="a")
        if s.comparison is not None:
            return self._json(s.comparison)
        job = self._statistics_job(s)
        if job.done() and job.exception() is not None:
            return JSONResponse({"error": str(job.exception())}, status_code=500)
        return JSONResponse({"status": "computing"}, status_code=202)

    def _api_traces(self, request: Request) -> Response:
        return self._json(self._traces(request))

    def _api_trace(self, request: Request) -> Response:
        return self._json(q.trace_view(self.project, request.path_params["trace_id"]))

    def _api_prompts(self, request: Request) -> Response:
        return JSONResponse([p.model_dump(mode="json") for p in q.list_prompts(self.project)])

    def _api_prompt_diff(self, request: Request) -> Response:
        return self._json(self._diff(request))

    async def _api_review(self, request: Request) -> Response:
        if request.method == "GET":
            return self._json(rv.review_summary(self.project))
        try:
            body = await request.json()
        except ValueError:
            raise UserError("the review body is not JSON") from None
        if not isinstance(body, dict):
            raise UserError("the review body must be a JSON object")
        try:
            target = rv.ReviewTarget.model_validate({k: body.get(k) for k in
                                                     ("kind", "run_id", "unit", "trace_id", "span_id")})
        except ValueError:
            raise UserError("kind must be run or trace, with run_id and unit, or trace_id and span_id",
                            key="kind") from None
        from starlette.concurrency import run_in_threadpool

        saved = await run_in_threadpool(rv.save_mark, self.project, target, str(body.get("label", "")),
                                        str(body.get("note") or ""))
        return self._json(saved)


def create_app(project: q.ViewProject, *, read_only: bool = False, token: str | None = None,
               loopback: bool = True) -> ViewApp:
    """The ASGI app of ``llmops view`` over an open project (see :class:`ViewApp`)."""
    return ViewApp(project, read_only=read_only, token=token, loopback=loopback)


def new_token() -> str:
    """A fresh access token (as Jupyter prints one)."""
    return secrets.token_urlsafe(24)
