"""Attach frames and the relay command line."""

from __future__ import annotations

import pytest

from cri_runtime.containers.relay import protocol
from cri_runtime.containers.relay.layout import IoDir
from cri_runtime.containers.relay.main import UsageError, parse_args


def test_frames_round_trip_and_partial_frames_stay_buffered() -> None:
    data = protocol.encode_frame(protocol.FRAME_STDIN, b"hello") + protocol.encode_frame(protocol.FRAME_STDIN_EOF)
    buf = bytearray(data[:3])
    assert protocol.decode_frames(buf) == []
    buf += data[3:8]
    assert protocol.decode_frames(buf) == []
    buf += data[8:]
    assert protocol.decode_frames(buf) == [(protocol.FRAME_STDIN, b"hello"), (protocol.FRAME_STDIN_EOF, b"")]
    assert buf == bytearray()


def test_frame_header_is_type_then_big_endian_length() -> None:
    assert protocol.encode_frame(protocol.FRAME_STDERR, b"ab") == b"\x02\x00\x00\x00\x02ab"


def test_oversized_frame_is_rejected() -> None:
    buf = bytearray(protocol.HEADER.pack(protocol.FRAME_STDIN, protocol.MAX_CLIENT_FRAME + 1))
    with pytest.raises(ValueError, match="exceeds"):
        protocol.decode_frames(buf)


def test_parse_args_all_options() -> None:
    opts = parse_args(["--dir", "/d", "--log-path=/l/x.log", "--max-line-size", "8", "--tty", "--stdin",
                       "--stdin-once", "--resume", "--ready-fd", "5", "--foreground"])
    assert (opts.dir, opts.log_path, opts.max_line_size, opts.ready_fd) == ("/d", "/l/x.log", 8, 5)
    assert opts.tty and opts.stdin and opts.stdin_once and opts.resume and opts.foreground


def test_parse_args_defaults() -> None:
    opts = parse_args(["--dir", "/d", "--log-path", "/l"])
    assert opts.max_line_size == 16384 and opts.ready_fd == -1
    assert not (opts.tty or opts.stdin or opts.stdin_once or opts.resume or opts.foreground)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--dir", "/d"],
        ["--dir", "/d", "--log-path"],
        ["--dir", "/d", "--log-path", "/l", "--bogus"],
        ["--dir", "/d", "--log-path", "/l", "--tty=yes"],
        ["--dir", "/d", "--log-path", "/l", "--max-line-size", "big"],
        ["--dir", "/d", "--log-path", "/l", "stray"],
    ],
)
def test_parse_args_rejects(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args(argv)


def test_io_dir_paths_are_absolute() -> None:
    d = IoDir("relative/io")
    assert d.path.startswith("/") and d.path.endswith("/relative/io")
    assert d.stdout == d.path + "/stdout" and d.control_socket == d.path + "/ctl.sock"
