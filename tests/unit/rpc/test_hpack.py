"""HPACK decoding against RFC 7541 Appendix C, and its error cases."""

from __future__ import annotations

import pytest

from cri_runtime.h2 import hpack


def _h(hexstr: str) -> bytes:
    return bytes.fromhex(hexstr.replace(" ", ""))


def test_integer_representation_examples() -> None:
    # C.1.1-C.1.3
    assert hpack.encode_int(10, 5, 0) == b"\x0a"
    assert hpack.encode_int(1337, 5, 0) == bytes([31, 154, 10])
    assert hpack.encode_int(42, 8, 0) == b"\x2a"
    assert hpack._decode_int(bytes([31, 154, 10]), 0, 5) == (1337, 3)


def test_requests_without_huffman_share_the_dynamic_table() -> None:
    d = hpack.Decoder()
    assert d.decode(_h("828684410f7777772e6578616d706c652e636f6d")) == [
        (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"www.example.com")]
    assert d.decode(_h("828684be58086e6f2d6361636865"))[-1] == (b"cache-control", b"no-cache")
    third = d.decode(_h("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"))
    assert third == [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
                     (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")]
    assert d._size == 164


def test_requests_with_huffman() -> None:
    d = hpack.Decoder()
    assert d.decode(_h("828684418cf1e3c2e5f23a6ba0ab90f4ff"))[-1] == (b":authority", b"www.example.com")
    assert d.decode(_h("828684be5886a8eb10649cbf"))[-1] == (b"cache-control", b"no-cache")
    assert d.decode(_h("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"))[-1] == (
        b"custom-key", b"custom-value")


def test_responses_with_huffman_evict_from_a_small_table() -> None:
    # C.6, with the table limited to 256 octets so entries are evicted.
    d = hpack.Decoder(max_table_size=256)
    first = d.decode(_h("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff"
                        "6e919d29ad171863c78f0b97c8e9ae82ae43d3"))
    assert first == [(b":status", b"302"), (b"cache-control", b"private"),
                     (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"), (b"location", b"https://www.example.com")]
    second = d.decode(_h("4883640effc1c0bf"))
    assert second[0] == (b":status", b"307") and second[1:] == first[1:]
    third = d.decode(_h("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6"
                        "c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007"))
    assert third[-1] == (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
    assert d._size == 215


@pytest.mark.parametrize("value", [b"", b"a", b"application/grpc", bytes(range(256)), b"\xff" * 9])
def test_huffman_round_trip(value: bytes) -> None:
    assert hpack.huffman_decode(hpack.huffman_encode(value)) == value


@pytest.mark.parametrize("raw, why", [
    (b"\x00", "padding longer than 7 bits"),  # eight zero bits: no code, not padding
    (bytes([0b11111110]), "padding not all ones"),
    (b"\xff\xff\xff\xff", "EOS inside the string"),
])
def test_bad_huffman_is_rejected(raw: bytes, why: str) -> None:
    with pytest.raises(hpack.HpackError):
        hpack.huffman_decode(raw)


@pytest.mark.parametrize("block", [
    b"\x80",                          # index 0
    b"\xbe",                          # dynamic index 62 with an empty table
    b"\x41\x05ab",                    # string longer than the block
    b"\x3f\xff\xff\xff\xff\x0f",      # integer beyond 2^28
    b"\x3f\xe2\x1f",                  # table size update above what we allow
    b"\x82\x20",                      # table size update after a field
])
def test_malformed_blocks_are_rejected(block: bytes) -> None:
    with pytest.raises(hpack.HpackError):
        hpack.Decoder().decode(block)


def test_header_list_size_is_bounded() -> None:
    d = hpack.Decoder(max_header_list_size=100)
    block = hpack.encode([(b"x-a", b"v" * 80)])
    with pytest.raises(hpack.HpackError):
        d.decode(block)


def test_encoded_blocks_decode_back() -> None:
    headers = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-message", b"x" * 300)]
    assert hpack.Decoder().decode(hpack.encode(headers)) == headers


def test_uppercase_names_are_flagged_also_through_the_dynamic_table() -> None:
    decoder = hpack.Decoder()
    literal = b"\x40" + hpack.encode_int(3, 7, 0) + b"X-A" + hpack.encode_int(1, 7, 0) + b"b"
    assert decoder.decode(literal) == [(b"X-A", b"b")]
    assert decoder.uppercase_name
    assert decoder.decode(b"\xbe") == [(b"X-A", b"b")]  # the same entry, referenced by index
    assert decoder.uppercase_name
    assert decoder.decode(hpack.encode([(b"x-b", b"c")])) == [(b"x-b", b"c")]
    assert not decoder.uppercase_name


def test_huffman_round_trips_and_bad_padding_is_refused() -> None:
    for text in (b"", b"a", b"grpc-python/1.62 grpc-c/39.0 (linux; chttp2)", bytes(range(256))):
        assert hpack.huffman_decode(hpack.huffman_encode(text)) == text
    with pytest.raises(hpack.HpackError):
        hpack.huffman_decode(b"\xff\xff\xff\xff")  # EOS inside the string
    with pytest.raises(hpack.HpackError):
        hpack.huffman_decode(hpack.huffman_encode(b"a") + b"\xff")  # padding longer than 7 bits
