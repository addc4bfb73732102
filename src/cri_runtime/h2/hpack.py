"""HPACK (RFC 7541) header compression for our gRPC transport.

The decoder is complete (static and dynamic tables, Huffman strings, table
size updates) because clients may use all of it. The encoder emits literals
without indexing and without Huffman coding: servers may always do that, it
keeps no per-connection state for responses, and our response header sets
are few and short.
"""

from __future__ import annotations

import re
from collections import deque


class HpackError(Exception):
    """A header block that cannot be decoded: a COMPRESSION_ERROR for the connection."""


class HeaderListTooLarge(HpackError):
    """The decoded header list would exceed the limit we advertised (found before decoding past it)."""


_UPPERCASE = re.compile(rb"[A-Z]")


STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"), (b":status", b"200"),
    (b":status", b"204"), (b":status", b"206"), (b":status", b"304"), (b":status", b"400"),
    (b":status", b"404"), (b":status", b"500"), (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"), (b"accept-language", b""), (b"accept-ranges", b""),
    (b"accept", b""), (b"access-control-allow-origin", b""), (b"age", b""), (b"allow", b""),
    (b"authorization", b""), (b"cache-control", b""), (b"content-disposition", b""),
    (b"content-encoding", b""), (b"content-language", b""), (b"content-length", b""),
    (b"content-location", b""), (b"content-range", b""), (b"content-type", b""), (b"cookie", b""),
    (b"date", b""), (b"etag", b""), (b"expect", b""), (b"expires", b""), (b"from", b""), (b"host", b""),
    (b"if-match", b""), (b"if-modified-since", b""), (b"if-none-match", b""), (b"if-range", b""),
    (b"if-unmodified-since", b""), (b"last-modified", b""), (b"link", b""), (b"location", b""),
    (b"max-forwards", b""), (b"proxy-authenticate", b""), (b"proxy-authorization", b""),
    (b"range", b""), (b"referer", b""), (b"refresh", b""), (b"retry-after", b""), (b"server", b""),
    (b"set-cookie", b""), (b"strict-transport-security", b""), (b"transfer-encoding", b""),
    (b"user-agent", b""), (b"vary", b""), (b"via", b""), (b"www-authenticate", b""),
)
_STATIC_LEN = len(STATIC_TABLE)
_ENTRY_OVERHEAD = 32

# RFC 7541 Appendix B: the code (right-aligned) and bit length of each symbol; 256 is EOS.
_HUFFMAN_CODES = (
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7,
    0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec,
    0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3,
    0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb,
    0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa,
    0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
    0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
    0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62,
    0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
    0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72,
    0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
    0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26,
    0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7,
    0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc,
    0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9,
    0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
    0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef,
    0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde,
    0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec,
    0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef,
    0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
    0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec,
    0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed,
    0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2,
    0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5,
    0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4,
    0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea,
    0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
    0x3fffffff,
)
_HUFFMAN_LENGTHS = (
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30,
)

_EOS = 256


