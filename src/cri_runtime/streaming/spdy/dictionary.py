"""The SPDY/3 header-compression dictionary (protocol data from the SPDY/3 draft, section 2.6.10.1).

Both ends prime zlib with these exact 1423 bytes; a single wrong byte makes every header
block undecodable for the peer, so the unit tests pin the length and the Adler-32 checksum
(which is also the dictionary id in the zlib stream header).

The dictionary is a run of length-prefixed words (4-byte big-endian length, then the word)
followed by a tail of raw text; it is kept here in that structure so it can be read.
"""

from __future__ import annotations

_WORD_TEXT = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
)
_WORDS = [*_WORD_TEXT.split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]

_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _build() -> bytes:
    out = bytearray()
    for word in _WORDS:
        encoded = word.encode("ascii")
        out += len(encoded).to_bytes(4, "big") + encoded
    out += _TAIL.encode("ascii")
    return bytes(out)


HEADER_DICTIONARY: bytes = _build()
"""The zlib preset dictionary for SPDY/3 name/value header blocks."""
