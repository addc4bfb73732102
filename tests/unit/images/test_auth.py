"""WWW-Authenticate parsing and CRI AuthConfig handling."""

from __future__ import annotations

import base64

import pytest

from cri_runtime import errors
from cri_runtime.images.auth import Challenge, Credentials, parse_www_authenticate, registry_error_message


def test_bearer_challenge() -> None:
    value = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
             'scope="repository:library/busybox:pull"')
    assert parse_www_authenticate(value) == [Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull"})]


def test_basic_and_multiple_challenges_and_escapes() -> None:
    value = 'Basic realm="Registry \\"Realm\\"", Bearer realm=https://t/x , error="invalid_token"'
    assert parse_www_authenticate(value) == [
        Challenge("basic", {"realm": 'Registry "Realm"'}),
        Challenge("bearer", {"realm": "https://t/x", "error": "invalid_token"}),
    ]


def test_scope_with_commas_survives_quoting() -> None:
    (c,) = parse_www_authenticate('bearer realm="r", scope="repository:a:pull,push"')
    assert c.params["scope"] == "repository:a:pull,push"


def test_auth_field_decodes_user_password() -> None:
    creds = Credentials.from_auth_config(auth=base64.b64encode(b"user:pa:ss").decode())
    assert (creds.username, creds.password) == ("user", "pa:ss")


@pytest.mark.parametrize("auth", ["!!!", base64.b64encode(b"nocolon").decode()])
def test_bad_auth_field(auth: str) -> None:
    with pytest.raises(errors.InvalidArgument) as exc:
        Credentials.from_auth_config(auth=auth)
    assert auth not in str(exc.value)


def test_secrets_not_in_repr() -> None:
    creds = Credentials.from_auth_config(username="u", password="hunter2", identity_token="tok-1",
                                         registry_token="tok-2")
    text = repr(creds) + str(creds)
    for secret in ("hunter2", "tok-1", "tok-2"):
        assert secret not in text
    assert "secret=set" in text


@pytest.mark.parametrize(("server", "host", "applies"), [
    ("", "anything:5000", True),
    ("https://reg.example", "reg.example", True),
    ("reg.example:5000", "reg.example:5000", True),
    ("https://reg.example/v1/", "reg.example", True),
    ("https://other.example", "reg.example", False),
])
def test_server_address_scopes_credentials(server: str, host: str, applies: bool) -> None:
    assert Credentials(username="u", password="p", server_address=server).applies_to(host) is applies


def test_registry_error_message() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}'
    assert registry_error_message(body) == "MANIFEST_UNKNOWN: manifest unknown"
    assert registry_error_message(b"plain text\n") == "plain text"
    assert registry_error_message(b'{"message": "x"}') == "x"
