"""The image store follows containerd's /images/* events by record name."""

from __future__ import annotations

from cri_protos.containerd.events import image_pb2
from cri_runtime.containerd.events import image_record_name


def test_every_image_event_yields_its_record_name() -> None:
    for event in (image_pb2.ImageCreate(name="docker.io/library/a:1", labels={"k": "v"}),
                  image_pb2.ImageUpdate(name="docker.io/library/a:1", labels={"k": "v"}),
                  image_pb2.ImageDelete(name="docker.io/library/a:1")):
        assert image_record_name(event.SerializeToString()) == "docker.io/library/a:1"


def test_an_undecodable_event_yields_no_name_so_everything_is_reread() -> None:
    assert image_record_name(b"\xff\xff\xff") == ""
