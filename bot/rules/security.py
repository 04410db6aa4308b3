"""Auth and unsafe-configuration checks: JWT verification, CORS, debug mode, TLS, deserialisation, shells."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from bot.models import Category, Severity
from bot.rules.base import (
    CODE,
    JS,
    PY,
    RUBY,
    Check,
    Hit,
    Source,
    call_args,
    kwarg,
    positional,
    rule,
)

# -- JWT -------------------------------------------------------------------------------------------------

_PY_JWT_DECODE = re.compile(r"\bjwt\.decode\s*\(")
_PY_NO_VERIFY = re.compile(
    r"\bverify\s*=\s*False\b|[\"']verify_signature[\"']\s*:\s*False\b|verify_signature\s*=\s*False"
)
_JS_JWT_DECODE = re.compile(r"\b(?:jwt|jsonwebtoken)\.decode\s*\(")
_GO_UNVERIFIED = re.compile(r"\.ParseUnverified\s*\(")
_RB_UNVERIFIED = re.compile(r"\bJWT\.decode\s*\(\s*[^,()\n]+,\s*[^,\n]+,\s*false\b")
_JAVA_DECODE = re.compile(r"\bJWT\.decode\s*\(")


def _jwt_unverified(src: Source) -> Iterator[Hit]:
    lang = src.language
    if lang == "python":
        for i, _ in src.line_matches(_PY_JWT_DECODE):
            text, end = src.statement(i)
            if _PY_NO_VERIFY.search(text):
                k = src.first_added(i, end, _PY_NO_VERIFY)
                yield Hit(k if k is not None else i)
    elif lang in JS:
        if not re.search(r"\b(?:jwt|jsonwebtoken)\.verify\s*\(", src.text):
            for i, _ in src.line_matches(_JS_JWT_DECODE):
                yield Hit(i)
    elif lang == "go":
        for i, _ in src.line_matches(_GO_UNVERIFIED):
            yield Hit(i)
    elif lang == "ruby":
        for i, _ in src.line_matches(_RB_UNVERIFIED):
            yield Hit(i)
    elif lang == "java" and ".verify(" not in src.text:
        for i, _ in src.line_matches(_JAVA_DECODE):
            yield Hit(i)


def _py_jwt_algorithms(src: Source) -> Iterator[Hit]:
    if "authlib" in src.text:  # authlib's jwt.decode takes no algorithms argument
        return
    for i, m in src.line_matches(_PY_JWT_DECODE):
        text, _ = src.statement(i)
        args, close = call_args(text, m)
        if close < 0 or _PY_NO_VERIFY.search(text) or any(a.startswith("**") for a in args):
            continue
        if kwarg(args, "algorithms") is None and len(positional(args)) < 3:
            yield Hit(i)


_NONE_ALG = re.compile(
    r"\balgorithms?\s*[=:]\s*\[?[^\]\n]*[\"']none[\"']|\bSigningMethodNone\b|\bUnsafeAllowNoneSignatureType\b"
    r"|\bAlgorithm\.none\s*\(|\bJWT\.decode\s*\([^\n]*[\"']none[\"']",
    re.I,
)


def _none_alg(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_NONE_ALG):
        yield Hit(i)


# -- CORS ------------------------------------------------------------------------------------------------

_CORS_ANY_ORIGIN = re.compile(
    r"\ballow_origins\s*=\s*\[\s*[\"']\*[\"']\s*\]|\borigins\s*=\s*(?:\[\s*)?[\"']\*[\"']"
    r"|\bCORS_(?:ALLOW_ALL_ORIGINS|ORIGIN_ALLOW_ALL)\s*=\s*True\b|\borigin\s*:\s*(?:[\"']\*[\"']|true)\b"
    r"|Access-Control-Allow-Origin[\"']?\s*[,:=]\s*[\"']?\*|\bAllowedOrigins\s*:\s*\[\]string\{\s*\"\*\""
    r"|\bAllowAllOrigins\s*:\s*true\b|\ballowedOrigins?(?:Patterns)?\s*\(\s*\"\*\"|\borigins\s+[\"']\*[\"']"
    r"|\bapp\.use\(\s*cors\(\s*\)\s*\)|\bCORS\(\s*app\s*,[^\n]*supports_credentials\s*=\s*True"
)
_CORS_CREDENTIALS = re.compile(
    r"\ballow_credentials\s*=\s*True\b|\bsupports_credentials\s*=\s*True\b|\bCORS_ALLOW_CREDENTIALS\s*=\s*True\b"
    r"|\bcredentials\s*:\s*true\b|Access-Control-Allow-Credentials[\"']?\s*[,:=]\s*[\"']?true"
    r"|\bAllowCredentials\s*:\s*true\b|\ballowCredentials\s*(?:=\s*\"true\"|\(\s*true\s*\))",
    re.I,
)
_FLASK_CORS_ORIGINS = re.compile(r"\borigins\s*=\s*(?!\s*[\"']\*)")


def _cors(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_CORS_ANY_ORIGIN):
        if m.group(0).startswith("CORS(") and not _FLASK_CORS_ORIGINS.search(src.lines[i]):
            yield Hit(i)  # flask-cors: credentials with the default origins="*"
            continue
        if not m.group(0).startswith("CORS(") and _CORS_CREDENTIALS.search(src.window(i, 30, 30)):
            yield Hit(i)
    # A credentials line added next to an existing wildcard origin is the same defect.
    for i, _ in src.line_matches(_CORS_CREDENTIALS):
        w = src.span(i, 30, 30)
        if any(not src.added[k] and _CORS_ANY_ORIGIN.search(src.lines[k]) for k in w):
            yield Hit(i)


# -- debug mode ------------------------------------------------------------------------------------------

_RUN_DEBUG = re.compile(r"\.run\s*\([^\n]*\bdebug\s*=\s*True\b")
_PY_DEBUG_FLAG = re.compile(
    r"^\s*(?:DEBUG\s*=\s*True\b|\w+\.debug\s*=\s*True\b|\w+\.config\[\s*[\"']DEBUG[\"']\s*\]\s*=\s*True\b)"
)
_RAILS_DEBUG = re.compile(r"\bconsider_all_requests_local\s*=\s*true\b|\bdebug_exception_response_format\b")
_DEV_FILE = re.compile(r"dev|local|test|ci\b|example|sample", re.I)


def _debug(src: Source) -> Iterator[Hit]:
    name = PurePosixPath(src.path).name
    if src.language == "python":
        for i, _ in src.line_matches(_RUN_DEBUG):
            yield Hit(i)
        settings_like = "settings" in src.path.lower() or name in ("production.py", "prod.py", "config.py")
        if not _DEV_FILE.search(src.path):
            for i, m in src.line_matches(_PY_DEBUG_FLAG):
                if not m.group(0).lstrip().startswith("DEBUG") or settings_like:
                    yield Hit(i)
    elif src.language == "ruby" and re.search(r"(?:^|/)config/environments/production\.rb$", src.path):
        for i, _ in src.line_matches(_RAILS_DEBUG):
            yield Hit(i)


# -- TLS verification ------------------------------------------------------------------------------------

_TLS_OFF = re.compile(
    r"\bverify\s*=\s*False\b|\bssl\._create_unverified_context\b|\bCERT_NONE\b|\bcheck_hostname\s*=\s*False\b"
    r"|\brejectUnauthorized\s*:\s*false\b|\bNODE_TLS_REJECT_UNAUTHORIZED\s*=\s*[\"']?0"
    r"|\bInsecureSkipVerify\s*:\s*true\b|\bVERIFY_NONE\b|\bNoopHostnameVerifier\b|\bALLOW_ALL_HOSTNAME_VERIFIER\b"
    r"|\binsecure\s*:\s*true\b(?=[^\n]*(?:https|tls))"
)


def _tls(src: Source) -> Iterator[Hit]:
    for i, _ in src.line_matches(_TLS_OFF):
        if "jwt" not in src.lines[i].lower():
            yield Hit(i)


# -- unsafe deserialisation, shells, eval -------------------------------------------------------------

_YAML_LOAD = re.compile(r"\byaml\.(load|load_all|unsafe_load|unsafe_load_all)\s*\(")
_SAFE_LOADER = re.compile(r"^(?:yaml\.)?C?(?:Safe|Base)Loader$")


def _yaml(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_YAML_LOAD):
        text, _ = src.statement(i)
        args, close = call_args(text, m)
        if m.group(1).startswith("unsafe"):
            yield Hit(i)
            continue
        loader = kwarg(args, "Loader")
        pos = positional(args)
        if loader is None and len(pos) >= 2:
            loader = pos[1]
        if loader is not None and _SAFE_LOADER.match(loader):
            continue
        if loader is None and any(a.startswith("**") for a in args):
            continue
        suggestion = None
        line = src.raw[i]  # same columns as the code: the comments stay in the suggestion
        if loader is None and len(args) == 1 and close >= 0 and "\n" not in text[: close + 1]:
            suggestion = line[: m.start()] + f"yaml.safe_{m.group(1)}(" + line[m.end() :]
        yield Hit(i, suggestion)


_UNTRUSTED = re.compile(
    r"\b(?:request|req|params|payload|body|cookies|headers|form)\b|\.(?:body|data|form|files|args|json|content|stream)\b"
    r"|get_data\s*\(|\brecv\w*\s*\(|b64decode\s*\(|\binput\s*\(|sys\.argv|sys\.stdin"
)
_PICKLE = re.compile(
    r"\b(?:pickle|cPickle|_pickle|dill|cloudpickle|jsonpickle|marshal)\.(?:loads?|decode|Unpickler)\s*\("
)


def _pickle(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_PICKLE):
        text, _ = src.statement(i)
        args, _ = call_args(text, m)
        if args and _UNTRUSTED.search(args[0]):
            yield Hit(i)


_SHELL_CALL = re.compile(
    r"\bsubprocess\.(run|call|Popen|check_output|check_call|getoutput|getstatusoutput)\s*\(|\bos\.(system|popen)\s*\("
)
_PY_FMT_STR = re.compile(
    r"(?<![\w])[fF][rR]?(?:\"[^\"\n]*\{[^}\n]+\}[^\"\n]*\"|'[^'\n]*\{[^}\n]+\}[^'\n]*')"
    r"|[\"'][^\"'\n]*[\"']\s*(?:%\s*[\w(]|\.format\s*\(|\+\s*[\w(])|[\w)\]]\s*\+\s*[\"']"
)


def _shell(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_SHELL_CALL):
        text, _ = src.statement(i)
        args, _ = call_args(text, m)
        if not args or not _PY_FMT_STR.search(args[0]):
            continue
        always_shell = m.group(2) is not None or m.group(1) in ("getoutput", "getstatusoutput")
        if always_shell or re.search(r"\bshell\s*=\s*True\b", text):
            yield Hit(i)


_EVAL = re.compile(
    r"(?<![\w.])(?:eval|exec|instance_eval|class_eval|module_eval)\s*\(|\bnew\s+Function\s*\(|(?<![\w.])eval\s+(?=\w)"
)


def _eval(src: Source) -> Iterator[Hit]:
    for i, m in src.line_matches(_EVAL):
        text, _ = src.statement(i, limit=4)
        if m.group(0).endswith("("):
            args, _ = call_args(text, m)
            arg_text = ",".join(args)
        else:
            arg_text = src.lines[i][m.end() :]
        if _UNTRUSTED.search(arg_text):
            yield Hit(i)


CHECKS = (
    Check(
        rule(
            "jwt-unverified",
            "JWT decoded without verifying its signature",
            Category.AUTH,
            Severity.CRITICAL,
            CODE,
            "The token's claims are read without checking the signature, so anyone can forge a token with "
            "any user id or role and it will be accepted.",
            "Verify the signature while decoding, with the expected key and algorithm.",
            0.85,
            fixes={
                "python": 'Verify while decoding: jwt.decode(token, key, algorithms=["HS256"]), without '
                "verify_signature=False.",
                "javascript": "Use jwt.verify(token, key, { algorithms: ['HS256'] }) instead of jwt.decode, "
                "which never checks the signature.",
                "go": 'Use jwt.Parse(tokenString, keyFunc, jwt.WithValidMethods([]string{"RS256"})) instead '
                "of ParseUnverified, and read the claims only when it returns no error.",
                "java": "Verify instead of decoding: "
                "JWT.require(Algorithm.HMAC256(secret)).build().verify(token) returns the claims only for a "
                "valid signature.",
                "ruby": "Pass verify true with the key and algorithm: JWT.decode(token, key, true, "
                '{ algorithm: "HS256" }).',
            },
        ),
        _jwt_unverified,
        needles=("jwt", "parseunverified"),
    ),
    Check(
        rule(
            "py-jwt-algorithms",
            "jwt.decode without an algorithms allow-list",
            Category.AUTH,
            Severity.MEDIUM,
            PY,
            "Without algorithms=, the algorithm comes from the token header (algorithm confusion: an RS256 "
            "public key accepted as an HS256 secret), and PyJWT 2 rejects the call at runtime.",
            'Pin the expected algorithm: jwt.decode(token, key, algorithms=["HS256"]).',
            0.7,
        ),
        _py_jwt_algorithms,
        needles=("jwt.decode",),
    ),
    Check(
        rule(
            "jwt-none-alg",
            'JWT "none" algorithm allowed',
            Category.AUTH,
            Severity.CRITICAL,
            CODE,
            'Accepting alg "none" means unsigned tokens are valid: anyone can mint a token for any user.',
            'Remove "none" and allow only the algorithm you sign with (e.g. ["RS256"]).',
            0.9,
            fixes={
                "python": 'Remove "none" and pin the algorithm you sign with: jwt.decode(token, key, '
                'algorithms=["RS256"]).',
                "javascript": "Remove 'none' and pin the algorithm you sign with: jwt.verify(token, key, "
                "{ algorithms: ['RS256'] }).",
                "go": "Never use SigningMethodNone or UnsafeAllowNoneSignatureType; parse with "
                'jwt.WithValidMethods([]string{"RS256"}).',
                "java": "Replace Algorithm.none() with the algorithm you sign with, e.g. "
                "JWT.require(Algorithm.RSA256(publicKey, null)).build().verify(token).",
                "ruby": 'Remove "none" and pin the algorithm: JWT.decode(token, key, true, { algorithm: '
                '"RS256" }).',
            },
        ),
        _none_alg,
        needles=("none",),
    ),
    Check(
        rule(
            "cors-wildcard-credentials",
            "CORS allows any origin with credentials",
            Category.SECURITY,
            Severity.HIGH,
            CODE,
            "Any website may make credentialed (cookie-bearing) requests and read the responses, so a "
            "malicious page can act as the logged-in user.",
            "List the trusted origins explicitly when credentials are allowed; never combine * or "
            "origin reflection with allow-credentials.",
            0.8,
            fixes={
                "python": 'List the trusted origins: allow_origins=["https://app.example.com"] '
                "(Starlette/FastAPI), origins=[...] (flask-cors) or CORS_ALLOWED_ORIGINS "
                "(django-cors-headers); never * with credentials.",
                "javascript": "Pass the trusted origins: cors({ origin: ['https://app.example.com'], "
                "credentials: true }); never origin: '*' or origin: true with credentials.",
                "go": 'List the trusted origins: AllowedOrigins: []string{"https://app.example.com"} '
                "(rs/cors) or AllowOrigins (gin-contrib/cors); never * or AllowAllOrigins with "
                "AllowCredentials.",
                "java": 'List the trusted origins: allowedOrigins("https://app.example.com") with '
                "allowCredentials(true); never * or a catch-all allowedOriginPatterns.",
                "ruby": "List the trusted origins in rack-cors: origins 'https://app.example.com' with "
                "credentials: true; never origins '*'.",
            },
        ),
        _cors,
        needles=("origin", "credentials", "cors("),
    ),
    Check(
        rule(
            "debug-enabled",
            "Debug mode enabled",
            Category.SECURITY,
            Severity.HIGH,
            PY | RUBY,
            "Debug mode serves stack traces, settings and (Werkzeug) an interactive console that runs "
            "arbitrary code to anyone who triggers an error.",
            "Read debug mode from the environment and default it to off in production.",
            0.75,
            fixes={
                "python": "Read debug from the environment and default it to off (e.g. DEBUG = "
                "os.environ.get(...) == '1').",
                "ruby": "Keep config.consider_all_requests_local = false in production.rb; detailed error "
                "pages belong in development.rb only.",
            },
        ),
        _debug,
        needles=("debug", "consider_all_requests_local"),
    ),
    Check(
        rule(
            "tls-verify-disabled",
            "TLS certificate verification disabled",
            Category.SECURITY,
            Severity.HIGH,
            CODE,
            "With certificate checks off, anyone on the network path can impersonate the server and read or "
            "alter the traffic, credentials included.",
            "Keep certificate verification on; for a private CA, trust its certificate instead of turning "
            "the check off.",
            0.85,
            fixes={
                "python": "Keep verification on; for a private CA pass its bundle: verify='/path/ca.pem' "
                "(requests) or ssl.create_default_context(cafile='/path/ca.pem').",
                "javascript": "Keep rejectUnauthorized on; for a private CA pass it: new https.Agent({ ca: "
                "fs.readFileSync('ca.pem') }), or set NODE_EXTRA_CA_CERTS.",
                "go": "Remove InsecureSkipVerify; for a private CA add it to an x509.CertPool and set "
                "tls.Config{RootCAs: pool}.",
                "java": "Keep the default TrustManager and HostnameVerifier; for a private CA load it into a "
                "KeyStore and build the SSLContext from a TrustManagerFactory initialised with it.",
                "ruby": "Keep verify_mode = OpenSSL::SSL::VERIFY_PEER; for a private CA set ca_file = "
                "'/path/ca.pem'.",
            },
        ),
        _tls,
        needles=("verify", "cert_none", "check_hostname", "rejectunauthorized", "tls_reject", "insecure"),
    ),
    Check(
        rule(
            "py-yaml-unsafe-load",
            "yaml.load with an unsafe loader",
            Category.SECURITY,
            Severity.HIGH,
            PY,
            "yaml.load with the default/full/unsafe loader can construct arbitrary Python objects, so a "
            "crafted document runs code.",
            "Use yaml.safe_load (or Loader=yaml.SafeLoader).",
            0.9,
        ),
        _yaml,
        needles=("yaml.",),
        skip_tests=False,
    ),
    Check(
        rule(
            "py-pickle-untrusted",
            "Untrusted data unpickled",
            Category.SECURITY,
            Severity.CRITICAL,
            PY,
            "Unpickling runs code chosen by whoever produced the bytes; on request or network data that is "
            "remote code execution.",
            "Use a data-only format (JSON, msgpack) for anything that crosses a trust boundary.",
            0.85,
        ),
        _pickle,
        needles=("pickle", "dill.", "marshal."),
    ),
    Check(
        rule(
            "py-subprocess-shell",
            "Shell command built from formatted input",
            Category.SECURITY,
            Severity.CRITICAL,
            PY,
            "A formatted string run through a shell lets metacharacters in the value (; | $()) run other "
            "commands.",
            'Pass an argv list without a shell: subprocess.run(["cmd", arg], check=True).',
            0.85,
        ),
        _shell,
        needles=("subprocess", "os.system", "os.popen"),
    ),
    Check(
        rule(
            "eval-untrusted",
            "eval of request input",
            Category.SECURITY,
            Severity.CRITICAL,
            PY | JS | RUBY,
            "Evaluating request data as code lets the caller run anything the process can.",
            "Parse the data instead of evaluating it, or map inputs to an allow-list of operations.",
            0.85,
            fixes={
                "python": "Parse it instead: json.loads, or ast.literal_eval for Python literals; map "
                "anything else to an allow-list of operations.",
                "javascript": "Parse it with JSON.parse instead, and map other inputs to an allow-list of "
                "functions; never eval or new Function.",
                "ruby": "Parse it with JSON.parse instead, and dispatch other inputs through an allow-list "
                "(a Hash of lambdas); never eval or instance_eval.",
            },
        ),
        _eval,
        needles=("eval", "exec", "function"),
    ),
)
