"""The limits that keep one HTTP/2 client from costing the server more than its share.

Each default follows the Go HTTP/2 server (golang.org/x/net/http2, what kubelet's
own servers and containerd's CRI plugin run on), grpc-go's transport, or the
other HTTP/2 servers' answers to the 2019 and 2023 flood CVEs; the comment on
each says which. Tests shrink the timeouts; production uses the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

# One stream's receive window: one maximal CRI request (kubelet allows 16 MiB) plus its
# 5-byte gRPC prefix and room to spare, so a unary request never waits for a WINDOW_UPDATE.
STREAM_WINDOW = 16 * 1024 * 1024 + 1024


@dataclass(frozen=True)
class Limits:
    # SETTINGS_MAX_CONCURRENT_STREAMS we advertise (unchanged; grpc-go's default is unlimited,
    # Go's net/http2 250). More streams are refused with REFUSED_STREAM.
    max_concurrent_streams: int = 1024
    # SETTINGS_MAX_HEADER_LIST_SIZE. grpcio's C core refuses metadata above 16 KiB (its
    # absolute_max_metadata_size), so no gRPC client can depend on more; 64 KiB leaves 4x room
    # and bounds HPACK work per block. Go checks the same limit before each string (hpack
    # SetMaxStringLength), as hpack.Decoder does here.
    max_header_list: int = 64 * 1024
    # Request bytes buffered per connection, across calls whose handler has not taken its
    # request yet: four maximal requests. A call that would go past it ends with
    # RESOURCE_EXHAUSTED, so the connection window can only be spent on data we hold.
    max_buffered_request: int = 4 * 16 * 1024 * 1024
    # Resets a client may cause before GOAWAY ENHANCE_YOUR_CALM: twice the concurrent
    # streams, as nginx allows new streams per read since CVE-2023-44487. Each call answered
    # normally earns one back, so a long-lived kubelet connection that cancels now and then
    # never runs out.
    reset_budget: int = 2 * 1024
    # Control frames (PING/SETTINGS ACKs, RST_STREAM) queued while the client is not reading:
    # Go's maxQueuedControlFrames.
    max_queued_control_frames: int = 10000
    # Consecutive empty DATA (without END_STREAM) or CONTINUATION (without END_HEADERS)
    # frames: Netty allows 2 (its fix for CVE-2019-9518, "empty frames flood"); no real client
    # sends more than one in a row, so 10 is generous and still bounds the work.
    max_empty_frames: int = 10
    # Connections served at once. Neither Go nor grpc-go cap them; kubelet holds one or two,
    # crictl one per command. At the cap, the longest-idle connection is sent away first.
    max_connections: int = 256
    # listen(2) backlog: Go passes the kernel's somaxconn, 4096 since Linux 5.4.
    backlog: int = 4096
    # Seconds from accept to a complete client preface: Go's prefaceTimeout.
    preface_timeout: float = 10.0
    # Seconds without a call before GOAWAY (grpc-go MaxConnectionIdle, unset there). kubelet
    # calls every second, so it never sees this; a client that left a connection open does.
    idle_timeout: float = 300.0
    # grpc-go's keepalive EnforcementPolicy defaults: PINGs closer than MinTime (5 minutes) apart,
    # or any PING within 2 hours while no call is open, are strikes; the third is GOAWAY
    # ENHANCE_YOUR_CALM "too_many_pings". Sending headers or data clears the strikes.
    ping_min_interval: float = 300.0
    ping_idle_interval: float = 2 * 3600.0
    max_ping_strikes: int = 2
    # Seconds a send may stall (the client opens no window, or does not read at all) before
    # the call is reset (zero window) or the connection closed (full socket). Go's
    # WriteByteTimeout has no default; 30 s is far beyond any live client's pause on a local
    # socket, and bounds what a call with no deadline can hold.
    send_stall_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_buffered_request < STREAM_WINDOW:
            raise ValueError("max_buffered_request must hold at least one maximal request")
