"""How a sequence ``(name, context)`` becomes an MLflow metric key, and back.

MLflow keys match ``^[/\\w.\\- :]*$``, are at most 250 characters and must be normalized paths
(no leading ``/``, no ``//``, no ``.`` or ``..`` component, no trailing ``/``). The rule:

* ``loss`` in the empty context is ``loss``; ``train/loss`` stays ``train/loss`` (MLflow's UI groups
  charts by the part before the first ``/``).
* A context follows the name as `` :: key: value`` items in key order:
  ``loss`` in ``{"subset": "val"}`` is ``loss :: subset: val``;
  ``{"fold": 3, "subset": "val"}`` gives ``loss :: fold: 3 :: subset: val``.
* Context values that are not strings are written as JSON literals: ``3``, ``0.5``, ``1e-05``,
  ``true``, ``false``, ``null``. A string that would read as one of those has its first character
  escaped (``"3"`` is ``:33``), so ``3`` and ``"3"`` stay apart.
* Escaping: ``:`` followed by two lowercase hex digits is the code point (``:3a`` is ``:``), and
  ``:u`` followed by six hex digits is any other code point. Escaped are ``:`` itself, every
  character MLflow rejects, ``/`` inside context keys and values, and, in names, a ``/`` that
  would break the path rules (leading, trailing or doubled) and the first ``.`` of a ``.`` or
  ``..`` component or of a name starting with ``..``. Outside escapes, ``:`` only appears in the
  separators `` :: `` and ``: ``, so decoding is exact.
* A key that would be longer than 241 characters is shortened to
  ``<start of the name> :: sha-<16 hex digits>`` and the run keeps the full ``(name, context)`` as
  JSON in the tag ``track.key.<16 hex digits>`` (241 leaves room for `` :: epoch``, so runs
  written the old way keep the same keys).
* Epochs are not in metric keys: they are kept in the artifact ``track/epochs.json`` (see
  ``track_mlflow._epochs``). Runs written before kept them in a companion metric
  ``<key> :: epoch``, which is still read, and never names a sequence.

Key styles, chosen per run (the backend option ``key_style``) and recorded on it (the tag
``mlflow.track.keyStyle``, which MLflow's UI does not list; a run without it has the default):

* ``"context"`` (the default): the rule above.
* ``"slash"``: the keys MLflow's docs write, so MLflow's UI makes a ``train`` and a ``val``
  chart section: ``loss`` in ``{"subset": "train"}`` is ``train/loss`` (the subset value
  escaped as a context value, its ``/`` included, then the name as above). A name in the empty
  context has every ``/`` escaped (``a/b`` is ``a:2fb``), except the names under ``system/``,
  the namespace of MLflow's system metrics, which is never a subset prefix. Any other context
  (more keys, a value that is not a non-empty string, ``subset: system``) gets the default key,
  as does a key too long. Decoding is exact: a key with `` :: `` decodes as above, a key under
  ``system/`` or without ``/`` is a name in the empty context, any other splits at its first
  ``/`` into the subset and the name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Final

from track_core.context import Context, ContextValue

MAX_KEY_LENGTH: Final = 250
EPOCH_SUFFIX: Final = " :: epoch"
#: Keys are kept at most this long so that ``key + EPOCH_SUFFIX`` still fits.
MAX_SEQUENCE_KEY_LENGTH: Final = MAX_KEY_LENGTH - len(EPOCH_SUFFIX)
HASH_TAG_PREFIX: Final = "track.key."
#: The key styles (see the module doc) and the run tag that records a run's style.
DEFAULT_KEY_STYLE: Final = "context"
KEY_STYLES: Final = (DEFAULT_KEY_STYLE, "slash")
KEY_STYLE_TAG: Final = "mlflow.track.keyStyle"
#: The prefix of MLflow's system metrics, never a subset in the slash style.
SYSTEM_PREFIX: Final = "system/"
_HASH_MARK: Final = "sha-"
_SEP: Final = " :: "
_KV: Final = ": "
_NAME_PREFIX_LENGTH: Final = 160

_SAFE_CHAR = re.compile(r"[\w.\- ]")
_LITERAL = re.compile(
    r"(?:null|true|false|-?[0-9]+|-?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:e-?[0-9]+)?)"
)
_INT = re.compile(r"-?[0-9]+")
_ESCAPE = re.compile(r":(?:u([0-9a-f]{6})|([0-9a-f]{2}))")


def _escape_char(char: str) -> str:
    code = ord(char)
    return f":{code:02x}" if code < 0x100 else f":u{code:06x}"


def _is_safe(char: str) -> bool:
    return _SAFE_CHAR.fullmatch(char) is not None


def escape_segment(text: str) -> str:
    """Escape a context key or a string context value (``/`` included)."""
    return "".join(char if _is_safe(char) else _escape_char(char) for char in text)


def escape_name(name: str) -> str:
    """Escape a sequence name, keeping its ``/`` where they make a valid MLflow path."""
    out: list[str] = []
    last = len(name) - 1
    for index, char in enumerate(name):
        if char == "/":
            keep = bool(out) and out[-1] != "/" and index != last
            out.append("/" if keep else ":2f")
        else:
            out.append(char if _is_safe(char) else _escape_char(char))
    components = "".join(out).split("/")
    for index, component in enumerate(components):
        if component in (".", "..") or (index == 0 and component.startswith("..")):
            components[index] = ":2e" + component[1:]
    return "/".join(components)


def unescape(text: str) -> str:
    """Undo ``escape_segment`` / ``escape_name``; a stray ``:`` is kept as it is."""

    def replace(match: re.Match[str]) -> str:
        return chr(int(match.group(1) or match.group(2), 16))

    return _ESCAPE.sub(replace, text)


def _encode_value(value: ContextValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"context values must be finite, got {value!r}")
        return repr(value).replace("e+", "e")
    escaped = escape_segment(value)
    if _LITERAL.fullmatch(escaped):
        escaped = _escape_char(value[0]) + escaped[1:]
    return escaped


def _decode_value(raw: str) -> ContextValue:
    if _LITERAL.fullmatch(raw):
        if raw == "null":
            return None
        if raw in ("true", "false"):
            return raw == "true"
        if _INT.fullmatch(raw):
            return int(raw)
        return float(raw)
    return unescape(raw)


def readable_key(name: str, context: Mapping[str, ContextValue]) -> str:
    """The full (not shortened) key of a sequence."""
    parts = [escape_name(name)]
    for key in sorted(context):
        parts.append(f"{escape_segment(key)}{_KV}{_encode_value(context[key])}")
    return _SEP.join(parts)


def key_hash(name: str, context: Mapping[str, ContextValue]) -> str:
    identity = json.dumps([name, sorted(Context.of(context).to_dict().items())], ensure_ascii=True)
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def check_key_style(style: object) -> str:
    """``style`` if it is a key style; a clear error if not."""
    if style not in KEY_STYLES:
        raise ValueError(
            f"the mlflow option key_style must be one of {', '.join(KEY_STYLES)}, got {style!r}"
        )
    return str(style)


def key_style_of(tags: Mapping[str, str] | None) -> str:
    """The key style a run's tags record (the default when they record none)."""
    return check_key_style((tags or {}).get(KEY_STYLE_TAG, DEFAULT_KEY_STYLE))


