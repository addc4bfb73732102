from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument, NotFound
from cri_runtime.oci.rootfs import read_rootfs_file, secure_join
from cri_runtime.oci.user import ImageAccounts, cri_user_string, parse_user_string, resolve_process_user


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("root", (0, 0)),
        ("www", (33, 33)),
        ("33", (33, 33)),  # uid found: its primary gid
        ("4242", (4242, 0)),  # uid not in passwd: gid 0
        ("www:dev", (33, 2000)),
        ("www:7", (33, 7)),
        ("1000:audio", (1000, 29)),
        ("55:66", (55, 66)),
    ],
)
def test_parse_user_string(rootfs: Path, user: str, expected: tuple[int, int]) -> None:
    assert parse_user_string(user, ImageAccounts.from_rootfs(str(rootfs))) == expected


@pytest.mark.parametrize(("user", "error", "match"), [
    ("nobody-here", NotFound, "nobody-here"),
    ("www:nogroup", NotFound, "nogroup"),
    ("a:b:c", InvalidArgument, "a:b:c"),
    (":5", InvalidArgument, ":5"),
    ("www:", InvalidArgument, "empty group"),
])
def test_parse_user_string_errors(rootfs: Path, user: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_user_string(user, ImageAccounts.from_rootfs(str(rootfs)))


def test_image_without_passwd(tmp_path: Path) -> None:
    accounts = ImageAccounts.from_rootfs(str(tmp_path))
    assert parse_user_string("7", accounts) == (7, 0)
    with pytest.raises(NotFound):
        parse_user_string("www", accounts)


@pytest.mark.parametrize(
    ("username", "uid", "gid", "expected"),
    [
        ("", None, None, ""),
        ("", 5, None, "5"),
        ("", 5, 6, "5:6"),
        ("www", 5, None, "www"),
        ("www", None, 6, "www:6"),
        ("", 0, None, "0"),
    ],
)
def test_cri_user_string(username: str, uid: int | None, gid: int | None, expected: str) -> None:
    assert cri_user_string(username, uid, gid) == expected


def test_run_as_group_without_user_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="run_as_group"):
        cri_user_string("", None, 5)


def test_resolve_merge_adds_member_groups(rootfs: Path) -> None:
    accounts = ImageAccounts.from_rootfs(str(rootfs))
    # alice is member of www(33), dev(2000); her own group alice(1000) is her primary gid.
    user = resolve_process_user(accounts, run_as_username="alice", supplemental_groups=[5])
    assert (user.uid, user.gid, user.additional_gids) == (1000, 1000, [5, 33, 1000, 2000])
    # by uid: the name is looked up for membership
    by_uid = resolve_process_user(accounts, run_as_user=1000)
    assert by_uid.additional_gids == [33, 1000, 2000]
    # from the image's User (group part ignored for membership)
    from_image = resolve_process_user(accounts, image_user="alice:29")
    assert (from_image.gid, from_image.additional_gids) == (29, [29, 33, 2000])


def test_resolve_strict_ignores_etc_group(rootfs: Path) -> None:
    accounts = ImageAccounts.from_rootfs(str(rootfs))
    user = resolve_process_user(
        accounts, run_as_username="alice", supplemental_groups=[5, 5], policy=api_pb2.Strict
    )
    assert user.additional_gids == [5, 1000]


def test_resolve_cri_overrides_image_user(rootfs: Path) -> None:
    accounts = ImageAccounts.from_rootfs(str(rootfs))
    user = resolve_process_user(accounts, image_user="www", run_as_user=1000, run_as_group=29)
    assert (user.uid, user.gid) == (1000, 29)
    default = resolve_process_user(accounts)
    assert (default.uid, default.gid, default.additional_gids) == (0, 0, [0])


def test_resolve_unknown_policy(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match="supplemental_groups_policy"):
        resolve_process_user(ImageAccounts.from_rootfs(str(rootfs)), policy=7)


def test_symlinked_passwd_cannot_escape_rootfs(tmp_path: Path) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text("evil:x:666:666::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text("good:x:7:7::/:/bin/sh\n")
    # Absolute and relative links both try to climb out of the rootfs.
    os.symlink(f"/../../{tmp_path.name}/host-etc/passwd", root / "etc" / "passwd")
    assert read_rootfs_file(str(root), "/etc/passwd") is None
    os.remove(root / "etc" / "passwd")
    os.symlink("../../../../host-etc/passwd", root / "etc" / "passwd")
    assert read_rootfs_file(str(root), "/etc/passwd") is None
    # A link that stays inside is followed, relative to the rootfs.
    os.remove(root / "etc" / "passwd")
    os.symlink("/real/passwd", root / "etc" / "passwd")
    accounts = ImageAccounts.from_rootfs(str(root))
    assert parse_user_string("good", accounts) == (7, 7)
    with pytest.raises(NotFound):
        parse_user_string("evil", accounts)


def test_secure_join_handles_dotdot_and_symlinked_dirs(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "a" / "b").mkdir(parents=True)
    os.symlink("/a", root / "link")
    assert secure_join(str(root), "/../../etc/passwd") == str(root / "etc" / "passwd")
    assert secure_join(str(root), "/link/b/../x") == str(root / "a" / "x")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    with pytest.raises(OSError, match="too many symlinks"):
        secure_join(str(root), "/loop1")
