"""Docker-style image references: parsing, normalisation and rendering.

Kubelet, crictl and operators write references the way `docker pull` accepts
them (``busybox``, ``nginx:1.25``, ``registry:5000/x/y@sha256:…``). Every
component must agree on one normalised spelling, because that spelling is
the name of the containerd image record and what CRI reports as a repo tag or
repo digest. The rules are those of the distribution reference grammar:

- no registry host → ``docker.io``; a single path component on docker.io gets
  ``library/``; ``index.docker.io`` is ``docker.io``;
- the first component is a host only if it has a ``.`` or ``:`` or is
  ``localhost``;
- no tag and no digest → ``:latest``; a tag *and* a digest → the digest wins
  (the tag is dropped, as containerd does);
- repository names are lowercase; a bare 64-hex string is an image ID, never a
  repository name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from cri_runtime import errors

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"

PATH_RE = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
DOMAIN_RE = re.compile(rf"^{_DOMAIN}$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A normalised reference; `tag` and `digest` are never both set."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """Repository name with its registry host: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        if self.tag:
            return f"{self.name}:{self.tag}"
        return self.name

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.domain, self.path, "", digest)

    def familiar(self) -> str:
        """The short form docker prints (``busybox:latest``)."""
        name = self.name
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        if self.digest:
            return f"{name}@{self.digest}"
        return f"{name}:{self.tag}" if self.tag else name


def validate_digest(value: str, what: str = "digest") -> str:
    """Return `value` if it is a well-formed digest of a known algorithm."""
    if not DIGEST_RE.match(value):
        raise errors.InvalidArgument(f"invalid {what} {value!r}: not of the form algorithm:hex")
    algorithm, _, hex_part = value.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise errors.InvalidArgument(f"invalid {what} {value!r}: unsupported algorithm {algorithm!r}")
    if len(hex_part) != expected or not re.fullmatch(r"[a-f0-9]+", hex_part):
        raise errors.InvalidArgument(
            f"invalid {what} {value!r}: {algorithm} needs {expected} lowercase hex characters")
    return value


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `text`; raise InvalidArgument naming it when malformed."""
    def bad(why: str) -> errors.InvalidArgument:
        return errors.InvalidArgument(f"invalid image reference {text!r}: {why}")

    if not text:
        raise bad("empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise bad("contains whitespace")
    if IDENTIFIER_RE.match(text):
        raise bad("a 64-character hex string is an image ID, not a repository name")
    remainder, at, digest = text.partition("@")
    if at:
        if not digest:
            raise bad("empty digest after '@'")
        try:
            validate_digest(digest)
        except errors.InvalidArgument as exc:
            raise bad(exc.message) from None
    name, tag = remainder, ""
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1:]
        if not TAG_RE.match(tag):
            raise bad(f"invalid tag {tag!r}")
    if not name:
        raise bad("empty repository name")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise bad(f"repository name longer than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = _split_domain(name)
    if not DOMAIN_RE.match(domain):
        raise bad(f"invalid registry host {domain!r}")
    if path.lower() != path:
        raise bad("repository name must be lowercase")
    if not PATH_RE.match(path):
        raise bad(f"invalid repository path {path!r}")
    if digest:
        return Reference(domain, path, "", digest)
    return Reference(domain, path, tag or (DEFAULT_TAG if default_tag else ""), "")


def normalize(text: str) -> str:
    """The normalised string form of `text` (``busybox`` → ``docker.io/library/busybox:latest``)."""
    return str(parse(text))


@functools.lru_cache(maxsize=4096)
def try_parse(text: str) -> Reference | None:
    """`parse`, or None when `text` is not a reference (e.g. an image ID).

    Remembered (a `Reference` is immutable): the same few image names are parsed
    again on every container created and image listed, ~5 us each.
    """
    try:
        return parse(text)
    except errors.InvalidArgument:
        return None
