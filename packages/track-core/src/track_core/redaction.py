"""Keeping credentials out of what track stores and prints.

One place for every rule; the core, the backends and the integrations call it:

- :func:`redact_text` removes the user info (``user:password@``, ``token@``) of every URL in a
  text; replaces with ``***`` the values of secret-looking options (``?token=...``,
  ``&password=...``, ``password = "..."`` lines of .cfg files, ``PASSWORD: ...`` lines of YAML),
  the credentials of ``Authorization: ...`` and ``Bearer ...``, and every secret string track was
  given (:func:`register_secret`).
- :func:`redact_params` is for configs that integrations store whole (a training config holds the
  backend string): every string goes through :func:`redact_text`, and a value under a
  secret-looking key (``password``, ``api_key``, ``access_token``, ...) becomes ``"***"``.
- :func:`redact_param_strings` is for params users set themselves: strings only, keys never
  change what is kept, so ``{"max_tokens": 5}`` or ``{"pad_token": "[PAD]"}`` stay as they are.

A secret found in a URL, a secret-looking option or under a secret-looking key is registered as it
is seen, so the same secret is scrubbed wherever it turns up later (an error message, a config
file, a log line), in this process.
"""

from __future__ import annotations

import itertools
import re
import threading
import urllib.parse
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "REDACTED",
    "is_secret_key",
    "redact_param_strings",
    "redact_params",
    "redact_text",
    "register_backend_secrets",
    "register_secret",
]

#: What a secret is replaced with.
REDACTED = "***"

#: Registered secrets shorter than this are not scrubbed by value (they would match ordinary
#: text); URLs and secret-looking options still lose them by position.
MIN_SECRET_LENGTH = 6

