"""Reference normalisation: the spelling that names records and repo tags."""

from __future__ import annotations

import pytest

from cri_runtime import errors
from cri_runtime.images import reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("user/app", "docker.io/user/app:latest"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
        ("127.0.0.1:5000/test/busybox", "127.0.0.1:5000/test/busybox:latest"),
        ("[::1]:5000/x", "[::1]:5000/x:latest"),
        ("quay.io/a_b/c-d__e.f:Tag_1.0-x", "quay.io/a_b/c-d__e.f:Tag_1.0-x"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        # tag + digest: the digest wins, as containerd normalises it
        (f"busybox:1.36@{D}", f"docker.io/library/busybox@{D}"),
        (f"registry:5000/x:t@{D}", f"registry:5000/x@{D}"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert reference.normalize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Busybox",
        "docker.io/Library/busybox",
        "busybox:",
        "busybox:-tag",
        "busybox:" + "t" * 129,
        "busybox@sha256:abc",
        "busybox@sha256:" + "A" * 64,
        "busybox@md5:" + "a" * 32,
        "busybox@",
        "a" * 64,
        " busybox",
        "bus box",
        "registry:5000/",
        "/busybox",
        "busybox//x",
        "busybox/-x",
        "x" * 256,
    ],
)
def test_malformed_is_invalid_argument(text: str) -> None:
    with pytest.raises(errors.InvalidArgument) as exc:
        reference.parse(text)
    assert repr(text) in str(exc.value)


def test_parts_and_familiar() -> None:
    ref = reference.parse("busybox:1.36")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("docker.io", "library/busybox", "1.36", "")
    assert ref.name == "docker.io/library/busybox"
    assert ref.object == "1.36"
    assert ref.familiar() == "busybox:1.36"
    dref = ref.with_digest(D)
    assert str(dref) == f"docker.io/library/busybox@{D}"
    assert dref.object == D
    assert reference.parse("quay.io/x/y").familiar() == "quay.io/x/y:latest"


def test_try_parse_returns_none_for_ids() -> None:
    assert reference.try_parse("a" * 64) is None
    # An image ID parses as a docker.io repo:tag, but never normalises to itself,
    # which is how records named by ID are told apart from tags.
    image_id = "sha256:" + "a" * 64
    parsed = reference.try_parse(image_id)
    assert parsed is not None and str(parsed) != image_id


def test_validate_digest() -> None:
    assert reference.validate_digest(D) == D
    with pytest.raises(errors.InvalidArgument):
        reference.validate_digest("sha256:" + "a" * 63)
    with pytest.raises(errors.InvalidArgument):
        reference.validate_digest("nodigest")
