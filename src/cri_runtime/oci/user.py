"""Resolve the container process's uid, gid and supplementary groups.

Follows the image-spec ``User`` forms (``name``, ``uid``, ``name:group``,
``uid:gid``, mixed) against the image's own /etc/passwd and /etc/group, as
containerd does: a numeric uid missing from passwd runs with gid 0, a name
that is missing is an error, and the additional groups always include the
primary gid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument, NotFound
from .rootfs import read_rootfs_file

_MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str = ""


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessUser:
    """The ``process.user`` of a spec."""

    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)

    def to_spec(self) -> dict[str, object]:
        return {"uid": self.uid, "gid": self.gid, "additionalGids": list(self.additional_gids)}


def _int_field(text: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value <= _MAX_ID else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """Entries of a passwd file; malformed lines are skipped (as libc does)."""
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 4:
            continue
        uid, gid = _int_field(parts[2]), _int_field(parts[3])
        if uid is None or gid is None:
            continue
        entries.append(PasswdEntry(parts[0], uid, gid, parts[5] if len(parts) > 5 else ""))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """Entries of a group file; malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) < 3:
            continue
        gid = _int_field(parts[2])
        if gid is None:
            continue
        members = tuple(m for m in parts[3].split(",") if m) if len(parts) > 3 else ()
        entries.append(GroupEntry(parts[0], gid, members))
    return entries


class ImageAccounts:
    """The users and groups of one image rootfs, read once."""

    def __init__(self, passwd: list[PasswdEntry] | None, groups: list[GroupEntry] | None) -> None:
        self.passwd = passwd
        self.groups = groups

    @classmethod
    def from_rootfs(cls, rootfs: str | None) -> ImageAccounts:
        """Read /etc/passwd and /etc/group of ``rootfs`` (None: an image without them)."""
        if rootfs is None:
            return cls(None, None)
        passwd_text = read_rootfs_file(rootfs, "/etc/passwd")
        group_text = read_rootfs_file(rootfs, "/etc/group")
        return cls(
            parse_passwd(passwd_text) if passwd_text is not None else None,
            parse_group(group_text) if group_text is not None else None,
        )

    def user_by_name(self, name: str) -> PasswdEntry:
        for entry in self.passwd or ():
            if entry.name == name:
                return entry
        raise NotFound(f"user {name!r} not found in the image's /etc/passwd")

    def user_by_uid(self, uid: int) -> PasswdEntry | None:
        for entry in self.passwd or ():
            if entry.uid == uid:
                return entry
        return None

    def gid_by_name(self, name: str) -> int:
        for entry in self.groups or ():
            if entry.name == name:
                return entry.gid
        raise NotFound(f"group {name!r} not found in the image's /etc/group")

    def member_gids(self, username: str) -> list[int]:
        """Groups that list ``username`` as a member (not its own same-named group)."""
        return [g.gid for g in self.groups or () if g.name != username and username in g.members]


def parse_user_string(user: str, accounts: ImageAccounts) -> tuple[int, int]:
    """uid and gid for an image-spec ``User`` value (non-empty)."""
    parts = user.split(":")
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid user {user!r}: want user, uid, user:group or uid:gid")
    user_part = parts[0]
    uid = _int_field(user_part) if user_part.isdigit() else None
    if len(parts) == 1:
        if uid is None:
            entry = accounts.user_by_name(user_part)
            return entry.uid, entry.gid
        found = accounts.user_by_uid(uid)
        return (found.uid, found.gid) if found else (uid, 0)
    group_part = parts[1]
    if not group_part:
        raise InvalidArgument(f"invalid user {user!r}: empty group")
    resolved_uid = uid if uid is not None else accounts.user_by_name(user_part).uid
    gid = _int_field(group_part) if group_part.isdigit() else None
    resolved_gid = gid if gid is not None else accounts.gid_by_name(group_part)
    return resolved_uid, resolved_gid


def cri_user_string(run_as_username: str, run_as_user: int | None, run_as_group: int | None) -> str:
    """The user string a CRI security context asks for ("" when it asks for nothing).

    Username beats uid; a group without either is rejected.
    """
    user = run_as_username or (str(run_as_user) if run_as_user is not None else "")
    if not user:
        if run_as_group is not None:
            raise InvalidArgument(f"run_as_group {run_as_group} is set without run_as_user or run_as_username")
        return ""
    return f"{user}:{run_as_group}" if run_as_group is not None else user


def resolve_process_user(
    accounts: ImageAccounts,
    *,
    image_user: str = "",
    run_as_username: str = "",
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    supplemental_groups: list[int] | None = None,
    policy: int = api_pb2.Merge,
) -> ProcessUser:
    """The process user for a container (or sandbox: pass no username).

    Merge adds the groups /etc/group gives the user to ``supplemental_groups``;
    Strict uses only the primary gid and ``supplemental_groups``.
    """
    requested = cri_user_string(run_as_username, run_as_user, run_as_group)
    user = requested or image_user
    uid, gid = parse_user_string(user, accounts) if user else (0, 0)
    gids = {gid, *(supplemental_groups or ())}
    if policy == api_pb2.Merge:
        if run_as_username:
            member_of = run_as_username
        elif run_as_user is not None:
            member_of = str(run_as_user)
        elif image_user:
            member_of = image_user.split(":", 1)[0]
        else:
            member_of = "0"
        name = member_of
        if member_of.isdigit():
            entry = accounts.user_by_uid(int(member_of))
            name = entry.name if entry else ""
        if name:
            gids.update(accounts.member_gids(name))
    elif policy != api_pb2.Strict:
        raise InvalidArgument(f"supplemental_groups_policy: unknown value {policy}")
    for g in gids:
        if not 0 <= g <= _MAX_ID:
            raise InvalidArgument(f"supplemental group {g} out of range")
    return ProcessUser(uid, gid, sorted(gids))