def _slash_key(name: str, context: Mapping[str, ContextValue]) -> str | None:
    """The slash-style key, or None where the slash style gives the default key."""
    if not context:
        if name.startswith(SYSTEM_PREFIX):
            return escape_name(name)
        return escape_name(name).replace("/", ":2f")
    if len(context) != 1:
        return None
    subset = context.get("subset")
    if not isinstance(subset, str) or not subset or subset == SYSTEM_PREFIX[:-1]:
        return None
    prefix = escape_segment(subset)
    if prefix.startswith("."):  # "." and ".." are not path components MLflow takes
        prefix = ":2e" + prefix[1:]
    return f"{prefix}/{escape_name(name)}"


def encode_key(
    name: str, context: Mapping[str, ContextValue] | None = None, style: str = DEFAULT_KEY_STYLE
) -> str:
    """The MLflow metric key of the sequence ``name`` in ``context``, in the key ``style`` of
    the run (see the module doc)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a sequence name must be a non-empty str, got {name!r}")
    context = context or {}
    key = _slash_key(name, context) if style == "slash" else None
    if key is None:
        key = readable_key(name, context)
    if len(key) <= MAX_SEQUENCE_KEY_LENGTH:
        return key
    return hashed_key(name, context)


def has_escape(key: str) -> bool:
    """Whether ``key`` holds an escape (``:hh`` or ``:uhhhhhh``)."""
    return _ESCAPE.search(key) is not None


def hashed_key(name: str, context: Mapping[str, ContextValue]) -> str:
    # Shorten the name at a character boundary, so that no escape is cut in two.
    cut = min(len(name), _NAME_PREFIX_LENGTH)
    prefix = escape_name(name[:cut])
    while len(prefix) > _NAME_PREFIX_LENGTH or prefix.endswith(("/", " ")):
        cut -= 1
        prefix = escape_name(name[:cut]) if cut else ""
    head = f"{prefix}{_SEP}" if prefix else ""
    return f"{head}{_HASH_MARK}{key_hash(name, context)}"


def hash_registry_entry(name: str, context: Mapping[str, ContextValue]) -> tuple[str, str]:
    """The run tag ``(key, value)`` that maps a shortened key back to its sequence."""
    value = json.dumps({"name": name, "context": Context.of(context).to_dict()})
    return HASH_TAG_PREFIX + key_hash(name, context), value


def plain_key(name: str, context: Mapping[str, ContextValue]) -> str:
    """The key as a user would write the sequence, without escapes: ``encode_key`` gives the
    same text unless it had to escape or shorten something."""
    parts = [name]
    for key in sorted(context):
        value = context[key]
        parts.append(f"{key}{_KV}{value if isinstance(value, str) else _encode_value(value)}")
    return _SEP.join(parts)


def is_epoch_key(key: str) -> bool:
    return key.endswith(EPOCH_SUFFIX)


def decode_key(key: str, registry: Mapping[str, str] | None = None) -> tuple[str, Context]:
    """The ``(name, context)`` of a metric key written by ``encode_key``.

    ``registry`` is the run's tags: they hold the run's key style and the sequences of
    shortened keys. A key that track did not write decodes to its own text in the empty
    context. Raises KeyError for a shortened key whose registry entry is missing.
    """
    parts = key.split("::")
    if len(parts) == 1:
        if "/" in key and not key.startswith(SYSTEM_PREFIX) and key_style_of(registry) == "slash":
            subset, _, name = key.partition("/")
            return unescape(name), Context({"subset": unescape(subset)})
        return unescape(key), Context()
    # Each structural "::" has one space on each side.
    cleaned = [parts[0][:-1] if parts[0].endswith(" ") else parts[0]]
    for middle in parts[1:-1]:
        cleaned.append(middle[1:-1] if middle.startswith(" ") and middle.endswith(" ") else middle)
    cleaned.append(parts[-1][1:] if parts[-1].startswith(" ") else parts[-1])
    last = cleaned[-1]
    if last.startswith(_HASH_MARK) and _KV not in last:
        digest = last[len(_HASH_MARK) :]
        entry = (registry or {}).get(HASH_TAG_PREFIX + digest)
        if entry is None:
            raise KeyError(f"shortened key {key!r} has no registry tag {HASH_TAG_PREFIX}{digest}")
        data = json.loads(entry)
        return data["name"], Context(data["context"])
    items: dict[str, ContextValue] = {}
    for item in cleaned[1:]:
        raw_key, sep, raw_value = item.partition(_KV)
        if not sep:
            # Not one of ours: keep the text as the name.
            return unescape(key), Context()
        items[unescape(raw_key)] = _decode_value(raw_value)
    return unescape(cleaned[0]), Context(items)
