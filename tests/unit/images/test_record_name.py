"""ImageRecord.record_name: what a pod's or container's containerd record names its image by."""

from __future__ import annotations

from typing import Any, cast

import pytest

from cri_runtime.images.manifest import Descriptor
from cri_runtime.images.store import ImageRecord, TargetInfo

ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "2" * 64


def record(names: list[str]) -> ImageRecord:
    info = TargetInfo(image_id=ID, manifest_digest=DIGEST, config=cast(Any, None), size=0, chain_ids=(), layers=())
    return ImageRecord(id=ID, names=names, target=Descriptor("application/vnd.oci.image.manifest.v1+json",
                                                             DIGEST, 1), info=info)


@pytest.mark.parametrize(("names", "expected"), [
    pytest.param([ID, "registry.k8s.io/pause:3.6", f"registry.k8s.io/pause@{DIGEST}"],
                 "registry.k8s.io/pause:3.6", id="tag-whatever-the-order"),
    pytest.param([f"registry.k8s.io/pause@{DIGEST}", "registry.k8s.io/pause:3.6", ID],
                 "registry.k8s.io/pause:3.6", id="tag-after-digest"),
    pytest.param(["docker.io/library/b:2", ID, "docker.io/library/a:1"], "docker.io/library/a:1",
                 id="first-of-several-tags"),
    pytest.param([ID, f"docker.io/library/busybox@{DIGEST}"], f"docker.io/library/busybox@{DIGEST}",
                 id="digest-only"),
    pytest.param([ID], ID, id="id-only"),
    pytest.param([], ID, id="no-names"),
])
def test_record_name_prefers_tags_then_digests_then_the_id(names: list[str], expected: str) -> None:
    assert record(names).record_name == expected
