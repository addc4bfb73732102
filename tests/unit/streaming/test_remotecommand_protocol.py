"""Remote-command protocol details: negotiation, exit status on the error stream, resize."""

from __future__ import annotations

import json

import pytest

from cri_runtime.streaming import remotecommand as rc
from cri_runtime.streaming.http import HttpError, HttpHeaders
from cri_runtime.streaming.tokens import TokenCache


def test_spdy_negotiation_picks_first_client_protocol_we_speak() -> None:
    headers = HttpHeaders([("X-Stream-Protocol-Version", "v5.channel.k8s.io"),
                           ("X-Stream-Protocol-Version", "v4.channel.k8s.io"),
                           ("X-Stream-Protocol-Version", "channel.k8s.io")])
    assert rc.negotiate_spdy_protocol(headers, rc.SPDY_PROTOCOLS) == rc.V4
    headers = HttpHeaders([("X-Stream-Protocol-Version", "channel.k8s.io, v3.channel.k8s.io")])
    assert rc.negotiate_spdy_protocol(headers, rc.SPDY_PROTOCOLS) == rc.V1


def test_spdy_negotiation_errors() -> None:
    with pytest.raises(HttpError) as missing:
        rc.negotiate_spdy_protocol(HttpHeaders(), rc.SPDY_PROTOCOLS)
    assert missing.value.status == 400
    with pytest.raises(HttpError) as mismatch:
        rc.negotiate_spdy_protocol(HttpHeaders([("X-Stream-Protocol-Version", "v9")]), rc.SPDY_PROTOCOLS)
    assert mismatch.value.status == 403
    assert [v for k, v in mismatch.value.headers if k == "X-Accepted-Stream-Protocol-Versions"] == rc.SPDY_PROTOCOLS


def test_v4_exit_status_matches_metav1_status() -> None:
    assert json.loads(rc.encode_result(rc.V4, 0)) == {"metadata": {}, "status": "Success"}
    failure = json.loads(rc.encode_result(rc.V4, 3))
    assert failure["status"] == "Failure" and failure["reason"] == "NonZeroExitCode"
    assert failure["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    error = json.loads(rc.encode_result(rc.V5, "no such container"))
    assert error["status"] == "Failure" and error["message"] == "no such container"


@pytest.mark.parametrize("code", [0, 1, 3, 127, 255])
def test_exit_codes_round_trip_in_every_version(code: int) -> None:
    assert rc.decode_result(rc.V4, rc.encode_result(rc.V4, code)) == code
    if code == 0:
        assert rc.encode_result(rc.V1, 0) == b"" and rc.decode_result(rc.V2, b"") == 0
    else:
        with pytest.raises(rc.RemoteCommandError, match=f"exit code {code}"):
            rc.decode_result(rc.V3, rc.encode_result(rc.V3, code))


def test_decode_rejects_bad_statuses() -> None:
    for bad in (b"not json", b"[]", b'{"status":"Weird"}',
                b'{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"999"}]}}',
                b'{"status":"Failure","reason":"NonZeroExitCode","details":{}}'):
        with pytest.raises(rc.RemoteCommandError):
            rc.decode_result(rc.V4, bad)
    with pytest.raises(rc.RemoteCommandError, match="boom"):
        rc.decode_result(rc.V4, rc.encode_result(rc.V4, "boom"))


def test_resize_decoder_handles_split_and_concatenated_objects() -> None:
    decoder = rc.ResizeDecoder()
    stream = rc.encode_resize(rc.TerminalSize(80, 24)) + b'{"Width":100,"Height":40}{"Width":1,'
    assert decoder.feed(stream[:10]) == []
    assert decoder.feed(stream[10:]) == [rc.TerminalSize(80, 24), rc.TerminalSize(100, 40)]
    assert decoder.feed(b'"Height":2}\n') == [rc.TerminalSize(1, 2)]
    assert decoder.feed(b'{"Width":-5,"Height":2}') == []


def test_token_cache_single_use_expiry_and_capacity() -> None:
    now = [0.0]
    cache: TokenCache[str] = TokenCache(ttl=60, max_in_flight=2, clock=lambda: now[0])
    first = cache.insert("a")
    assert cache.consume(first) == "a"
    assert cache.consume(first) is None  # single use
    second = cache.insert("b")
    now[0] = 61.0
    assert cache.consume(second) is None  # expired
    cache.insert("c")
    cache.insert("d")
    from cri_runtime.errors import ResourceExhausted

    with pytest.raises(ResourceExhausted):
        cache.insert("e")
    now[0] = 200.0
    assert len(cache) == 0  # expired entries are collected
    assert cache.consume("never-issued") is None
