"""The review web application: FastAPI, server-rendered pages (Jinja2) and one small script.

Every route needs a signed-in user; pages redirect to /login and the JSON API answers 401. Writes need the
session's CSRF token and, from a browser, an Origin of this site. Note text appears only in the bodies of
signed-in pages: never in URLs (a selection is sent as offsets), logs or error pages.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hmac
import itertools
import json
import logging
import math
import tempfile
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from deid.resources import Resources
from deid.review import stats
from deid.review.auth import Session, Sessions, Throttle, load_accounts
from deid.review.export import DICTIONARY_ACTIONS, safe_term, write_dictionary_patch, write_gold
from deid.review.sampling import STRATEGIES, Queue
from deid.review.source import FIELDS, ReviewSource
from deid.review.store import AuditBatch, Decision, ReviewStore, effective, outcomes, reviewers_done
from deid.spans import LABELS_ZH, EntityType

log = logging.getLogger("deid.review")
HERE = Path(__file__).resolve().parent
COOKIE = "deid_review_session"
TYPES = [t.value for t in EntityType]
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Referrer-Policy same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the page's own
# form posts, and the origin check would refuse them. No other site is told a URL of the page.
SECURITY_HEADERS = {
    "Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": ("default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'"),
}


@dataclass
class Settings:
    root: str
    notes_table: str
    accounts: str
    tls: bool = False                       # cookies get Secure
    trusted_proxy_header: str | None = None  # e.g. X-Remote-User, set by an authenticating reverse proxy
    trusted_proxies: tuple[str, ...] = ()    # that proxy's addresses: the header is believed from these only
    allowed_hosts: tuple[str, ...] = ()      # host names requests may be addressed to (Host); empty: any
    seed: int = 0
    double_share: float = 0.1
    quota: int = 20
    min_rejections: int = 2
    sign_in_free: int = 5                    # sign-ins a client may try at once; after them each one waits
    sign_in_delay_s: float = 1.0             # after the one before, this long, doubling with every attempt,
    sign_in_max_delay_s: float = 300.0       # up to this
    audit_batch_rows: int = 100              # failed sign-ins reach the audit table this many at a time,
    audit_batch_s: float = 10.0              # or this long after the first of them, and at shutdown
    resources: str | None = None             # the resources folder a dictionary export edits; None: the package's

    def resource_folder(self) -> Resources:
        return Resources(Path(self.resources)) if self.resources else Resources.packaged()


class NotSignedIn(Exception):
    pass


class Forbidden(Exception):
    pass


class Conflict(Exception):
    pass


def create_app(settings: Settings) -> FastAPI:
    source = ReviewSource(settings.root, settings.notes_table)
    store = ReviewStore(settings.root)
    queue = Queue(source, store, settings.seed, settings.double_share, settings.quota)
    accounts = load_accounts(settings.accounts)
    sessions = Sessions(accounts)
    throttle = Throttle(settings.sign_in_free, settings.sign_in_delay_s, settings.sign_in_max_delay_s)
    failed_sign_ins = AuditBatch(store, settings.audit_batch_rows, settings.audit_batch_s)
    proxy_sessions: dict[str, str] = {}
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        failed_sign_ins.flush()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def session_of(request: Request) -> Session | None:
        if settings.trusted_proxy_header and client_of(request) in settings.trusted_proxies:
            user = request.headers.get(settings.trusted_proxy_header)
            if user and user in accounts:
                token = proxy_sessions.get(user)
                if sessions.get(token) is None:
                    token = proxy_sessions[user] = sessions.open(accounts[user])
                return sessions.get(token)
        return sessions.get(request.cookies.get(COOKIE))

    def signed_in(request: Request, role: str | None = None) -> Session:
        session = session_of(request)
        if session is None:
            raise NotSignedIn()
        if role and session.role != role:
            raise Forbidden()
        return session

    def check_csrf(session: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, session.csrf):
            raise Forbidden()

    def page(request: Request, name: str, session: Session | None, status_code: int = 200,
             headers: dict | None = None, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"session": session, **context}, status_code=status_code,
                                          headers=headers)

    def host_allowed(request: Request) -> bool:
        return not settings.allowed_hosts or \
            urlsplit("//" + request.headers.get("host", "")).hostname in settings.allowed_hosts

    def same_origin(request: Request) -> bool:
        """Whether a state-changing request comes from this site's pages. Browsers name the page's origin on
        every POST (Origin) or at least whose page it was (Sec-Fetch-Site); a client that sends neither is not a
        browser, and has only what it was given (a password, a CSRF token) to act with."""
        origin = request.headers.get("origin")
        if origin is not None:
            return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Host and Origin checks before any route; the security headers on every answer, errors included."""
        if not host_allowed(request) or request.method not in SAFE_METHODS and not same_origin(request):
            response = PlainTextResponse("forbidden", status_code=403)
        else:
            try:
                response = await call_next(request)
            except Exception as exc:    # answered here: beyond, the server would log the traceback and message
                ref = uuid.uuid4().hex[:12]
                log.error("request failed: %s (ref %s)", type(exc).__name__, ref)   # the message may quote text
                response = PlainTextResponse(f"internal error (ref {ref})", status_code=500)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(NotSignedIn)
    async def _not_signed_in(request: Request, exc: NotSignedIn):
        if request.url.path.startswith("/api/") or request.method != "GET":
            return JSONResponse({"error": "sign in required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden):
        return PlainTextResponse("forbidden", status_code=403)

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict):
        return JSONResponse({"error": str(exc)}, status_code=409)

    async def form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request):
        return page(request, "login.html", None, message="")

    @app.post("/login")
    async def login(request: Request):
        data = await form(request)
        user, client = data.get("user", ""), client_of(request)
        wait = throttle.attempt(client)
        if wait:
            failed_sign_ins.add(user[:64], "sign_in_refused", detail=client)
            seconds = str(math.ceil(wait))
            return page(request, "login.html", None, status_code=429, headers={"Retry-After": seconds},
                        message=f"Too many failed attempts from this address; try again in {seconds} s.")
        token = await asyncio.to_thread(sessions.sign_in, user, data.get("password", ""))   # scrypt: off the loop
        if token is None:
            failed_sign_ins.add(user[:64], "sign_in_failed", detail=client)
            return page(request, "login.html", None, message="Unknown user or wrong password.")
        throttle.succeeded(client)
        store.audit(user, "sign_in")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=settings.tls, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request):
        session = signed_in(request)
        check_csrf(session, (await form(request)).get("csrf"))
        sessions.close(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request):
        session = signed_in(request)
        return page(request, "index.html", session, strategies=STRATEGIES, progress=queue.progress())

    @app.post("/next")
    async def next_note(request: Request):
        session = signed_in(request)
        data = await form(request)
        check_csrf(session, data.get("csrf"))
        strategy = data.get("strategy", "random")
        if strategy not in STRATEGIES:
            return PlainTextResponse("unknown strategy", status_code=400)
        note_id = queue.next(session.user, strategy)
        if note_id is None:
            return page(request, "index.html", session, strategies=STRATEGIES, progress=queue.progress(),
                        message=f"No note left for you in the {strategy} queue.")
        return RedirectResponse(f"/note/{note_id}?strategy={strategy}", status_code=303)

    def visible_note(session: Session, note_id: int):
        """The note, or None where it does not exist for this user: a reviewer sees only notes the job processed
        and did not quarantine (a quarantined note failed processing or repeats another's id: for an admin)."""
        view = source.note(note_id)
        if view is None or session.role == "admin":
            return view
        if view.processed_digest is None or view.digest in source.quarantined_digests(note_id):
            return None
        return view

    @app.get("/note/{note_id}", response_class=HTMLResponse)
    async def note_page(request: Request, note_id: int, strategy: str = "random"):
        session = signed_in(request)
        if strategy not in STRATEGIES:
            strategy = "random"
        view = visible_note(session, note_id)
        if view is None:
            return PlainTextResponse("no such note", status_code=404)
        store.audit(session.user, "view", note_id)
        rows = store.decisions(note_id)
        mine = outcomes([r for r in rows if r["note_digest"] == view.digest], session.user)
        live = effective(rows)
        stale = sum(1 for r in live if r["note_digest"] != view.digest)
        spans = [dict(s, i=i, text=view.original[s["field"]][s["span_start"]:s["span_end"]],
                      decision=mine.get((s["field"], s["span_start"], s["span_end"])))
                 for i, s in enumerate(view.spans)]
        known = {(s["field"], s["span_start"], s["span_end"]) for s in view.spans}
        added = [{"field": r["field"], "span_start": r["span_start"], "span_end": r["span_end"],
                  "entity_type": r["new_type"], "tier": r["new_tier"], "detector": "reviewer", "score": None,
                  "explanation": "added by reviewer", "decision": r,
                  "text": view.original[r["field"]][r["span_start"]:r["span_end"]]}
                 for key, r in mine.items() if r["action"] == "add" and key not in known]
        for i, s in enumerate(added, start=len(spans)):
            s["i"] = i
        all_spans = spans + added
        finished_by = reviewers_done(rows)
        comment = next((r["comment"] for r in reversed(live) if r["action"] == "comment"
                        and r["reviewer"] == session.user), "")
        return page(request, "note.html", session, view=view, spans=all_spans, strategy=strategy,
                    segments={f: segments(view.original[f], [s for s in all_spans if s["field"] == f]) for f in FIELDS},
                    fields=FIELDS, types=TYPES, labels={t: LABELS_ZH[EntityType(t)] for t in TYPES},
                    stale=stale, comment=comment or "", finished=session.user in finished_by,
                    reviewers=sorted(finished_by))

    def current_note(session: Session, note_id: int, digest: str | None):
        view = visible_note(session, note_id)
        if view is None:
            raise Conflict("no such note")
        if view.changed or digest != view.digest:
            raise Conflict("this note changed since the page was loaded; reload it (decisions were not saved)")
        return view

    async def api_call(request: Request, note_id: int):
        session = signed_in(request)
        check_csrf(session, request.headers.get("X-CSRF-Token"))
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise Conflict("the request body is not JSON") from None
        return session, data, current_note(session, note_id, data.get("digest"))

    @app.post("/api/note/{note_id}/decide")
    async def decide(request: Request, note_id: int):
        session, data, view = await api_call(request, note_id)
        action = data.get("action")
        strategy = data.get("strategy") if data.get("strategy") in STRATEGIES else ""
        base = dict(reviewer=session.user, note_id=note_id, note_digest=view.digest,
                    pipeline_version=view.pipeline_version or "", strategy=strategy)
        if action == "comment":
            decision = Decision(action="comment", comment=str(data.get("comment", ""))[:4000], **base)
        else:
            field, start, end = data.get("field"), data.get("start"), data.get("end")
            if field not in FIELDS or not isinstance(start, int) or not isinstance(end, int) \
                    or not 0 <= start < end <= len(view.original[field]):
                return JSONResponse({"error": "bad span"}, status_code=400)
            if action in DICTIONARY_ACTIONS and not safe_term(view.original[field][start:end]):
                return JSONResponse({"error": "the span is blank or holds a line break, tab or other control "
                                              "character; select the words alone"}, status_code=400)
            found = next((s for s in view.spans if (s["field"], s["span_start"], s["span_end"]) == (field, start, end)),
                         None)
            new_type = data.get("new_type")
            new_tier = data.get("new_tier")
            if new_type is not None and new_type not in TYPES or new_tier is not None and new_tier not in (1, 2, 3):
                return JSONResponse({"error": "bad type or tier"}, status_code=400)
            if action == "add":
                if found is not None or new_type is None or new_tier is None:
                    return JSONResponse({"error": "an added span needs a type and tier and must be new"},
                                        status_code=400)
                decision = Decision(action="add", field=field, span_start=start, span_end=end,
                                    new_type=new_type, new_tier=new_tier, **base)
            elif action in ("confirm", "retype", "retier", "reject"):
                prior = outcomes(store.decisions(note_id), session.user).get((field, start, end))
                if found is None and (prior is None or prior["action"] != "add"):
                    return JSONResponse({"error": "no such span"}, status_code=400)
                old_type = found["entity_type"] if found else prior["new_type"]
                old_tier = found["tier"] if found else prior["new_tier"]
                new_type = old_type if action in ("confirm", "retier") or new_type is None else new_type
                new_tier = old_tier if action in ("confirm", "retype") or new_tier is None else new_tier
                decision = Decision(action=action, field=field, span_start=start, span_end=end, old_type=old_type,
                                    old_tier=old_tier, new_type=None if action == "reject" else new_type,
                                    new_tier=None if action == "reject" else new_tier, **base)
            else:
                return JSONResponse({"error": "unknown action"}, status_code=400)
        store.append([decision])
        return {"ok": True, "decision_id": decision.decision_id}

    @app.post("/api/note/{note_id}/undo")
    async def undo(request: Request, note_id: int):
        session, data, view = await api_call(request, note_id)
        live = [r for r in effective(store.decisions(note_id)) if r["reviewer"] == session.user]
        if not live:
            return JSONResponse({"error": "nothing to undo"}, status_code=400)
        last = live[-1]
        store.append([Decision(reviewer=session.user, note_id=note_id, note_digest=view.digest,
                               pipeline_version=view.pipeline_version or "", action="undo",
                               strategy=last["strategy"], undoes=last["decision_id"])])
        return {"ok": True, "undone": last["action"]}

    @app.post("/api/note/{note_id}/done")
    async def done(request: Request, note_id: int):
        """Finish the note: spans the reviewer left alone are confirmed explicitly, in the same commit."""
        session, data, view = await api_call(request, note_id)
        strategy = data.get("strategy") if data.get("strategy") in STRATEGIES else ""
        mine = outcomes(store.decisions(note_id), session.user)
        base = dict(reviewer=session.user, note_id=note_id, note_digest=view.digest,
                    pipeline_version=view.pipeline_version or "", strategy=strategy)
        rows = [Decision(action="confirm", field=s["field"], span_start=s["span_start"], span_end=s["span_end"],
                         old_type=s["entity_type"], old_tier=s["tier"], new_type=s["entity_type"], new_tier=s["tier"],
                         **base)
                for s in view.spans if (s["field"], s["span_start"], s["span_end"]) not in mine]
        store.append(rows + [Decision(action="done", **base)])
        queue.release(session.user, note_id)
        return {"ok": True, "confirmed": len(rows)}

    @app.get("/progress", response_class=HTMLResponse)
    async def progress(request: Request):
        session = signed_in(request)
        rows = store.decisions()
        per_type = stats.precision_recall(rows)
        return page(request, "progress.html", session, progress=queue.progress(), per_type=per_type,
                    agreement=stats.agreement(rows), bars=chart(per_type))

    @app.get("/export/{kind}")
    async def export(request: Request, kind: str):
        session = signed_in(request, role="admin")
        rows = store.decisions()
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "gold.jsonl":
                summary = write_gold(rows, source, Path(tmp) / "gold.jsonl")
                body = (Path(tmp) / "gold.jsonl").read_bytes()
            elif kind == "dictionaries.patch":
                summary = write_dictionary_patch(rows, source, tmp, settings.min_rejections,
                                                 settings.resource_folder())
                body = (Path(tmp) / "dictionaries.patch").read_bytes()
            else:
                return PlainTextResponse("unknown export", status_code=404)
        store.audit(session.user, f"export {kind}",
                    detail=json.dumps({k: v for k, v in summary.items() if k != "path"}))
        return Response(body, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{kind}"'})

    return app


def segments(text: str, spans: list[dict]) -> list[dict]:
    """The text cut at every span boundary: [{start, text, span index or None}] (the first span wins overlaps)."""
    cuts = sorted({0, len(text), *[s["span_start"] for s in spans], *[s["span_end"] for s in spans]})
    out = []
    for a, b in itertools.pairwise(cuts):
        covering = [s for s in spans if s["span_start"] <= a and b <= s["span_end"]]
        out.append({"start": a, "text": text[a:b], "span": covering[0] if covering else None})
    return out


def chart(per_type: dict, width: int = 640, bar: int = 14, gap: int = 10) -> list[dict]:
    """Bars (precision and recall per type, 95% interval whiskers) as SVG coordinates."""
    out, y = [], 20
    scale = width - 200
    for t, s in per_type.items():
        for metric in ("precision", "recall"):
            value, ci = s[metric], s[f"{metric}_ci"]
            if value is not None:
                out.append({"label": f"{t} {metric[0].upper()}", "y": y, "w": round(value * scale, 1),
                            "lo": round(ci[0] * scale, 1), "hi": round(ci[1] * scale, 1), "value": f"{value:.3f}",
                            "metric": metric, "h": bar})
            y += bar + 4
        y += gap
    return out


def client_of(request: Request) -> str:
    """The address the request came from (the TCP peer: the server does not rewrite it from X-Forwarded-For)."""
    return request.client.host if request.client else ""


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_bind(host: str, tls: bool, trusted_proxy_header: str | None, trusted_proxies: tuple[str, ...] = ()) -> None:
    """The page shows raw PHI: off loopback it needs TLS, or a reverse proxy that authenticates and encrypts; a
    proxy's user header is believed only from the proxy's own addresses."""
    if host not in LOOPBACK and not tls and not trusted_proxy_header:
        raise SystemExit(f"error: refusing to listen on {host} without TLS (--tls-cert and --tls-key) or an explicit "
                         f"--trusted-proxy-header; the review page shows raw note text")
    if trusted_proxy_header and not trusted_proxies:
        raise SystemExit("error: a trusted proxy header needs the proxy's addresses (--trusted-proxy): from any other "
                         "client the header would sign in whoever it names")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8787, certfile: str | None = None,
          keyfile: str | None = None) -> None:
    import uvicorn
    check_bind(host, bool(certfile and keyfile), settings.trusted_proxy_header, settings.trusted_proxies)
    if host in LOOPBACK and not settings.allowed_hosts and not settings.trusted_proxy_header:
        # Served to this machine only: answer to its loopback names only (another name is DNS rebinding).
        settings = dataclasses.replace(settings, allowed_hosts=LOOPBACK)
    ReviewStore(settings.root).compact()
    app = create_app(settings)
    print(f"deid review on {'https' if settings.tls else 'http'}://{host}:{port}/ (tables under {settings.root})",
          flush=True)
    # proxy_headers off: X-Forwarded-For from a loopback client would otherwise become the client's address.
    uvicorn.run(app, host=host, port=port, ssl_certfile=certfile, ssl_keyfile=keyfile, log_level="info",
                server_header=False, proxy_headers=False)
