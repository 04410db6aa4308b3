"""Credentials and secret handling: literals in code, secrets in logs, timing-unsafe compares, weak hashes."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

from bot.models import Category, Severity
from bot.rules.base import CODE, GO, JS, PY, Check, Hit, Source, call_args, rule

# -- hard-coded credentials ---------------------------------------------------------------------------

_SECRET_NAME = (
    r"[A-Za-z0-9_]*?(?:passw(?:or)?d|passwd|passphrase|secret(?:_?key)?|api_?key|access_?key|private_?key"
    r"|client_?secret|(?:auth|access|api|bearer|refresh|secret|session|github|gitlab|slack|bot|admin)_?token)"
)
_ASSIGN_SECRET = re.compile(
    rf"(?<![\w$])[:\"']?(?P<name>{_SECRET_NAME})[\"']?(?![\w])"
    r"(?:\s+string)?\s*(?::\s*[\w\[\]|. ]+?\s*)?(?:=|:=|=>|:)\s*"
    r"(?P<pre>[rbuRBU]?)(?P<q>[\"'`])(?P<val>[^\"'`\n]*)(?P=q)",
    re.I,
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<val>[^@\s'\"/]+)@[\w.-]+", re.I)
_PLACEHOLDER = re.compile(
    r"change_?me|change-me|example|placeholder|dummy|xxx|\*\*\*|^\.\.\.|your[_-]|redacted|todo|fixme|sample|fake"
    r"|test|<|>|\$\{|\{\{|%\(|#\{|^\$|^none$|^null$|^nil$|^true$|^false$|^(?:secret|password|passwd|token)$",
    re.I,
)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_FIELD_NAME = re.compile(r"^[a-z_.]*(?:pass|secret|key|token)[a-z_.]*$")


def _obviously_fake(v: str) -> bool:
    """One character repeated, or a run of consecutive digits ("123456789", "987654321")."""
    if len(set(v)) == 1:
        return True
    if v.isdigit() and len(v) >= 4:
        steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(v)}
        return steps in ({1}, {9})
    return False


def _literal_secret(val: str, name: str) -> bool:
    v = val.strip()
    if len(v) < 4 or _PLACEHOLDER.search(v) or _ENV_NAME.match(v) or _FIELD_NAME.match(v):
        return False
    if _obviously_fake(v):
        return False
    if v.lower() == name.lower() or v.startswith(("/", "http://", "https://", "./", "~")):
        return False
    if v.lower().endswith((".pem", ".key", ".json", ".txt", ".crt")):
        return False
    if " " in v:
        # Sentences and labels ("Enter password", "Invalid API key.") are not credentials.
        words = v.split()
        if len(words) > 2 or re.search(r"pass|secret|key|token", v, re.I) or v[-1] in ".:!?":
            return False
    return True


def _hardcoded(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_ASSIGN_SECRET):
        line = src.lines[i]
        # no "# nosec"/"gitleaks:allow" opt-out: the PR author must not silence findings (P-01)
        for mm in _ASSIGN_SECRET.finditer(line):
            prefix = line[: mm.start("q")]
            if re.search(r"\bf$", prefix) or not _literal_secret(mm.group("val"), mm.group("name")):
                continue
            yield Hit(i)
            break
    for i, m in src.line_matches(_URL_PASSWORD):
        if _literal_secret(m.group("val"), "password") and not re.match(
            r"(?:pass(?:word)?|pwd|\*+)$", m.group("val")
        ):
            yield Hit(i)


_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
)
_PEM_BODY = re.compile(r"^(?:[A-Za-z0-9+/]{4,}={0,2}|Proc-Type:)")
_TOKEN_FORMAT = re.compile(
    r"\b(?:AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,}|xox[baprs]-[0-9A-Za-z-]{10,}"
    r"|sk_live_[0-9A-Za-z]{20,}|rk_live_[0-9A-Za-z]{20,}|AIza[0-9A-Za-z_-]{35}|glpat-[0-9A-Za-z_-]{20}"
    r"|sk-ant-[A-Za-z0-9_-]{20,}|sk-proj-[A-Za-z0-9_-]{20,})"
)


def _private_key(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_PRIVATE_KEY):
        # A key has a base64 body after its header; a header alone (a prefix check, a format hint) or
        # a placeholder body ("...", "<your key>") is not one.
        after = [src.lines[i][m.end() :], *(src.lines[j] for j in src.code_lines(i, 1, 2))]
        words = re.sub(r"\\[nr]|[\s\"'`+,;(){}\[\]]", " ", " ".join(after)).split()
        body = [w for w in words if w.strip("/#*-!")]  # comment markers around a key in a comment
        if body and _PEM_BODY.match(body[0]):
            yield Hit(i)


def _token_format(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_TOKEN_FORMAT):
        if "EXAMPLE" not in m.group(0) and not re.search(r"(.)\1{7}", m.group(0)):
            yield Hit(i)


# -- secrets written to logs --------------------------------------------------------------------------

_LOG_CALL = re.compile(
    r"(?:(?<![\w.])(?:logger|log|logging|_logger|_log|LOGGER|LOG|slog|console|Rails\.logger|app\.logger"
    r"|current_app\.logger|self\.logger|self\.log|this\.logger|this\.log|self\._logger)"
    r"\.(?:debug|info|warn|warning|error|exception|critical|fatal|trace|log|Print|Printf|Println|Fatal|Fatalf"
    r"|Info|Infof|Infow|Debug|Debugf|Debugw|Warn|Warnf|Warnw|Error|Errorf|Errorw)"
    r"|(?<![\w.])fmt\.(?:Print|Printf|Println)|\bSystem\.(?:out|err)\.print(?:ln|f)?|(?<![\w.])print)\s*\("
    r"|(?<![\w.])(?:puts|(?:Rails\.)?logger\.(?:debug|info|warn|error|fatal))\s+(?=[\"'\w])"
)
_LOG_SECRET_NAME = re.compile(
    r"(?:password|passwd|passphrase|secret|token|api_?key|apikey|authorization|private_?key|credentials)$",
    re.I,
)
_SANITISED = re.compile(
    r"\b(?:len|mask\w*|redact\w*|_?hash\w*|sha\d*\w*|bool|type|typeof|isinstance|fingerprint\w*|obfuscate\w*"
    r"|truncate\w*|str\(len)\s*\([^()]*\)"
    r"|[\w.]+\s+is\s+(?:not\s+)?None|typeof\s+[\w.]+|[\w.]+\[\s*-?\d*\s*:\s*-?\d*\s*\]|[\w.]+\.(?:slice|substring)\([^()]*\)"
    r"|!!\s*[\w.]+|[\w.]+\s*[!=]==?\s*(?:null|nil|None|undefined)"
)
_STRING_BODY = re.compile(
    r"[fFrRbB]{0,2}(\"\"\"[\s\S]*?\"\"\"|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)"
)
_INTERP = re.compile(r"\$\{([^}]*)\}|#\{([^}]*)\}|(?<!\{)\{([^{}:!]+)[^{}]*\}")
_NAME = re.compile(
    r"(?P<n>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)(?:\[\s*[\"'](?P<k>[\w-]+)[\"']\s*\])?(?P<after>\s*[(=]?)"
)


def _names(expr: str) -> Iterator[str]:
    for m in _NAME.finditer(_SANITISED.sub("0", expr)):
        after = m.group("after").strip()
        if m.group("k"):
            yield m.group("k").replace("-", "_")
        elif after == "(" or (after == "=" and not expr[m.end() :].startswith("=")):
            continue  # a function being called, or a keyword argument's name
        else:
            yield m.group("n").rsplit(".", 1)[-1]


_SUBSCRIPT_KEY = re.compile(r"(?:\[|\.get\(|\.get_header\()\s*[\"']([\w-]+)[\"']\s*[\]),]")


def _logged_names(args_text: str) -> Iterator[str]:
    for m in _SUBSCRIPT_KEY.finditer(args_text):
        yield m.group(1).replace("-", "_")
    outside = []
    last = 0
    for m in _STRING_BODY.finditer(args_text):
        outside.append(args_text[last : m.start()])
        last = m.end()
        body = m.group(0)
        if body[:1] in "fF" or "${" in body or "#{" in body:
            for im in _INTERP.finditer(body):
                yield from _names(next(g for g in im.groups() if g is not None))
    outside.append(args_text[last:])
    yield from _names(" ".join(outside))


def _secret_in_log(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_LOG_CALL):
        text, _ = src.statement(i)
        off = src.lines[i].find(m.group(0))
        if m.group(0).endswith("("):
            args, _ = call_args(text, re.compile(re.escape(m.group(0))).search(text, off) or m)
            args_text = ",".join(args)
        else:
            args_text = text[off + len(m.group(0)) :]
        if any(_LOG_SECRET_NAME.search(n) for n in _logged_names(args_text)):
            yield Hit(i)


# -- timing-unsafe comparison -------------------------------------------------------------------------

_CMP = re.compile(r"(?<![=!<>])(?:===|!==|==|!=)(?!=)")
_SECRETISH = re.compile(r"(?:signature|sig|digest|hmac|mac|token|secret|api_?key|apikey|otp)$", re.I)
_LITERALISH = re.compile(
    r"^(?:None|null|nil|undefined|true|false|True|False|-?\d+(?:\.\d+)?|\[\]|\{\}|\(\)|[\"'`].*|[rbfRBF]+[\"'].*)$"
)
_EQUAL_CALL = re.compile(r"(?:\b(?:bytes\.Equal|Arrays\.equals|Objects\.equals)\s*\(|\.equals\s*\()")


def _left_operand(s: str, end: int) -> str:
    j = end
    while j > 0 and s[j - 1] == " ":
        j -= 1
    k = j
    depth = 0
    while k > 0:
        c = s[k - 1]
        if c in ")]}":
            depth += 1
        elif c in "([{":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in "_.$\"'"):
            break
        k -= 1
    return s[k:j].strip()


def _right_operand(s: str, start: int) -> str:
    i = start
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    k = i
    depth = 0
    while k < n:
        c = s[k]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and not (c.isalnum() or c in "_.$\"'"):
            break
        k += 1
    return s[i:k].strip()


def _last_name(operand: str) -> str:
    op = operand
    while op.endswith((")", "]")):
        close = op[-1]
        opener = "(" if close == ")" else "["
        depth = 0
        for pos in range(len(op) - 1, -1, -1):
            if op[pos] == close:
                depth += 1
            elif op[pos] == opener:
                depth -= 1
                if depth == 0:
                    break
        inner = op[pos + 1 : -1].strip()
        if close == "]" and re.fullmatch(r"[\"'][\w-]+[\"']", inner):
            return inner[1:-1].replace("-", "_")
        op = op[:pos]
    m = re.search(r"[A-Za-z_$][\w$]*$", op)
    return m.group(0) if m else ""


def _secret_vs_value(a: str, b: str) -> bool:
    if not a or not b or _LITERALISH.match(a) or _LITERALISH.match(b):
        return False
    return bool(_SECRETISH.search(_last_name(a)) or _SECRETISH.search(_last_name(b)))


def _timing(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_CMP):
        line = src.lines[i]
        if re.match(r"\s*(?:assert|expect)\b", line):
            continue
        for m in _CMP.finditer(line):
            if _secret_vs_value(_left_operand(line, m.start()), _right_operand(line, m.end())):
                yield Hit(i)
                break
    for i, m in src.line_matches(_EQUAL_CALL):
        line = src.lines[i]
        args, _ = call_args(line, m)
        is_method = m.group(0).startswith(".")
        operands = [_left_operand(line, m.start()), *args[:1]] if is_method else args[:2]
        if len(operands) == 2 and _secret_vs_value(operands[0], operands[1]):
            yield Hit(i)


# -- fast hashes on passwords --------------------------------------------------------------------------

_PW = r"\b\w*(?:passw(?:or)?d|passwd|pwd|passphrase)\w*"
_PW_NAME = re.compile(_PW, re.I)
_FAST_HASH = re.compile(
    r"(?:\bhashlib\.(?:md5|sha1|sha224|sha256|sha384|sha512|sha3_\d+|blake2[bs]|new)\s*\("
    r"|(?<![\w.])(?:md5|sha1|sha256|sha512)\s*\("
    r"|\bcreateHash\s*\(\s*[\"'](?:md5|sha1|sha256|sha512)[\"']\s*\)\s*\.update\s*\("
    r"|\b(?:md5|sha1|sha256|sha512)\.Sum(?:256|512|224)?\s*\("
    r"|\bDigest::(?:MD5|SHA1|SHA256|SHA384|SHA512|SHA2)\.(?:hexdigest|digest|base64digest)\s*\(?"
    r"|\bDigestUtils\.(?:md5|sha1|sha256|sha512)(?:Hex)?\s*\()"
)
_HASH_OBJECT = re.compile(
    r"hashlib\.(?:md5|sha1|sha256|sha512)\(\s*\)|createHash\s*\(\s*[\"'](?:md5|sha1|sha256|sha512)[\"']\s*\)"
    r"|MessageDigest\.getInstance\s*\(\s*\"(?:MD5|SHA-?1|SHA-?256|SHA-?512)\"\s*\)",
    re.I,
)
_UPDATE_PW = re.compile(rf"\.(?:update|digest)\s*\([^)\n]*{_PW}", re.I)


def _hashes_password(args_text: str) -> bool:
    return any(not re.search(r"token|reset|salt|hash", n, re.I) for n in _PW_NAME.findall(args_text))


def _weak_hash(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_FAST_HASH):
        text, _ = src.statement(i, limit=4)
        if m.group(0).endswith("("):
            args, _ = call_args(text, m)
            rest = ",".join(args)
        else:
            rest = text[m.end() :].split("\n", 1)[0]
        if _hashes_password(rest):
            yield Hit(i)
    for i, m in src.line_matches(_UPDATE_PW):
        if _hashes_password(m.group(0)) and _HASH_OBJECT.search(src.window(i, 6, 0)):
            yield Hit(i)


# -- non-cryptographic randomness for secrets ----------------------------------------------------------

_SECRET_TARGET = (
    r"(?i:\w*(?:token|password|passwd|secret|otp|nonce|salt|api_?key|session_?id|reset_?code"
    r"|verification_?code))"
)
_RANDOM_SECRET = re.compile(
    rf"\b{_SECRET_TARGET}\w*\s*(?::\s*\w+\s*)?(?::=|=)(?!=)[^\n]*?"
    r"(?:\brandom\.(?:choice|choices|randint|random|getrandbits|sample|randrange)\s*\("
    r"|\bMath\.random\s*\(|\brand\.(?:Intn|Int63n?|Int31n?|Uint32|Uint64|Float64|Perm)\s*\()"
)
_PY_RANDOM = re.compile(r"\brandom\.(?:choice|choices|randint|getrandbits|sample|randrange)\s*\(")
_SECRET_FUNC = re.compile(
    r"^(?:async\s+)?def\s+\w*(?:token|password|secret|otp|nonce|api_?key)\w*\s*\(", re.I
)


def _insecure_random(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_RANDOM_SECRET):
        if "SystemRandom" not in src.lines[i]:
            yield Hit(i)
    if src.language == "python":
        for i, _ in src.line_matches(_PY_RANDOM):
            for header in src.py_blocks(i):
                if header.startswith(("def ", "async def ")):
                    if _SECRET_FUNC.match(header):
                        yield Hit(i)
                    break


CHECKS = (
    Check(
        rule(
            "hardcoded-secret",
            "Hard-coded credential",
            Category.SECURITY,
            Severity.HIGH,
            CODE,
            "A password, key or token is written into the source, so everyone with read access to the "
            "repository (and every clone, fork and CI log) has it, and rotating it needs a deploy.",
            "Read it from the environment or a secret manager, and rotate the value that was committed.",
            0.75,
            fixes={
                "python": 'Read it from the environment (os.environ["API_KEY"]) or a secret manager, and '
                "rotate the value that was committed.",
                "javascript": "Read it from the environment (process.env.API_KEY) or a secret manager, and "
                "rotate the value that was committed.",
                "go": 'Read it from the environment (os.Getenv("API_KEY")) or a secret manager, and rotate '
                "the value that was committed.",
                "java": 'Read it from the environment (System.getenv("API_KEY")) or injected configuration, '
                "and rotate the value that was committed.",
                "ruby": 'Read it from ENV.fetch("API_KEY") or Rails credentials, and rotate the value that '
                "was committed.",
            },
        ),
        _hardcoded,
        needles=("pass", "secret", "key", "token", "://"),
    ),
    Check(
        rule(
            "private-key",
            "Private key committed",
            Category.SECURITY,
            Severity.CRITICAL,
            (),
            "A PEM private key is added to the repository; anyone who can read the history can impersonate "
            "its owner, and deleting it later does not remove it from git history.",
            "Remove the key, revoke/rotate it, and load keys from a secret store at runtime.",
            0.95,
        ),
        _private_key,
        needles=("private key",),
        in_comments=True,
    ),
    Check(
        rule(
            "known-token-format",
            "Live API token committed",
            Category.SECURITY,
            Severity.CRITICAL,
            (),
            "The added text contains a credential in a well-known provider format (AWS, GitHub, Slack, "
            "Stripe, Google, GitLab, Anthropic/OpenAI), which scanners and attackers harvest from "
            "public code.",
            "Revoke the token now, remove it, and inject it from the environment or a secret manager.",
            0.9,
        ),
        _token_format,
        needles=("akia", "gh", "xox", "_live_", "aiza", "glpat-", "sk-"),
        in_comments=True,
    ),
    Check(
        rule(
            "secret-in-log",
            "Secret written to a log",
            Category.SECURITY,
            Severity.HIGH,
            CODE,
            "A token, password, key or Authorization header is passed to a logger or print; logs are widely "
            "readable and retained, so the secret leaks to everyone who can read them.",
            "Log an identifier or a masked/hashed form instead (e.g. the last 4 characters), never "
            "the value.",
            0.75,
            fixes={
                "python": 'Log an identifier or a masked form instead, e.g. logger.info("token=...%s", '
                "token[-4:]); never the value.",
                "javascript": "Log an identifier or a masked form instead (token.slice(-4)), or have the "
                "logger drop the field (pino's redact option); never the value.",
                "go": "Log an identifier instead; give the secret a type whose LogValue() (slog.LogValuer) "
                'returns slog.StringValue("REDACTED"), so it can never be logged in clear.',
                "java": "Log an identifier or a masked form instead, and make the credential holder's "
                "toString() return a mask, so it can never be logged in clear.",
                "ruby": "Log an identifier or a masked form instead (token[-4..]); never the value.",
            },
        ),
        _secret_in_log,
        needles=("log", "print", "puts", "console"),
    ),
    Check(
        rule(
            "timing-unsafe-compare",
            "Secret compared with a non-constant-time operator",
            Category.SECURITY,
            Severity.MEDIUM,
            CODE,
            "== / != / equals() stop at the first differing byte, so response timing reveals how much of a "
            "signature, token or MAC an attacker has guessed right.",
            "Compare secrets with a constant-time comparison function.",
            0.7,
            fixes={
                "python": "Compare in constant time: hmac.compare_digest(a, b).",
                "javascript": "Compare in constant time: crypto.timingSafeEqual(Buffer.from(a), "
                "Buffer.from(b)), after checking the lengths match (it throws otherwise).",
                "go": "Compare in constant time: subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 "
                "(crypto/subtle).",
                "java": "Compare in constant time: MessageDigest.isEqual(a.getBytes(UTF_8), "
                "b.getBytes(UTF_8)).",
                "ruby": "Compare in constant time: ActiveSupport::SecurityUtils.secure_compare(a, b) "
                "(Rack::Utils.secure_compare outside Rails).",
            },
        ),
        _timing,
        needles=("==", "!=", "equal"),
    ),
    Check(
        rule(
            "weak-password-hash",
            "Password hashed with a fast hash",
            Category.AUTH,
            Severity.HIGH,
            CODE,
            "MD5/SHA-family hashes are built to be fast: a leaked table of them is cracked at billions of "
            "guesses per second, and without a per-user salt identical passwords share a hash.",
            "Use a password hashing function (argon2id, bcrypt or scrypt), which salts each password.",
            0.85,
            fixes={
                "python": "Use a password hash: argon2-cffi's PasswordHasher().hash(password) or "
                "bcrypt.hashpw(password, bcrypt.gensalt()) (Django: make_password).",
                "javascript": "Use a password hash: await argon2.hash(password) (argon2) or await "
                "bcrypt.hash(password, 12) (bcrypt).",
                "go": "Use golang.org/x/crypto/bcrypt: bcrypt.GenerateFromPassword([]byte(password), "
                "bcrypt.DefaultCost), and bcrypt.CompareHashAndPassword to check.",
                "java": "Use a password encoder: BCryptPasswordEncoder (or Argon2PasswordEncoder) from "
                "Spring Security, with encode(password) and matches(raw, hash).",
                "ruby": "Use bcrypt: has_secure_password in Rails, or BCrypt::Password.create(password).",
            },
        ),
        _weak_hash,
        needles=("pass", "pwd"),
    ),
    Check(
        rule(
            "insecure-random-secret",
            "Secret generated with a non-cryptographic random",
            Category.SECURITY,
            Severity.HIGH,
            PY | JS | GO,
            "random / Math.random / math/rand are predictable PRNGs: an attacker who sees a few outputs can "
            "predict the tokens, passwords or codes generated from them.",
            "Generate secrets with a cryptographically secure random generator.",
            0.8,
            fixes={
                "python": "Use the secrets module: secrets.token_urlsafe(32) for tokens, secrets.choice to "
                "pick characters.",
                "javascript": "Use the crypto module: crypto.randomBytes(32).toString('hex'), "
                "crypto.randomUUID(), or crypto.randomInt for codes.",
                "go": "Use crypto/rand instead of math/rand: rand.Read(buf) for tokens, "
                "rand.Int(rand.Reader, max) for codes.",
            },
        ),
        _insecure_random,
        needles=("random", "rand."),
    ),
)
