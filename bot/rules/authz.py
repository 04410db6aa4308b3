"""Authorization by structure: handlers that lack their siblings' guard, IDOR, mass assignment, GET writes.

A *handler* is a route function (Flask/FastAPI/DRF decorators, Express ``router.get(path, ...)``, Nest and
Spring mapping annotations) or a controller action (Rails public methods, Django/DRF class-based views).
Its *guard* is whatever its framework uses to require a user or a permission: decorators, ``Depends``
parameters, route middleware, ``before_action`` filters (with their ``only:``/``except:`` lists),
``permission_classes``, policy calls in the body. A new handler without a guard is a finding only when its
siblings in the same file or class are all guarded: the file's own convention, not ours, decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.models import Category, Severity
from bot.rules.base import CODE, JS, PY, RUBY, rule
from bot.rules.structural import (
    SHit,
    StructCheck,
    Unit,
    arguments,
    call_name,
    calls,
    first,
    positional_args,
)
from bot.rules.syntax import Def, find_all

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ast_grep_py import SgNode

_AUTH_WORD = re.compile(
    r"login_required|permission_required|requires?_?(?:auth|login|permission|role|scope|user|admin|signin)"
    r"|auth(?:enticat\w*|oriz\w*)?_?required|jwt_required|token_required|admin_required|staff_member_required"
    r"|superuser_required|roles?_(?:required|accepted)|user_passes_test|permission_classes|authenticated"
    r"|\bauthorize\w*|\bauthenticate\w*|\bprotect(?:ed)?\b|\bguard\w*|UseGuards|PreAuthorize|Secured|RolesAllowed"
    r"|isAuthenticated|ensureLoggedIn|ensureAuthenticated|requireAuth\w*|requireLogin|requireUser|requireAdmin"
    r"|requireRole|verifyToken|verifyJWT|checkJwt|\bauth\b|\bauthMiddleware\b|passport\.authenticate|isAdmin"
    r"|current_user|get_current\w*|require_\w+|check_permissions?|has_perms?|can\?|policy_scope|verify_user"
    r"|signed_in|logged_in|login_user|must_be\w*|only_\w*admin|restrict\w*",
    re.I,
)
_PUBLIC_NAME = re.compile(
    r"^(?:login|logout|log_in|log_out|signin|sign_in|signup|sign_up|register|health\w*|healthz|ping|status|"
    r"ready|readiness|liveness|metrics|index|home|root|public\w*|webhook\w*|callback\w*|oauth\w*|"
    r"forgot\w*|reset\w*|password_reset\w*|verify_email|confirm\w*|token|refresh|docs|openapi|favicon|"
    r"robots|sitemap|version|about|landing|new|create_session|sessions?|create_user|create_account)$",
    re.I,
)
_ROUTE_DECORATOR = re.compile(
    r"^@\s*[\w.]+\.(?:route|get|post|put|patch|delete|api_route|websocket)\s*\(|^@\s*api_view\b|^@\s*action\s*\("
)
_VIEW_BASE = re.compile(r"View\b|ViewSet\b|APIView\b|Resource\b|Handler\b|Mixin\b")
_JAVA_MAPPING = re.compile(r"@(?:Get|Post|Put|Delete|Patch|Request)Mapping\b")
_NEST_MAPPING = re.compile(r"^@(?:Get|Post|Put|Delete|Patch|All)\s*\(")
_EXPRESS_VERBS = {"get", "post", "put", "patch", "delete", "del", "all"}


@dataclass(frozen=True, eq=False)
class Handler:
    name: str
    node: SgNode  # the function, method, class or route call
    head_line: int  # 0-based line where the route/def starts
    guarded: bool
    group: str  # siblings share a group: the file, a class, a router object
    is_get: bool = False
    body: SgNode | None = None


def _decorators(d: Def, language: str) -> list[str]:
    out: list[str] = []
    if language == "python":
        p = d.node.parent()
        if p is not None and p.kind() == "decorated_definition":
            out = [c.text() for c in p.children() if c.kind() == "decorator"]
    elif language in ("typescript", "javascript"):
        prev = d.node.prev()
        while prev is not None and prev.kind() == "decorator":
            out.append(prev.text())
            prev = prev.prev()
        out.extend(c.text() for c in d.node.children() if c.kind() == "decorator")
    elif language == "java":
        mods = next((c for c in d.node.children() if c.kind() == "modifiers"), None)
        if mods is not None:
            out = [c.text() for c in mods.children() if "annotation" in c.kind()]
    return out


def _py_guarded(d: Def, decos: list[str]) -> bool:
    if any(_AUTH_WORD.search(x) for x in decos if not _ROUTE_DECORATOR.match(x)):
        return True
    if any("dependencies" in x and _AUTH_WORD.search(x) for x in decos):
        return True
    params = d.node.field("parameters")
    if (
        params is not None
        and re.search(r"\b(?:Depends|Security)\s*\(", params.text())
        and (_AUTH_WORD.search(params.text()) or re.search(r"user|token|auth|principal", params.text(), re.I))
    ):
        return True
    body = d.node.field("body")
    if body is not None:
        head = "\n".join(body.text().split("\n")[:6])  # a guard call opens the body
        if re.search(r"\b(?:check_permissions?|has_perms?|authorize\w*|require_\w+|abort\(\s*40[13]|"
                     r"raise\s+(?:PermissionDenied|Forbidden|HTTPException\(\s*(?:status_code\s*=\s*)?40[13]))",
                     head):  # fmt: skip
            return True
        if re.search(r"\bif\s+not\s+(?:request\.user\.|current_user\.|g\.user)", head):
            return True
    return False


def _python_handlers(unit: Unit) -> list[Handler]:
    tree = unit.head
    assert tree is not None
    out: list[Handler] = []
    for d in tree.defs:
        if d.kind == "function" and (d.parent is None or d.parent.kind == "class"):
            decos = _decorators(d, "python")
            if any(_ROUTE_DECORATOR.match(x) for x in decos):
                group = d.parent.qualname if d.parent else ""
                is_get = any(_py_route_is_get(x) for x in decos)
                out.append(Handler(d.name, d.node, d.start, _py_guarded(d, decos), group, is_get, d.node))
        elif d.kind == "class" and d.parent is None:
            sup = d.node.field("superclasses")
            if sup is None or not _VIEW_BASE.search(sup.text()):
                continue
            decos = _decorators(d, "python")
            body = d.node.field("body")
            text = body.text() if body is not None else ""
            guarded = bool(
                _AUTH_WORD.search(sup.text())
                or any(_AUTH_WORD.search(x) for x in decos)
                or re.search(r"^\s*(?:permission_classes|authentication_classes)\s*=", text, re.M)
                or re.search(r"^\s*def\s+(?:get_permissions|has_permission|dispatch)\b", text, re.M)
            )
            if re.search(r"^\s*permission_classes\s*=\s*[\[(]\s*(?:AllowAny)?\s*[\])]", text, re.M):
                guarded = False
            out.append(Handler(d.name, d.node, d.start, guarded, "", False, d.node))
    return out


def _py_route_is_get(deco: str) -> bool:
    if re.match(r"^@\s*[\w.]+\.get\s*\(", deco) or re.search(r"@\s*require_(?:GET|safe)\b", deco):
        return True
    if re.match(r"^@\s*[\w.]+\.route\s*\(", deco):
        m = re.search(r"methods\s*=\s*[\[(]([^\])]*)[\])]", deco)
        return m is None or re.sub(r"[\s\"',]", "", m.group(1)).upper() == "GET"
    if re.match(r"^@\s*api_view\b", deco):
        m = re.search(r"[\[(]([^\])]*)[\])]", deco)
        return m is None or re.sub(r"[\s\"',]", "", m.group(1)).upper() == "GET"
    return False


def _express_handlers(unit: Unit) -> list[Handler]:
    tree = unit.head
    assert tree is not None
    out: list[Handler] = []
    for call in calls(tree.root, unit.language):
        recv, name = call_name(call, unit.language)
        if name not in _EXPRESS_VERBS or not re.fullmatch(
            r"\w*(?:app|router|Router|api|routes|server|r)\w*", recv
        ):
            continue
        args = positional_args(call, unit.language)
        if len(args) < 2 or args[0].kind() not in ("string", "template_string"):
            continue
        middle = args[1:-1]
        guarded = any(_AUTH_WORD.search(m.text()) for m in middle)
        fn = args[-1]
        path = args[0].text().strip("'\"`")
        out.append(Handler(path, call, call.range().start.line, guarded, recv, name == "get", fn))
    return out


def _express_router_guarded(unit: Unit, group: str) -> bool:
    """``router.use(auth)`` guards every route of the router below it."""
    tree = unit.head
    assert tree is not None
    for call in calls(tree.root, unit.language):
        recv, name = call_name(call, unit.language)
        if name == "use" and recv == group and any(_AUTH_WORD.search(a.text()) for a in arguments(call)):
            return True
    return False


def _decorated_method_handlers(unit: Unit, mapping: re.Pattern[str], guard: re.Pattern[str]) -> list[Handler]:
    tree = unit.head
    assert tree is not None
    out: list[Handler] = []
    for d in tree.defs:
        if d.kind != "function" or d.parent is None or d.parent.kind != "class":
            continue
        decos = _decorators(d, unit.language)
        if not any(mapping.search(x.strip()) for x in decos):
            continue
        class_decos = _decorators(d.parent, unit.language)
        if any(guard.search(x) for x in class_decos):
            continue  # the class guards every method
        is_get = any(re.search(r"@Get\b|@GetMapping\b|method\s*=\s*RequestMethod\.GET", x) for x in decos)
        guarded = any(guard.search(x) for x in decos) or any(re.search(r"^@Public\b", x) for x in decos)
        out.append(Handler(d.name, d.node, d.start, guarded, d.parent.qualname, is_get, d.node))
    return out


_AUTH_FILTER = re.compile(r":\s*(?:authenticate|authorize|require|ensure|check)")
_RB_FILTER = re.compile(r"^\s*before_action\s+(.*)$|^\s*before_filter\s+(.*)$", re.M)


def _rails_handlers(unit: Unit) -> list[Handler]:
    tree = unit.head
    assert tree is not None
    out: list[Handler] = []
    for cls in tree.defs:
        if cls.kind != "class" or not cls.name.endswith("Controller"):
            continue
        body = cls.node.field("body") or next(
            (c for c in cls.node.children() if c.kind() == "body_statement"), None
        )
        if body is None:
            continue
        filters: list[tuple[set[str] | None, set[str]]] = []  # (only, except) per auth filter
        private_from: int | None = None
        for child in body.children():
            t = child.text()
            if child.kind() == "identifier" and t in ("private", "protected") and private_from is None:
                private_from = child.range().start.line
            if child.kind() == "call" and re.match(r"(?:prepend_)?before_(?:action|filter)\b", t):
                if not _AUTH_WORD.search(t.split(",")[0]) and not _AUTH_FILTER.search(t):
                    continue
                only = _sym_list(t, "only")
                exc = _sym_list(t, "except")
                filters.append((only, exc or set()))
            if child.kind() == "call" and re.match(r"skip_before_action\b", t) and _AUTH_WORD.search(t):
                only = _sym_list(t, "only")
                filters.append(
                    ({"\0"} if only is None else set(), only or set())
                )  # skipped actions: unguarded
        for m in find_all(body, "method"):
            parent = m.parent()
            if parent is None or parent.range().start.index != body.range().start.index:
                continue
            if private_from is not None and m.range().start.line > private_from:
                continue
            name_node = m.field("name")
            name = name_node.text() if name_node is not None else ""
            in_body = bool(
                re.search(r"\bauthorize!?\b|\bpolicy_scope\b|\bcan\?|\bauthorize_resource\b", m.text())
            )
            guarded = in_body or any(
                (only is None or name in only) and name not in exc
                for only, exc in filters
                if "\0" not in (only or ())
            )
            out.append(Handler(name, m, m.range().start.line, guarded, cls.qualname, False, m))
    return out


def _sym_list(text: str, key: str) -> set[str] | None:
    m = re.search(rf"\b{key}:\s*(\[[^\]]*\]|:\w+[!?]?|%i\[[^\]]*\])", text)
    if m is None:
        return None
    return set(re.findall(r":?(\w+[!?]?)", m.group(1).replace("%i", ""))) - {"i"}


def handlers(unit: Unit) -> list[Handler]:
    lang = unit.language
    if lang == "python":
        return _python_handlers(unit)
    if lang in ("javascript", "typescript"):
        nest = _decorated_method_handlers(
            unit, _NEST_MAPPING, re.compile(r"@UseGuards\b|@Roles\b|@Auth\w*\b")
        )
        return nest + _express_handlers(unit)
    if lang == "java":
        guard = re.compile(r"@(?:PreAuthorize|Secured|RolesAllowed|PostAuthorize)\b")
        return _decorated_method_handlers(unit, _JAVA_MAPPING, guard)
    if lang == "ruby":
        return _rails_handlers(unit)
    return []


# --- rules ------------------------------------------------------------------------------------------

_MISSING_GUARD = rule(
    "authz-missing-guard",
    "Handler lacks the authorization check its siblings have",
    Category.AUTH,
    Severity.HIGH,
    CODE,
    "Every other handler here requires an authenticated or authorised caller, but this new one does not, so "
    "it is reachable by anyone.",
    "Add the same guard its siblings use (or mark it public explicitly if that is intended).",
    confidence=0.8,
    fixes={
        "python": "Add the decorator / `Depends(...)` / `permission_classes` the other views here use.",
        "javascript": "Add the auth middleware (or `@UseGuards(...)`) the other routes here use.",
        "ruby": "Cover the action with the `before_action` the other actions use (or call `authorize`).",
        "java": "Add the `@PreAuthorize`/`@Secured` annotation the other endpoints here carry.",
        "go": "Wrap the handler in the auth middleware the other routes here use.",
    },
)


def _missing_guard(unit: Unit) -> Iterator[SHit]:
    hs = handlers(unit)
    by_group: dict[str, list[Handler]] = {}
    for h in hs:
        by_group.setdefault(h.group, []).append(h)
    for group, members in by_group.items():
        for h in members:
            if h.guarded or _PUBLIC_NAME.match(h.name.strip("/").split("/")[-1] or "index"):
                continue
            line = unit.added_in(h.node)
            if line is None or (line > h.head_line + 3 and h.head_line not in unit.added):
                continue  # an old handler edited inside: not new
            if h.head_line not in unit.added and not any(
                i in unit.added for i in range(h.head_line, h.head_line + 2)
            ):
                continue
            sibs = [
                s for s in members if s is not h and not _PUBLIC_NAME.match(s.name.strip("/").split("/")[-1])
            ]
            old_sibs = [s for s in sibs if s.head_line not in unit.added]
            if not sibs or not all(s.guarded for s in sibs) or (not old_sibs and len(sibs) < 3):
                continue
            if unit.language in JS and _express_router_guarded(unit, group):
                continue
            conf = 0.8 if len(sibs) >= 3 else 0.7 if len(sibs) == 2 else 0.65
            said = (
                f"Its {len(sibs)} siblings are guarded."
                if len(sibs) > 1
                else "The other handler here is guarded."
            )
            yield SHit(h.head_line, conf, said)


# IDOR: an object loaded by an id from the request, unscoped, where the file's other lookups are scoped.
# An owner/tenant condition: a key of the lookup (owner=, account__owner=, user_id:, where: { userId })...
_SCOPE_KEY = re.compile(
    r"\b\w*(?:user|owner|tenant|org|organi[sz]ation|account|company|team|workspace|created_by|author|member)"
    r"(?:_id|Id|_pk)?\s*(?:=(?!=)|:)",
    re.I,
)
# ...or a lookup through the owner's own relation (current_user.posts.find, request.user.invoices.get).
_SCOPE_RECV = re.compile(
    r"current_user|currentUser|request\.user|req\.user|g\.user|ctx\.user|policy_scope"
    r"|^(?:self\.)?(?:user|owner|tenant|org|organization|account|team|workspace)\."
)
# Ownership checked after the load: the object's owner compared with the caller, or a policy call.
_SCOPE = re.compile(
    r"current_user|currentUser|request\.user|req\.user|req\.payload|g\.user|ctx\.user|\.owner\b"
    r"|\.user_id\b|\.userId\b|\.tenant\w*|\.organi[sz]ation\w*"
)
_ID_FROM_REQUEST = re.compile(
    r"\b(?:pk|id|\w+_id|\w+Id)\b|params\[:id\]|req\.params|request\.(?:GET|args|query_params|data)|params\[",
    re.I,
)
_LOOKUPS = {
    "python": {"get", "get_object_or_404", "filter", "first_or_404", "get_or_404"},
    "javascript": {"findByPk", "findById", "findOne", "findUnique", "findFirst", "findOneBy", "findOrFail"},
    "ruby": {"find", "find_by", "find_by!"},
    "java": {"findById", "getById", "getReferenceById", "getOne"},
    "go": {"First", "Find", "Take"},
}  # fmt: skip
_LOOKUPS["typescript"] = _LOOKUPS["javascript"]

_IDOR = rule(
    "authz-unscoped-lookup",
    "Object loaded by id without an owner or tenant scope",
    Category.AUTH,
    Severity.HIGH,
    CODE,
    "This record is fetched by an id the caller supplies with no owner/tenant condition, while the other "
    "lookups in this file are scoped to the current user: any caller can read or change anyone's record "
    "(IDOR).",
    "Scope the query like its siblings (filter by the current user, tenant or organisation) or check "
    "ownership before using the object.",
    confidence=0.75,
)


def _lookup_calls(unit: Unit) -> list[tuple[SgNode, bool, bool]]:
    """Every ORM lookup of the file: (call, scoped to an owner/tenant, keyed by an id from the caller)."""
    tree = unit.head
    assert tree is not None
    lang = unit.language
    names = _LOOKUPS.get(lang, set())
    out: list[tuple[SgNode, bool, bool]] = []
    for call in calls(tree.root, lang):
        recv, name = call_name(call, lang)
        if name not in names:
            continue
        if lang == "python" and name in ("get", "filter") and ".objects" not in recv and "query" not in recv:
            continue
        if lang == "ruby" and not re.match(r"^[A-Z]|current_user|@\w+", recv):
            continue
        args_text = " ".join(a.text() for a in arguments(call))
        scoped = bool(_SCOPE_RECV.search(recv) or _SCOPE_KEY.search(args_text))
        out.append((call, scoped, bool(_ID_FROM_REQUEST.search(args_text))))
    return out


def _idor(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    found = _lookup_calls(unit)
    for call, scoped, by_id in found:
        line = unit.added_in(call)
        if scoped or not by_id or line is None:
            continue
        others = [(s, i) for c, s, i in found if c is not call]
        if not any(s for s, _ in others) or any(i and not s for s, i in others):
            continue  # no sibling is scoped, or another id lookup is unscoped too: not this file's convention
        d = tree.enclosing(call.range().start.line)
        after = d.node.text() if d is not None else ""
        rest = after[after.find(call.text()) + len(call.text()) :] if call.text() in after else ""
        if _SCOPE.search(rest) or re.search(
            r"authoriz|permission|has_perm|can\?|policy|forbid|40[34]", rest, re.I
        ):
            continue  # ownership checked after the load
        yield SHit(line)


# Mass assignment: the whole request body into a create/update, every field writable.
_MASS = rule(
    "mass-assignment",
    "Request data assigned to a model wholesale",
    Category.SECURITY,
    Severity.HIGH,
    PY | JS | RUBY,
    "Every attribute the caller sends is written to the record, including ones they must not set (owner, "
    "role, is_admin, balance): mass assignment.",
    "Copy only the fields this endpoint accepts (an explicit field list).",
    confidence=0.85,
    fixes={
        "python": "Validate through a serializer/form/schema with an explicit field list and save its "
        "validated data.",
        "javascript": "Pick the accepted fields (`const { name, email } = req.body`) or use a schema.",
        "ruby": "Use `params.require(:model).permit(:field, ...)` with the accepted fields only.",
    },
)
_PY_REQ_BODY = re.compile(
    r"^\*\*\s*(?:request\.(?:data|POST|GET|json|form|args|values|query_params)\b|request\.get_json\(\)"
    r"|(?:await\s+)?request\.json\(\))"
)
_JS_REQ_BODY = re.compile(r"^(?:\.\.\.)?\s*req(?:uest)?\.(?:body|query|params)\s*$")
_WRITE_NAMES = {"create", "update", "update_or_create", "get_or_create", "filter", "get", "build", "new",
                "insert", "findOneAndUpdate", "updateOne", "updateMany", "findByIdAndUpdate", "upsert", "set",
                "assign", "save", "insertOne", "bulkCreate", "update_attributes", "update!", "create!",
                "assign_attributes", "find", "findOne", "where", "findAll"}  # fmt: skip
_SENSITIVE_MODEL = re.compile(
    r"\b(?:User|Account|Profile|Member|Customer|Employee|Admin|Tenant)\b|get_user_model\(|AUTH_USER_MODEL"
)


def _mass(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    for call in calls(tree.root, lang):
        line = unit.added_in(call)
        if line is None:
            continue
        recv, name = call_name(call, lang)
        args = arguments(call)
        if lang == "python":
            if any(a.kind() == "dictionary_splat" and _PY_REQ_BODY.match(a.text()) for a in args):
                yield SHit(line)
        elif lang in JS:
            if name in _WRITE_NAMES or (recv == "Object" and name == "assign"):
                for a in args:
                    t = a.text()
                    if _JS_REQ_BODY.match(t) or (
                        a.kind() == "object" and re.search(r"\.\.\.\s*req\.body\b", t)
                    ):
                        yield SHit(first(unit.added_in(a), line), 0.85 if "body" in t else 0.75)
        elif lang == "ruby" and name == "permit!":
            yield SHit(line)
    if lang == "python":
        for cls in tree.defs:
            if cls.kind != "class" or cls.name != "Meta" or cls.parent is None:
                continue
            sup = cls.parent.node.field("superclasses")
            if sup is None or not re.search(r"ModelSerializer|ModelForm", sup.text()):
                continue
            body = cls.node.field("body")
            text = body.text() if body is not None else ""
            m = re.search(r"^\s*fields\s*=\s*[\"']__all__[\"']", text, re.M)
            if m is None:
                continue
            for a in find_all(cls.node, "assignment"):
                if re.match(r"fields\s*=", a.text()) and (ln := unit.added_in(a)) is not None:
                    conf = 0.75 if _SENSITIVE_MODEL.search(text) else 0.55
                    yield SHit(ln, conf, "`fields = '__all__'` makes every model field writable.")


# State-changing work in a GET handler.
_GET_WRITE = rule(
    "state-change-on-get",
    "State-changing action reachable through GET",
    Category.SECURITY,
    Severity.MEDIUM,
    CODE,
    "This GET handler changes data. GET is followed by crawlers, prefetchers and `<img>` tags and carries no "
    "CSRF protection, so anyone can make a logged-in user trigger it.",
    "Serve the change on POST/PUT/PATCH/DELETE (with CSRF protection) and keep GET read-only.",
    confidence=0.75,
)
# Not "commit": a GET that marks notifications read commits too; the write itself is the signal.
_MUTATORS = {"delete", "save", "update", "create", "destroy", "remove", "deleteOne", "deleteMany",
             "updateOne", "updateMany", "findByIdAndUpdate", "findByIdAndDelete", "findOneAndUpdate",
             "findOneAndDelete", "insert", "insertOne", "deleteById", "saveAndFlush", "bulk_create",
             "bulk_update", "update_all", "delete_all", "destroy_all", "upsert", "Delete", "Save", "Create",
             "Update", "Updates"}  # fmt: skip
_NOT_DATA = re.compile(
    r"cache|(?:^|[^.\w])session\b|request\.session|log|metric|stat|counter|redis|headers?|res\b|response|map|set\b|params"
    r"|cookies?|storage|queue|list|dict|arr|self\.(?:_|stack)|tmp|temp|buffer|form|file|path|os\b|shutil|"
    r"searchParams|url",
    re.I,
)


def _mutates(node: SgNode, lang: str) -> bool:
    for call in calls(node, lang):
        recv, name = call_name(call, lang)
        if name not in _MUTATORS or not recv or _NOT_DATA.search(recv):
            continue
        if re.search(r"current_user|request\.user|req\.user|g\.user", recv):
            continue  # the caller's own record (last seen, read markers)
        return True
    return False


def _get_write(unit: Unit) -> Iterator[SHit]:
    lang = unit.language
    tree = unit.head
    assert tree is not None
    helpers = {d.name: d.node for d in tree.defs if d.kind == "function" and d.parent is None}
    for h in handlers(unit):
        if not h.is_get or h.body is None:
            continue
        for call in calls(h.body, lang):
            recv, name = call_name(call, lang)
            if recv or name not in helpers or helpers[name] is h.node:
                if not _mutates(call, lang) or call.text().count("(") > 3:
                    continue
            elif not _mutates(helpers[name], lang):
                continue  # a same-file helper called from the handler: one level deep
            line = unit.added_in(call)
            if line is not None:
                yield SHit(line)
                break
    if lang == "ruby" and unit.path.endswith("routes.rb"):
        tree = unit.head
        assert tree is not None
        for call in calls(tree.root, lang):
            t = call.text()
            m = re.match(r"(?:get|match)\b", t)
            if m is None or (t.startswith("match") and not re.search(r"via:\s*(?::get|\[:get\]|\"get\")", t)):
                continue
            if (
                re.search(r"[#\"'/:](?:destroy|delete|remove|update|create)\b", t)
                and (ln := unit.added_in(call)) is not None
            ):
                yield SHit(ln)


_ROUTE_NEEDLES = ("route", ".get(", ".post(", ".put(", ".patch(", ".delete(", ".all(", "api_view", "view",
                  "mapping", "def ", "@get", "@post", "@put", "@delete", "@patch", "action")  # fmt: skip
CHECKS = (
    StructCheck(_MISSING_GUARD, _missing_guard, needles=_ROUTE_NEEDLES),
    StructCheck(_IDOR, _idor, needles=("get", "find", "first", "filter", "take")),
    StructCheck(
        _MASS, _mass, needles=("**request", "req.body", "req.query", "req.params", "permit!", "__all__")
    ),
    StructCheck(_GET_WRITE, _get_write, needles=(*_ROUTE_NEEDLES, *(m.lower() for m in _MUTATORS))),
)
