"""CRI log records: timestamps like Go's RFC3339Nano, line splitting like containerd's logger."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from cri_runtime.containers.relay.crilog import (
    TAG_FULL,
    TAG_PARTIAL,
    LineSplitter,
    Record,
    format_records,
    format_timestamp,
)

F, P = TAG_FULL, TAG_PARTIAL


@pytest.fixture
def timezone() -> Iterator[object]:
    """Set TZ for one test and restore it (time.tzset makes localtime follow it)."""
    old = os.environ.get("TZ")

    def set_tz(value: str) -> None:
        os.environ["TZ"] = value
        time.tzset()

    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


# ----------------------------------------------------------------------------- timestamps
@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),  # whole second: no dot at all
        (1_500_000_000, "1970-01-01T00:00:01.5Z"),  # trailing zeros trimmed
        (1_000_000_100, "1970-01-01T00:00:01.0000001Z"),  # leading zeros kept
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
        (1_700_000_000_120_000_000, "2023-11-14T22:13:20.12Z"),
        (951_782_400_000_000_001, "2000-02-29T00:00:00.000000001Z"),
    ],
)
def test_timestamp_utc_matches_go_rfc3339nano(timezone: object, ns: int, expected: str) -> None:
    timezone("UTC")  # type: ignore[operator]
    assert format_timestamp(ns) == expected


def test_timestamp_positive_offset(timezone: object) -> None:
    timezone("IST-5:30")  # type: ignore[operator]  # POSIX TZ: 5h30 east of UTC
    assert format_timestamp(1_700_000_000_250_000_000) == "2023-11-15T03:43:20.25+05:30"


def test_timestamp_negative_offset(timezone: object) -> None:
    timezone("EST5")  # type: ignore[operator]
    assert format_timestamp(1_700_000_000_000_000_000) == "2023-11-14T17:13:20-05:00"


def test_format_records_share_timestamp_and_stream(timezone: object) -> None:
    timezone("UTC")  # type: ignore[operator]
    data = format_records(1_500_000_000, "stderr", [(P, b"abc"), (F, b"de"), (F, b"")])
    assert data == (
        b"1970-01-01T00:00:01.5Z stderr P abc\n"
        b"1970-01-01T00:00:01.5Z stderr F de\n"
        b"1970-01-01T00:00:01.5Z stderr F \n"
    )
    assert format_records(0, "stdout", []) == b""


# ----------------------------------------------------------------------------- splitting
def split(chunks: list[bytes], max_line_size: int, eof: bool = True) -> list[Record]:
    splitter = LineSplitter(max_line_size)
    out: list[Record] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    if eof:
        out += splitter.finish()
    return out


def test_full_lines() -> None:
    assert split([b"a\nbb\n\nccc\n"], 100) == [(F, b"a"), (F, b"bb"), (F, b""), (F, b"ccc")]


def test_line_waits_for_its_newline_across_chunks() -> None:
    splitter = LineSplitter(100)
    assert splitter.feed(b"hel") == []
    assert splitter.pending == 3
    assert splitter.feed(b"lo\nwor") == [(F, b"hello")]
    assert splitter.feed(b"ld\n") == [(F, b"world")]
    assert splitter.finish() == []


def test_crlf_ending_drops_one_cr() -> None:
    assert split([b"a\r\nb\r\r\n\r\n"], 100) == [(F, b"a"), (F, b"b\r"), (F, b"")]


def test_crlf_split_across_chunks() -> None:
    assert split([b"abc\r", b"\n"], 100) == [(F, b"abc")]


def test_cr_elsewhere_is_content() -> None:
    assert split([b"a\rb\n"], 100) == [(F, b"a\rb")]


def test_long_line_is_cut_into_partials_of_exact_size() -> None:
    assert split([b"abcdefghij\n"], 4) == [(P, b"abcd"), (P, b"efgh"), (F, b"ij")]


def test_line_of_exact_multiple_ends_with_full_piece_not_empty_record() -> None:
    assert split([b"abcdefgh\n"], 4) == [(P, b"abcd"), (F, b"efgh")]
    assert split([b"abcd\n"], 4) == [(F, b"abcd")]


def test_long_line_is_cut_before_its_newline_arrives() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcdef") == [(P, b"abcd")]
    assert splitter.feed(b"gh") == []  # "efgh" is exactly the limit: could still be the F piece
    assert splitter.feed(b"\n") == [(F, b"efgh")]


def test_trailing_cr_at_the_limit_is_held_back() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"abcd\r") == []  # 5 bytes, but the \r may start a \r\n
    assert splitter.feed(b"\n") == [(F, b"abcd")]


def test_eof_flushes_unfinished_line_as_partial() -> None:
    assert split([b"done\nno newline"], 100) == [(F, b"done"), (P, b"no newline")]
    assert split([b"abcdefghij"], 4) == [(P, b"abcd"), (P, b"efgh"), (P, b"ij")]
    assert split([b"x\r"], 100) == [(P, b"x\r")]  # a lone trailing \r stays content at EOF


def test_no_limit() -> None:
    assert split([b"x" * 100_000 + b"\n"], 0) == [(F, b"x" * 100_000)]
    assert split([b"y" * 10, b"z" * 10], -1) == [(P, b"y" * 10 + b"z" * 10)]


def test_binary_content_passes_through() -> None:
    data = bytes(range(256)).replace(b"\n", b"")
    assert split([data + b"\n"], 1000) == [(F, data)]


def test_nothing_at_all() -> None:
    assert split([], 10) == []
    assert split([b""], 10) == []


# --------------------------------------------------------- differential test against a model
def go_logger_model(data: bytes, max_len: int) -> list[Record]:
    """A model of containerd's CRI logger written from its documented algorithm.

    A bufio.Reader of size min(4096, max_len) is read with ReadSlice('\\n'); a full
    buffer ending in '\\r' gives that byte back; '\\n' and a '\\r' before it are dropped;
    pieces accumulate until they exceed max_len, when exactly max_len bytes go out as P;
    a line ending in '\\n' goes out as F, content left at EOF as P.
    """
    buf_size = 4096 if max_len <= 0 or max_len >= 4096 else max_len
    pos = 0
    out: list[Record] = []
    pieces: list[bytes] = []
    length = 0
    while True:
        window = data[pos : pos + buf_size]
        newline = window.find(b"\n")
        is_prefix = False
        at_eof = False
        if newline >= 0:
            line = window[: newline + 1]
            pos += newline + 1
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        elif len(window) == buf_size:
            line = window
            pos += buf_size
            if line.endswith(b"\r"):
                pos -= 1
                line = line[:-1]
            is_prefix = True
        else:
            line = window
            pos += len(window)
            at_eof = True
        if line:
            pieces.append(line)
            length += len(line)
        if at_eof and length == 0:
            break
        if max_len > 0 and length > max_len:
            joined = b"".join(pieces)
            out.append((P, joined[:max_len]))
            pieces = [joined[max_len:]]
            length = len(pieces[0])
        if is_prefix:
            continue
        out.append((P if at_eof else F, b"".join(pieces)))
        pieces, length = [], 0
        if at_eof:
            break
    return out


def random_chunks(rng: random.Random, data: bytes) -> list[bytes]:
    chunks = []
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 12)
        chunks.append(data[pos : pos + step])
        pos += step
    return chunks


@pytest.mark.parametrize("seed", range(40))
def test_matches_containerd_model_on_random_input(seed: int) -> None:
    rng = random.Random(seed)
    max_len = rng.choice([2, 3, 4, 5, 7, 8, 16])
    alphabet = [b"a", b"b", b"\r", b"\n", b"\r\n"]
    weights = [8, 8, 2, 2, 2]
    data = b"".join(rng.choices(alphabet, weights, k=rng.randint(0, 200)))
    assert split(random_chunks(rng, data), max_len) == go_logger_model(data, max_len), data


@pytest.mark.parametrize("seed", range(5))
def test_matches_containerd_model_with_limit_above_read_buffer(seed: int) -> None:
    rng = random.Random(1000 + seed)
    lines = [b"x" * rng.choice([0, 1, 4095, 4096, 4097, 5000, 5001, 10_001]) + rng.choice([b"\n", b"\r\n"])
             for _ in range(6)]
    data = b"".join(lines) + b"tail" * rng.randint(0, 2000)
    chunks = [data[i : i + 3000] for i in range(0, len(data), 3000)]
    assert split(chunks, 5000) == go_logger_model(data, 5000)