def _build_nibble_table() -> tuple[list[int], list[int], list[bool]]:
    """The Huffman code as a state machine read four bits at a time.

    States are the inner nodes of the code tree (the root is 0). For state s and
    nibble n, `next[s * 16 + n]` is the state after those four bits and
    `emit[...]` the symbol completed on the way (-1 for none; at most one,
    since no code is shorter than five bits; `_EOS` is an error). `accepting[s]`
    says a string may end in state s: the bits read since the last symbol are
    fewer than eight and all ones, i.e. a prefix of EOS (RFC 7541 5.2). The
    table has 256 * 16 entries, built once at import in about a millisecond.
    """
    children: list[list[int]] = [[-1, -1]]  # inner nodes; a leaf is stored as -(symbol + 2)
    for symbol, (code, length) in enumerate(zip(_HUFFMAN_CODES, _HUFFMAN_LENGTHS, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if children[node][bit] == -1:
                children.append([-1, -1])
                children[node][bit] = len(children) - 1
            node = children[node][bit]
        children[node][code & 1] = -(symbol + 2)
    accepting = [False] * len(children)
    node, depth = 0, 0
    while depth < 8 and node >= 0:  # the all-ones path from the root, up to seven bits
        accepting[node] = True
        node, depth = children[node][1], depth + 1
    nxt = [0] * (len(children) * 16)
    emit = [-1] * (len(children) * 16)
    for state in range(len(children)):
        for nibble in range(16):
            node, symbol = state, -1
            for shift in (3, 2, 1, 0):
                child = children[node][(nibble >> shift) & 1]
                if child < 0:
                    symbol = -child - 2
                    node = 0
                    if symbol == _EOS:
                        break
                else:
                    node = child
            nxt[state * 16 + nibble] = node
            emit[state * 16 + nibble] = symbol
    return nxt, emit, accepting


_NEXT, _EMIT, _ACCEPTING = _build_nibble_table()


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string in time linear in its length, with no cache.

    Table-driven, a nibble at a time (as nghttp2 does): two lookups per input
    byte whatever the code lengths, so 30-bit symbols cost no more than 5-bit ones.
    """
    nxt, emit = _NEXT, _EMIT
    out = bytearray()
    state = 0
    for byte in data:
        index = (state << 4) | (byte >> 4)
        symbol = emit[index]
        state = nxt[index]
        if symbol >= 0:
            if symbol == _EOS:
                raise HpackError("EOS symbol inside a Huffman string")
            out.append(symbol)
        index = (state << 4) | (byte & 0x0F)
        symbol = emit[index]
        state = nxt[index]
        if symbol >= 0:
            if symbol == _EOS:
                raise HpackError("EOS symbol inside a Huffman string")
            out.append(symbol)
    if not _ACCEPTING[state]:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


_HUFFMAN_BITS = tuple(format(code, f"0{length}b")
                      for code, length in zip(_HUFFMAN_CODES, _HUFFMAN_LENGTHS, strict=True))


def huffman_encode(data: bytes) -> bytes:
    """Huffman-code a string (used by tests to build blocks as real clients do); linear time."""
    bits = "".join([_HUFFMAN_BITS[byte] for byte in data])
    bits += "1" * (-len(bits) % 8)  # padding: the most significant bits of EOS
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def _decode_int(block: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    mask = (1 << prefix_bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(block):
            raise HpackError("truncated integer")
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if shift > 28:
            raise HpackError("integer too large")
        if not byte & 0x80:
            return value, pos


def encode_int(value: int, prefix_bits: int, flags: int) -> bytes:
    mask = (1 << prefix_bits) - 1
    if value < mask:
        return bytes((flags | value,))
    out = bytearray((flags | mask,))
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Decoder:
    """One connection's header decoding state (its dynamic table)."""

    def __init__(self, max_table_size: int = 4096, max_header_list_size: int = 1 << 20) -> None:
        self.max_allowed = max_table_size  # what our SETTINGS_HEADER_TABLE_SIZE allows
        self.max_size = max_table_size
        self.max_header_list_size = max_header_list_size
        self._table: deque[tuple[bytes, bytes]] = deque()
        self._size = 0
        self._uppercase_entries = 0  # table entries whose name has an uppercase letter (rare)
        self.uppercase_name = False

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if index <= 0:
            raise HpackError("header index 0")
        if index <= _STATIC_LEN:
            return STATIC_TABLE[index - 1]
        dynamic = index - _STATIC_LEN - 1
        if dynamic >= len(self._table):
            raise HpackError(f"header index {index} out of range")
        return self._table[dynamic]

    def _add(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + _ENTRY_OVERHEAD
        if size > self.max_size:
            self._table.clear()
            self._size = 0
            self._uppercase_entries = 0
            return
        self._table.appendleft((name, value))
        self._size += size
        if _UPPERCASE.search(name):
            self._uppercase_entries += 1
        self._evict()

    def _evict(self) -> None:
        while self._size > self.max_size:
            name, value = self._table.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD
            if self._uppercase_entries and _UPPERCASE.search(name):
                self._uppercase_entries -= 1

    def _string(self, block: bytes, pos: int, budget: int) -> tuple[bytes, int]:
        """The string at `pos`; HeaderListTooLarge before any work if it cannot fit in `budget`."""
        if pos >= len(block):
            raise HpackError("truncated string")
        huffman = block[pos] & 0x80
        length, pos = _decode_int(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HpackError("truncated string")
        # A Huffman code is at most 30 bits a symbol, so the string decodes to at least length*8/30 bytes.
        if (length * 8 // 30 if huffman else length) > budget:
            raise HeaderListTooLarge("header list too large")
        raw = bytes(block[pos:end])
        return (huffman_decode(raw) if huffman else raw), end

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """Decode one complete header block into (name, value) pairs, in order.

        The header-list limit is enforced as the block is read, before each
        string is decoded, so an oversized list costs no more than the limit.
        `uppercase_name` tells whether a field name had an uppercase letter
        (a malformed request, RFC 9113 8.2.1; the block is still decoded in full
        so the dynamic table stays in step with the client's).
        """
        headers: list[tuple[bytes, bytes]] = []
        pos, n = 0, len(block)
        budget = self.max_header_list_size
        seen_field = False
        uppercase = False
        while pos < n:
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = _decode_int(block, pos, 7)
                name, value = self._entry(index)
                if index > _STATIC_LEN and self._uppercase_entries and _UPPERCASE.search(name):
                    uppercase = True
            elif byte & 0xE0 == 0x20:  # dynamic table size update
                if seen_field:
                    raise HpackError("table size update after a header field")
                size, pos = _decode_int(block, pos, 5)
                if size > self.max_allowed:
                    raise HpackError(f"table size {size} above the allowed {self.max_allowed}")
                self.max_size = size
                self._evict()
                continue
            else:
                indexing = byte & 0xC0 == 0x40
                index, pos = _decode_int(block, pos, 6 if indexing else 4)
                if index:
                    name = self._entry(index)[0]
                    if index > _STATIC_LEN and self._uppercase_entries and _UPPERCASE.search(name):
                        uppercase = True
                else:
                    name, pos = self._string(block, pos, budget - _ENTRY_OVERHEAD)
                    if _UPPERCASE.search(name):
                        uppercase = True
                value, pos = self._string(block, pos, budget - _ENTRY_OVERHEAD - len(name))
                if indexing:
                    self._add(name, value)
            seen_field = True
            budget -= len(name) + len(value) + _ENTRY_OVERHEAD
            if budget < 0:
                raise HeaderListTooLarge("header list too large")
            headers.append((name, value))
        self.uppercase_name = uppercase
        return headers


def encode_literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, new name, no Huffman coding."""
    return b"\x00" + encode_int(len(name), 7, 0) + name + encode_int(len(value), 7, 0) + value


def encode(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Encode a header list statelessly; `:status 200` uses its static entry."""
    out = bytearray()
    for name, value in headers:
        if name == b":status" and value == b"200":
            out += b"\x88"
        else:
            out += encode_literal(name, value)
    return bytes(out)
