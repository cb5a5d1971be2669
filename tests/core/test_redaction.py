"""track_core.redaction: what is kept out of stored and printed text, and what is left alone.

The registry of secrets is process-wide, so every test makes its own secrets (``_secret()``).
"""

from __future__ import annotations

import copy
import time
import uuid

import pytest

import track_core as track
from track_core import api
from track_core.redaction import (
    REDACTED,
    is_secret_key,
    redact_param_strings,
    redact_params,
    redact_text,
    register_backend_secrets,
    register_secret,
)


def _secret(prefix: str = "pw") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# -- redact_text ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mlflow:http://alice:{s}@127.0.0.1:5000?experiment=x",
            "mlflow:http://127.0.0.1:5000?experiment=x",
        ),
        (
            "mlflow:postgresql+psycopg2://u:{s}@db.example:5432/mlflow",
            "mlflow:postgresql+psycopg2://db.example:5432/mlflow",
        ),
        ("git+https://{s}@github.com/o/r", "git+https://github.com/o/r"),  # token@
        ("mlflow:https://h?experiment=x&token={s}", "mlflow:https://h?experiment=x&token=***"),
        ("aim://h:53800?api_key={s}&x=1", "aim://h:53800?api_key=***&x=1"),
        ("--password={s} --lr=0.1", "--password=*** --lr=0.1"),
        ('backend = "x"\npassword = "{s}"\n', 'backend = "x"\npassword = "***"\n'),
        (
            "TRACK:\n  SECRET_KEY: {s}\n  BACKEND: aim\n",
            "TRACK:\n  SECRET_KEY: ***\n  BACKEND: aim\n",
        ),
        ("Authorization: Bearer {s}", "Authorization: ***"),
        ("sent Bearer {s} to the server", "sent Bearer *** to the server"),
    ],
)
def test_redact_text_removes_credentials_in_every_form(text: str, expected: str) -> None:
    secret = _secret()
    redacted = redact_text(text.format(s=secret))
    assert redacted == expected
    assert secret not in redacted


def test_redact_text_handles_passwords_with_at_signs_and_escapes() -> None:
    secret = _secret()
    text = f"mlflow:http://alice:{secret}@x%40y@127.0.0.1:5000/path?experiment=e"
    assert redact_text(text) == "mlflow:http://127.0.0.1:5000/path?experiment=e"
    several = f"a http://u:{secret}1@h1/x and b https://v:{secret}2@h2/y"
    assert redact_text(several) == "a http://h1/x and b https://h2/y"


