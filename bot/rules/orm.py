"""Data-access defects by structure: N+1 through relation access, password hashes in responses, database
errors turned into "not found" or success.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bot.models import Category, Severity
from bot.rules.base import CODE, rule
from bot.rules.structural import SHit, StructCheck, Unit, assignments_to, call_name, calls, scope_of
from bot.rules.syntax import find_all

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ast_grep_py import SgNode

# --- N+1 through relation access ---------------------------------------------------------------------

_N1 = rule(
    "orm-relation-in-loop",
    "Related rows queried once per item (N+1)",
    Category.PERFORMANCE,
    Severity.MEDIUM,
    CODE,
    "Each iteration reads a relation of the current row through the ORM, which runs one query per row: "
    "a page of 100 rows costs 101 queries.",
    "Load the relation with the rows (or aggregate in the query).",
    confidence=0.75,
    fixes={
        "python": "Use `prefetch_related(...)`/`select_related(...)` (Django), `selectinload`/`joinedload` "
        "(SQLAlchemy), or `annotate(Count(...))` for counts.",
        "ruby": "Use `includes(...)`/`preload(...)`, or a counter cache for counts.",
        "javascript": "Use `include` (Sequelize/Prisma) or `populate` (Mongoose) on the first query.",
        "go": "Use `Preload(...)`/`Joins(...)` (GORM) or one query with a JOIN.",
        "java": "Use `JOIN FETCH` or an `@EntityGraph` on the repository method.",
    },
)
# Manager calls that always query (a prefetched .all() is served from cache; these are not).
_PY_QUERYING = re.compile(r"^(?:filter|exclude|get|count|exists|aggregate|order_by|values|values_list|first"
                          r"|last"
                          r"|latest|earliest|all)$")  # fmt: skip
_PY_QS = re.compile(r"\.objects\b|\.filter\(|\.all\(\)|\.exclude\(|queryset|get_queryset\(|\.query\b")
_PY_EAGER = re.compile(r"prefetch_related|select_related|selectinload|joinedload|subqueryload|annotate")
_RB_QUERYING = re.compile(r"^(?:where|find_by|find_by!|order|pluck|count|exists\?|sum|average|maximum|minimum"
                          r"|first|last|find|limit)$")  # fmt: skip
_RB_SCOPE = re.compile(r"^[A-Z]\w*(?:\.(?:all|where|order|limit|joins|find_each|find_in_batches)\b|$)")


def _n_plus_one(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    if unit.is_migration:
        return
    if lang == "python":
        for loop in find_all(tree.root, "for_statement"):
            var = loop.field("left")
            it = loop.field("right")
            body = loop.field("body")
            if var is None or it is None or body is None or var.kind() != "identifier":
                continue
            source = it.text()
            if it.kind() == "identifier":
                source = " ".join(
                    r.text() for r in assignments_to(scope_of(tree, it), it.text(), lang, 10**9)
                )
            if not _PY_QS.search(source) or _PY_EAGER.search(source):
                continue
            yield from _py_relation_calls(unit, body, var.text(), 0.75)
        for d in tree.defs:  # DRF: get_<field>(self, obj) runs once per serialised row
            if d.kind != "function" or d.parent is None or not d.name.startswith("get_"):
                continue
            sup = d.parent.node.field("superclasses")
            params = d.node.field("parameters")
            if sup is None or "Serializer" not in sup.text() or params is None:
                continue
            declared = re.findall(
                r"^\s*(\w+)\s*=\s*(?:serializers\.)?SerializerMethodField\(", d.parent.node.text(), re.M
            )
            if d.name.removeprefix("get_") not in declared:
                continue  # a helper, not the getter of a SerializerMethodField
            names = [p.text() for p in params.children() if p.kind() == "identifier"]
            if len(names) >= 2 and (body := d.node.field("body")) is not None:
                yield from _py_relation_calls(unit, body, names[1], 0.7, strict=True)
    elif lang == "ruby":
        for call in calls(tree.root, lang):
            recv, name = call_name(call, lang)
            if name not in ("each", "map", "each_with_object", "flat_map", "select", "collect", "sum"):
                continue
            if not _RB_SCOPE.match(recv) or re.search(r"\b(?:includes|preload|eager_load)\b", recv):
                continue
            block = call.field("block")
            if block is None:
                continue
            block_params = find_all(block, "block_parameters")
            if not block_params:
                continue
            item = block_params[0].text().strip("|").split(",")[0].strip()
            for inner in calls(block, lang):
                r2, n2 = call_name(inner, lang)
                own = re.fullmatch(rf"{re.escape(item)}\.\w+", r2) and _RB_QUERYING.match(n2)
                if own and (ln := unit.added_in(inner)) is not None:
                    yield SHit(ln)
                    break


def _py_relation_calls(
    unit: Unit, body: SgNode, var: str, conf: float, strict: bool = False
) -> Iterator[SHit]:
    for call in calls(body, "python"):
        recv, name = call_name(call, "python")
        m = re.fullmatch(rf"{re.escape(var)}\.(\w+)(?:\.objects)?", recv)
        if m is None or not _PY_QUERYING.match(name):
            continue
        attr = m.group(1)
        if attr.startswith("_"):
            continue  # _default_manager, _meta: model-level, not a relation of this row
        if name in ("get", "values", "first", "last") and not attr.endswith("_set"):
            continue  # obj.data.get(...) on a dict field, obj.items.first() on a list
        if strict and name in ("all", "count"):
            continue  # served from a prefetch when the view has one
        if (ln := unit.added_in(call)) is not None:
            yield SHit(ln, conf)
            return


# --- password hashes in responses ----------------------------------------------------------------------

_HASH_OUT = rule(
    "password-hash-exposed",
    "Password hash returned to the client",
    Category.SECURITY,
    Severity.HIGH,
    CODE,
    "A password (or its hash) is put into a response or an output serializer: hashes leak to every client "
    "that can read this resource and can be cracked offline.",
    'Leave password fields out of responses (`write_only=True`, `json:"-"`, an explicit field list).',
    confidence=0.8,
)
_PW_KEY = re.compile(
    r"^[\"':]?(?:password|passwd|password_?hash|hashed_?password|password_?digest|encrypted_?password|pwd_?hash"
    r"|passwordHash|hashedPassword|passwordDigest)[\"']?$",
    re.I,
)
_RESPONSE = re.compile(
    r"\b(?:return|jsonify|JsonResponse|Response|JSONResponse|res\.(?:json|send|status)|ctx\.body|render\s+json"
    r"|c\.JSON|json\.NewEncoder|make_response)\b"
)


def _hash_exposed(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    pair_kinds = {"python": "pair", "javascript": "pair", "typescript": "pair", "ruby": "pair"}
    kind = pair_kinds.get(lang)
    if kind is not None:
        for pair in find_all(tree.root, kind):
            key = pair.field("key")
            value = pair.field("value")
            if key is None or value is None or not _PW_KEY.match(key.text().rstrip(":")):
                continue
            if value.kind() in ("string", "true", "false", "none", "null", "integer", "number", "nil"):
                continue
            if not re.search(r"\.\w*(?:password|passwd|digest|hash)\w*", value.text(), re.I):
                continue  # the caller's own input echoed, or a form field: not a stored hash
            ctx = pair.parent()
            up = ctx.parent() if ctx is not None else None
            upper = up.parent() if up is not None else None
            around = upper.text()[:200] if upper is not None else ""
            if _RESPONSE.search(around) and (ln := unit.added_in(pair)) is not None:
                yield SHit(ln)
    if lang == "python":
        for cls in tree.defs:
            if cls.kind != "class" or cls.name != "Meta" or cls.parent is None:
                continue
            sup = cls.parent.node.field("superclasses")
            if sup is None or "Serializer" not in sup.text():
                continue
            serializer = cls.parent.node.text()
            if re.search(r"write_only\s*[\"']?\s*[:=]\s*True", serializer):
                continue
            body = cls.node.text()
            user_model = re.search(r"model\s*=\s*(?:\w+\.)*(?:User|get_user_model\(\))", body) is not None
            if re.search(r"exclude\s*=[^\n]*password", body):
                continue
            for a in find_all(cls.node, "assignment"):
                left = a.field("left")
                right = a.field("right")
                if left is None or right is None or left.text() != "fields":
                    continue
                items = [s.strip("'\" ") for s in re.findall(r"[\"'][^\"']+[\"']", right.text())]
                every = items == ["__all__"] and user_model  # the user model's every field: its hash too
                if (every or any(_PW_KEY.match(x) for x in items)) and (ln := unit.added_in(a)) is not None:
                    yield SHit(ln)
    if lang == "go":
        for fld in find_all(tree.root, "field_declaration"):
            name = fld.field("name")
            tag = fld.field("tag")
            if name is None or tag is None or not _PW_KEY.match(name.text()):
                continue
            if re.search(r'\b(?:binding|form|validate):"', tag.text()):
                continue  # a request-binding struct: the password comes in, it is not sent out
            m = re.search(r'json:"([^"]*)"', tag.text())
            if m and m.group(1).split(",")[0] != "-" and (ln := unit.added_in(fld)) is not None:
                yield SHit(ln, 0.75)


# --- database errors turned into "not found" or success ------------------------------------------------

_SWALLOWED = rule(
    "db-error-masked",
    "Database error reported as not-found or success",
    Category.ERRORS,
    Severity.MEDIUM,
    CODE,
    "Any database failure here (lost connection, timeout, constraint, bad SQL) is answered as if the record "
    "did not exist or the write succeeded: outages look like missing data and failed writes are lost.",
    "Catch only the not-found case (`DoesNotExist`, `NoResultFound`, `sql.ErrNoRows`, `RecordNotFound`) "
    "and let other errors propagate (or answer 5xx).",
    confidence=0.75,
)
_PY_BROAD = re.compile(
    r"^except\s*(?::|(?:\(\s*)?(?:\w+\.)*(?:Exception|BaseException|DatabaseError|SQLAlchemyError|OperationalError"
    r"|ProgrammingError|InterfaceError|Error|PyMongoError|IntegrityError)\b)"
)
_PY_NOT_FOUND_OR_OK = re.compile(
    r"^\s*(?:return\s+(?:None|False|True|\[\]|\{\}|0|\"\"|''|[^\n]*\b404\b|[^\n]*status(?:_code)?\s*=\s*20[04]"
    r"|[^\n]*\bHTTP_404\w*|[^\n]*HTTP_20[04]\w*|[^\n]*[\"']?(?:success|ok)[\"']?\s*[:=]\s*True)"
    r"|raise\s+(?:Http404|NotFound|HTTPException\(\s*(?:status_code\s*=\s*)?404)|abort\(\s*404)",
    re.M,
)
_DB_CALL = re.compile(
    r"\.objects\.|\.execute\(|\bsession\.|\.query\(|\.save\(|\bcursor\b|\.commit\(|\.filter\(|\.get\(|\bdb\.|"
    r"\.find\w*\(|\.create\(|\.update\(|\.delete\(|\.Scan\(|\.QueryRow|\.First\(|\.Exec\("
)
_JS_NOT_FOUND = re.compile(
    r"\b(?:status\(\s*404|sendStatus\(\s*404|NotFoundException|return\s+null\b|return\s+\[\])"
)


def _db_error_masked(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    if lang == "python":
        for tr in find_all(tree.root, "try_statement"):
            body = tr.field("body")
            if body is None or not _DB_CALL.search(body.text()):
                continue
            for clause in tr.children():
                if clause.kind() != "except_clause":
                    continue
                text = clause.text()
                head = text.split("\n", 1)[0]
                if not _PY_BROAD.match(head) or re.search(r"DoesNotExist|NotFound|NoResultFound", head):
                    continue
                rest = text.split("\n", 1)[1] if "\n" in text else text.split(":", 1)[-1]
                if re.search(r"\braise\b(?!\s+(?:Http404|NotFound|HTTPException))", rest):
                    continue
                if _PY_NOT_FOUND_OR_OK.search(rest) and (ln := unit.added_in(clause)) is not None:
                    yield SHit(ln)
    elif lang in ("javascript", "typescript"):
        for tr in find_all(tree.root, "try_statement"):
            body = tr.field("body")
            handler = tr.field("handler")
            if (
                body is None
                or handler is None
                or not re.search(r"\bawait\b[^;\n]*" + _DB_CALL.pattern, body.text())
            ):
                continue
            ht = handler.text()
            if re.search(r"\bthrow\b|next\(\s*\w", ht) or not _JS_NOT_FOUND.search(ht):
                continue
            if (ln := unit.added_in(handler)) is not None:
                yield SHit(ln)
    elif lang == "go":
        for stmt in find_all(tree.root, "if_statement"):
            cond = stmt.field("condition")
            cons = stmt.field("consequence")
            if cond is None or cons is None or not re.fullmatch(r"\s*err\s*!=\s*nil\s*", cond.text()):
                continue
            if not re.search(r"StatusNotFound|http\.NotFound\(|\b404\b", cons.text()):
                continue
            d = tree.enclosing(stmt.range().start.line)
            fn = d.node.text() if d is not None else ""
            if re.search(r"ErrNoRows|ErrRecordNotFound|errors\.Is|IsNotFound", fn) or not _DB_CALL.search(fn):
                continue
            if (ln := unit.added_in(stmt)) is not None:
                yield SHit(ln, 0.7)


CHECKS = (
    StructCheck(_N1, _n_plus_one, needles=("for ", "each", "map", "get_", "select", "sum", "collect")),
    StructCheck(_HASH_OUT, _hash_exposed, needles=("password", "passwd", "digest", "pwd", "__all__")),
    StructCheck(
        _SWALLOWED, _db_error_masked, needles=("except", "catch", "err != nil", "rescue", "404", "notfound")
    ),
)
