"""Token verification in every language we read: the checks a JWT/ID-token library is told to skip.

Structural: the call (``jwt.decode``, ``jwt.verify``, ``jwt.Parse``, ``JWT.decode``, ``Jwts.parser()``, …)
and its arguments and options, not the line's text. Complements bot.rules.security (signature off,
"none" algorithm, no algorithm list in PyJWT) with: expiry/audience/issuer checks switched off, the
algorithm taken from the token itself, a golang-jwt key function that never checks the signing method,
unsigned-JWT parsers, unverified claims used, identity tokens verified without an audience.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.models import Category, Severity
from bot.rules.base import CODE, rule
from bot.rules.structural import (
    SHit,
    StructCheck,
    Unit,
    arguments,
    call_name,
    calls,
    first,
    keyword_args,
    positional_args,
)
from bot.rules.syntax import find_all

_WEAKENED = rule(
    "jwt-weakened-verification",
    "Token verification weakened",
    Category.AUTH,
    Severity.HIGH,
    CODE,
    "This token is accepted without one of the checks that make it trustworthy (signature, signing "
    "algorithm, expiry, audience or issuer), so forged, expired or foreign tokens pass.",
    "Verify the signature with a key of a pinned algorithm; keep the expiry, audience and issuer checks on.",
    confidence=0.85,
    fixes={
        "python": 'Call `jwt.decode(token, key, algorithms=["RS256"], audience=..., issuer=...)` and drop '
        "the "
        "`verify_*: False` options.",
        "javascript": "Call `jwt.verify(token, key, { algorithms: ['RS256'], audience, issuer })`; never "
        "`ignoreExpiration` or `jwt.decode` for authentication.",
        "go": 'Pass `jwt.WithValidMethods([]string{"RS256"})` (or check `token.Method` in the key function) '
        "and keep claims validation on.",
        "ruby": "Call `JWT.decode(token, key, true, { algorithm: 'RS256', verify_iss: true, ... })`.",
        "java": "Use `Jwts.parser().verifyWith(key).build().parseSignedClaims(token)` (never the unsecured "
        "or "
        "unsigned parsers).",
    },
)

_OFF_OPTIONS = re.compile(
    r"[\"']?(verify_(?:signature|exp|aud|iss|iat|nbf|sub|jti|expiration)|require_exp|verify)[\"']?"
    r"\s*(?:=>|:|=)\s*(?:False|false)\b"
)
_PUBLIC_KEY = re.compile(r"public|pub_?key|cert|jwks|\bpem\b", re.I)


def _weakened(unit: Unit) -> Iterator[SHit]:
    tree = unit.head
    assert tree is not None
    lang = unit.language
    file_text = tree.text
    for call in calls(tree.root, lang):
        recv, name = call_name(call, lang)
        if not name:
            continue
        line = unit.added_in(call)
        if line is None:
            continue
        text = call.text()
        rl = recv.lower()
        if lang == "python":
            if (name == "decode" and "jwt" in rl) or (name == "decode" and rl.endswith("jws")):
                kw = keyword_args(call, lang)
                opts = kw.get("options")
                if opts is not None and (m := _OFF_OPTIONS.search(opts.text())):
                    yield SHit(first(unit.added_in(opts), line), None, f"`{m.group(1)}` is switched off.")
                alg = kw.get("algorithms")
                if alg is not None and "get_unverified_header" in alg.text():
                    yield SHit(line, 0.9, "The algorithm list is read from the token's own header.")
            elif name == "get_unverified_claims" or (
                name == "decode_complete" and "verify_signature" in text
            ):
                yield SHit(line, 0.75, "Its claims are read without verifying the signature.")
            elif (name == "verify_oauth2_token" or (name == "verify_token" and "id_token" in rl)) and (
                len(positional_args(call, lang)) < 3 and "audience" not in keyword_args(call, lang)
            ):
                yield SHit(line, 0.8, "The identity token is verified without an audience.")
        elif lang in ("javascript", "typescript"):
            if name == "verify" and re.search(r"\b(?:jwt|jsonwebtoken|jws)\b", rl):
                args = positional_args(call, lang)
                options = args[2].text() if len(args) > 2 else ""
                if re.search(r"ignoreExpiration\s*:\s*true|ignoreNotBefore\s*:\s*true", options):
                    yield SHit(line, None, "`ignoreExpiration` accepts expired tokens.")
                elif len(args) > 1 and _PUBLIC_KEY.search(args[1].text()) and "algorithms" not in options:
                    yield SHit(line, 0.75, "No `algorithms` with a public key allows HS256 key confusion.")
            elif name == "decodeJwt" and "jwtVerify" not in file_text:
                yield SHit(line, 0.75, "`decodeJwt` reads the claims without verifying the signature.")
            elif name == "verifyIdToken" and "audience" not in text:
                yield SHit(line, 0.8, "The identity token is verified without an audience.")
        elif lang == "go":
            if name in ("Parse", "ParseWithClaims") and re.search(r"jwt", recv, re.I):
                if "WithValidMethods" in text:
                    continue
                keyfunc = next((a for a in arguments(call) if a.kind() == "func_literal"), None)
                if keyfunc is not None and not re.search(
                    r"\.Method\b|SigningMethod|\.Alg\(\)", keyfunc.text()
                ):
                    yield SHit(
                        line, 0.8, "The key function never checks `token.Method`: algorithm confusion."
                    )
            elif name == "WithoutClaimsValidation":
                yield SHit(line, None, "Claims (expiry, not-before) are not validated.")
        elif lang == "ruby":
            if name == "decode" and recv == "JWT":
                args = positional_args(call, lang)
                if m := _OFF_OPTIONS.search(text):
                    if m.group(1) != "verify":
                        yield SHit(line, None, f"`{m.group(1)}` is switched off.")
                elif len(args) >= 3 and args[2].text() == "true" and "algorithm" not in text:
                    yield SHit(line, 0.7, "No `algorithm` is pinned.")
        elif lang == "java":
            if name in ("parseClaimsJwt", "parseUnsecuredClaims", "unsecured", "parseUnsecuredContent"):
                yield SHit(line, None, f"`{name}` accepts unsigned tokens.")
            elif name == "parse" and "Jwts.parser" in recv:
                yield SHit(line, 0.8, "`parse` also accepts unsigned tokens: use `parseClaimsJws`.")
            elif name == "getJWTClaimsSet" and "SignedJWT.parse" in recv and ".verify(" not in file_text:
                yield SHit(line, 0.75, "The claims are read without `verify(...)`.")
    if lang == "go":
        for kv in find_all(tree.root, "keyed_element"):
            if (
                re.match(r"\s*SkipClaimsValidation\s*:\s*true", kv.text())
                and (ln := unit.added_in(kv)) is not None
            ):
                yield SHit(ln, None, "Claims (expiry, not-before) are not validated.")


CHECKS = (
    StructCheck(
        _WEAKENED,
        _weakened,
        needles=("jwt", "jws", "token", "claims"),
        same_as=("jwt-unverified", "py-jwt-algorithms", "jwt-none-alg"),
    ),
)