@pytest.mark.parametrize(
    "text",
    [
        "see http://host:5000/path and mail me@example.com",
        "lr=0.1 author=me tokenizer=spacy.Tokenizer.v1 max_tokens=512",
        "password: null\ntoken: ~\nauth: true\n",
        "Basic configuration works",
        "",
        "plain words",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_text_returns_unchanged_text_itself() -> None:
    text = "no credentials here, " * 3
    assert redact_text(text) is text


def test_secrets_found_in_text_are_scrubbed_wherever_they_turn_up_later() -> None:
    secret = _secret()
    token = _secret("tok")
    redact_text(f"mlflow:http://alice:{secret}@h:1?token={token}")
    later = f"error: login with {secret} refused; token {token} expired"
    assert redact_text(later) == "error: login with *** refused; token *** expired"


def test_registered_secrets_are_scrubbed_in_their_url_encoded_forms_too() -> None:
    secret = f"p@ss w/{uuid.uuid4().hex[:8]}"
    register_secret(secret)
    from urllib.parse import quote, quote_plus

    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        assert redact_text(f"x {form} y") == f"x {REDACTED} y", form


def test_short_or_non_string_secrets_are_not_registered() -> None:
    register_secret("abc")  # too short to scrub by value: "abc" is ordinary text
    register_secret(12345678)
    register_secret(None)
    assert redact_text("abc 12345678") == "abc 12345678"


def test_register_backend_secrets_takes_urls_options_and_keyword_options() -> None:
    password, token, option = _secret(), _secret("tok"), _secret("kw")
    register_backend_secrets(
        f"mlflow:http://alice:{password}@h:1?token={token}",
        {"password": option, "http_timeout": "30"},
    )
    text = f"{password} {token} {option}"
    assert redact_text(text) == "*** *** ***"
    assert redact_text("timeout 30 for alice") == "timeout 30 for alice"


def test_a_user_name_alone_is_removed_but_not_scrubbed_elsewhere() -> None:
    assert redact_text("mlflow:postgresql://postgres@db/x") == "mlflow:postgresql://db/x"
    assert redact_text("postgres is the user") == "postgres is the user"
    token = f"ghp_{uuid.uuid4().hex}"
    assert redact_text(f"https://{token}@github.com/o/r") == "https://github.com/o/r"
    assert redact_text(f"token {token} leaked") == "token *** leaked"


def test_api_redact_is_redact_text() -> None:
    assert api.redact is redact_text
    assert track.redact_text is redact_text
    assert track.redact_params is redact_params


# -- keys ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_passwd",
        "client_secret",
        "api_key",
        "apiKey",
        "APIKey",
        "access_key",
        "AWS_SECRET_ACCESS_KEY",
        "auth",
        "Authorization",
        "credentials",
        "token",
        "access_token",
        "hf_token",
        "MLFLOW_TRACKING_TOKEN",
        "X-Amz-Signature",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    ["author", "tokenizer", "max_tokens", "pad_token", "token_type_ids", "key", "spans_key", "lr"],
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


# -- params ----------------------------------------------------------------------------------
def test_redact_params_masks_secret_keys_and_redacts_every_string() -> None:
    secret = _secret()
    data = {
        "TRACK": {"BACKEND": f"mlflow:http://alice:{secret}@h:1", "PASSWORD": "hunter2"},
        "list": ["ok", f"https://u:{secret}@h/x", 3],
        "tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"},
        "api_key": 123456,
        "auth": True,
        "token": None,
        "credentials": {"user": "a", "password": "b"},
        "max_tokens": 512,
        "pad_token": "[PAD]",
    }
    before = copy.deepcopy(data)
    result = redact_params(data)
    assert result == {
        "TRACK": {"BACKEND": "mlflow:http://h:1", "PASSWORD": REDACTED},
        "list": ["ok", "https://h/x", 3],
        "tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"},
        "api_key": REDACTED,
        "auth": True,
        "token": None,
        "credentials": REDACTED,
        "max_tokens": 512,
        "pad_token": "[PAD]",
    }
    assert data == before  # the input is not changed
    result["list"].append("new")
    assert data["list"] == before["list"]  # a copy, not a view


def test_values_under_secret_keys_are_registered() -> None:
    secret = _secret()
    redact_params({"db": {"password": secret}})
    assert redact_text(f"connecting with {secret}") == "connecting with ***"


def test_redact_param_strings_changes_strings_only() -> None:
    secret = _secret()
    data = {
        "cfg": {"backend": f"mlflow:http://alice:{secret}@h:1"},
        "token": "[PAD]",
        "password": "user-chosen",
        "n": [1, 2.5, None, True],
    }
    result = redact_param_strings(data)
    assert result == {
        "cfg": {"backend": "mlflow:http://h:1"},
        "token": "[PAD]",
        "password": "user-chosen",
        "n": [1, 2.5, None, True],
    }
    assert data["cfg"]["backend"].endswith("@h:1")  # not changed in place
    assert result["n"] is data["n"]  # untouched branches are shared


def test_redact_param_strings_returns_clean_params_themselves() -> None:
    data = {"a": {"b": ["x", "y"]}, "c": 1}
    assert redact_param_strings(data) is data


def test_redaction_is_cheap_enough_for_every_param_set() -> None:
    """Not a timing assertion: the measured cost is printed (see the core README)."""
    config = {
        f"section{i}": {f"key{j}": f"value {i}.{j}" for j in range(30)} | {"n": i, "lr": 0.1}
        for i in range(30)
    }
    started = time.perf_counter()
    for _ in range(20):
        redacted = redact_params(config)
    per_call = (time.perf_counter() - started) / 20
    assert redacted == config
    print(f"redact_params over 900 strings: {per_call * 1e3:.2f} ms")


def test_registry_is_shared_by_threads() -> None:
    import threading

    secrets = [_secret() for _ in range(16)]
    threads = [threading.Thread(target=register_secret, args=(s,)) for s in secrets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert redact_text(" ".join(secrets)) == " ".join([REDACTED] * 16)