# ``scheme://userinfo@``: the user info runs to the last ``@`` before the host's end.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s]*)@")
# ``key=value`` in query strings, option lists and command lines, ``key = "value"`` in config
# files (spaCy's .cfg).
_OPTION = re.compile(
    r"(?P<key>\b[A-Za-z_][A-Za-z0-9_.\-]*)(?P<sep>[ \t]*=[ \t]*)"
    r"(?:(?P<quote>[\"'])(?P<quoted>[^\"'\n]*)(?P=quote)|(?P<value>[^&;\s'\",)\]}]*))"
)
# ``key: value`` lines of YAML files (Detectron2's config.yaml).
_YAML = re.compile(
    r"^(?P<head>[ \t]*(?:-[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)[ \t]*:[ \t]+)"
    r"(?:(?P<quote>[\"'])(?P<quoted>[^\"'\n]*)(?P=quote)|(?P<value>[^\s#'\"|>][^\n#]*?))[ \t]*$",
    re.MULTILINE,
)
#: Values that say nothing secret (YAML and config spellings of nothing and of bools).
_PLAIN_VALUES = frozenset({"", REDACTED, "null", "~", "none", "true", "false", "yes", "no"})
# ``Authorization: Basic dXNlcjpwdw==`` (any scheme), and a bare ``Bearer <token>``.
_HTTP_AUTH = re.compile(
    r"(?P<head>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:[A-Za-z]+\s+)?)(?P<value>[^\s\"',;]+)"
    r"|(?P<bearer>\bbearer\s+)(?P<token>[A-Za-z0-9._~+/=\-]{8,})",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

#: Key words that name a secret wherever they appear in a key.
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "authorization",
        "auth",
        "cookie",
        "signature",
        "sig",
    }
)
#: Two key words that name a secret together (``api_key``, ``access-key``).
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "key")}
)
#: ``token`` names a secret (``token``, ``access_token``, ``MLFLOW_TRACKING_TOKEN``) unless the key
#: is about text tokens (``pad_token``, ``max_tokens``, ``token_type_ids``, ``tokenizer``).
_TEXT_TOKEN_WORDS = frozenset(
    {
        "pad",
        "bos",
        "eos",
        "unk",
        "sep",
        "cls",
        "mask",
        "special",
        "additional",
        "start",
        "end",
        "max",
        "min",
        "num",
        "n",
        "per",
        "count",
        "length",
        "len",
        "type",
        "ids",
        "dim",
        "size",
        "vocab",
        "embedding",
        "embeddings",
        "decoder",
        "encoder",
        "prefix",
        "suffix",
    }
)

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def _key_words(key: str) -> list[str]:
    return [word.lower() for word in _WORDS.findall(key)]


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether a param key or option name looks like it holds a secret.

    ``password``, ``db_passwd``, ``client_secret``, ``api_key``, ``apiKey``, ``access_key``,
    ``auth``, ``Authorization``, ``credentials``, ``token``, ``access_token``,
    ``X-Amz-Signature`` do; ``author``, ``tokenizer``, ``max_tokens``, ``pad_token``, ``key``,
    ``spans_key`` do not.
    """
    words = _key_words(key)
    if not words:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    if "token" in words:
        return not any(word in _TEXT_TOKEN_WORDS for word in words)
    return False


def register_secret(value: object) -> None:
    """Scrub ``value`` (a password, a token) from every text track stores or prints from now on.

    Backends call this for the options they treat as secrets; :func:`redact_text` calls it for the
    secrets it finds. Values that are not non-empty strings, or are shorter than
    ``MIN_SECRET_LENGTH`` characters, are ignored. Its URL-encoded forms are scrubbed too.
    """
    global _secret_pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    unquoted = urllib.parse.unquote(value)
    if len(unquoted) >= MIN_SECRET_LENGTH:
        forms.add(unquoted)
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)  # the longest form wins
        _secret_pattern = re.compile("|".join(re.escape(form) for form in ordered))


def register_backend_secrets(backend: str | None, options: Mapping[str, Any] | None = None) -> None:
    """Register the secrets a backend string and its keyword options carry.

    The password (or, without one, a token-like user name: 16 characters or more, digits among
    them) of every URL in ``backend``, the values of its secret-looking options, and the str
    values of ``options`` under secret-looking keys (``start_run("mlflow:...", password=...)``).
    """
    if backend:
        _find_secrets(backend)
    for key, value in (options or {}).items():
        if isinstance(value, str) and is_secret_key(str(key)):
            register_secret(value)


def _userinfo_secret(userinfo: str) -> str | None:
    user, colon, password = userinfo.partition(":")
    if colon:
        return password or None
    # ``https://TOKEN@host``; not a user name such as ``postgres`` (still removed from the URL).
    return user if len(user) >= 16 and any(c.isdigit() for c in user) else None


def _find_secrets(text: str) -> None:
    if "@" in text:
        for match in _URL_USERINFO.finditer(text):
            register_secret(_userinfo_secret(match.group("userinfo")))
    if "=" in text:
        for match in _OPTION.finditer(text):
            if is_secret_key(match.group("key")):
                register_secret(match.group("quoted") or match.group("value"))


def _strip_userinfo(match: re.Match[str]) -> str:
    register_secret(_userinfo_secret(match.group("userinfo")))
    return match.group("scheme")


def _mask_value(match: re.Match[str], head: str) -> str:
    quote = match.group("quote")
    value = match.group("quoted") if quote else match.group("value")
    if value is None or value.lower() in _PLAIN_VALUES or not is_secret_key(match.group("key")):
        return match.group(0)
    register_secret(value)
    return f"{head}{quote or ''}{REDACTED}{quote or ''}"


def _mask_option(match: re.Match[str]) -> str:
    return _mask_value(match, match.group("key") + match.group("sep"))


def _mask_yaml(match: re.Match[str]) -> str:
    return _mask_value(match, match.group("head"))


def _mask_http_auth(match: re.Match[str]) -> str:
    head = match.group("head")
    secret = match.group("value") if head is not None else match.group("token")
    if secret == REDACTED:
        return match.group(0)
    register_secret(secret)
    return f"{head if head is not None else match.group('bearer')}{REDACTED}"


def redact_text(text: str) -> str:
    """``text`` without credentials: URL user info removed, secret-looking option values,
    ``Authorization: ...`` / ``Bearer ...`` credentials and registered secrets replaced by ``***``.

    ``mlflow:http://alice:s3cret@host:5000?experiment=x&token=abc`` becomes
    ``mlflow:http://host:5000?experiment=x&token=***``. Text without ``@``, ``=``, an HTTP
    authorization word or a registered secret comes back as it is (the same object).
    """
    original = text
    if "@" in text:
        text = _URL_USERINFO.sub(_strip_userinfo, text)
    if "=" in text:
        text = _OPTION.sub(_mask_option, text)
    if ": " in text or ":\t" in text:
        text = _YAML.sub(_mask_yaml, text)
    lowered = text.lower()
    if "bearer" in lowered or "authorization" in lowered:
        text = _HTTP_AUTH.sub(_mask_http_auth, text)
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return original if text == original else text


def _masked(value: Any) -> Any:
    """The value kept under a secret-looking key: nothing to hide in None, bools and ""."""
    if value is None or isinstance(value, bool) or value == "":
        return value
    if isinstance(value, str):
        register_secret(value)
    return REDACTED


def redact_params(data: Any) -> Any:
    """A deep copy of nested params (dicts, lists, scalars) without credentials.

    Every string goes through :func:`redact_text`; the value under a secret-looking key (see
    :func:`is_secret_key`) becomes ``"***"`` unless it is None, a bool or ``""``. For configs that
    integrations store whole (the training config holds the backend string). Keys are kept.
    """
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, Mapping):
        return {
            key: _masked(value) if is_secret_key(str(key)) else redact_params(value)
            for key, value in data.items()
        }
    if isinstance(data, (list, tuple)):
        return [redact_params(item) for item in data]
    return data


def redact_param_strings(data: Any) -> Any:
    """Nested params with every string passed through :func:`redact_text`; keys play no part.

    For params users set themselves (``run["cfg"] = {...}``): a credentialed URL or a registered
    secret never reaches the backend, while ordinary values under keys such as ``token`` are
    kept. Returns ``data`` itself when nothing changed (no copy); otherwise new containers along
    the changed paths only.
    """
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        changed: dict[Any, Any] | None = None
        for key, value in data.items():
            new = redact_param_strings(value)
            if new is not value:
                if changed is None:
                    changed = dict(data)
                changed[key] = new
        return data if changed is None else changed
    if isinstance(data, list):
        items = [redact_param_strings(item) for item in data]
        if any(new is not old for new, old in zip(items, data, strict=True)):
            return items
        return data
    return data
