"""The scrubber that makes crictl's output of one test session comparable with a recorded one."""

from __future__ import annotations

from tests.golden.crictl.live import Scrubber


def test_a_pid_is_replaced_only_as_a_whole_number() -> None:
    scrub = Scrubber()
    scrub.add("27518", "<POD_PID>")
    assert scrub("pid 27518, size 275189") == "pid <POD_PID>, size 275189"


def test_an_embedded_token_is_replaced_inside_names_even_when_it_is_all_digits() -> None:
    # The session token is 6 hex characters, all of them digits in about one session in 17.
    for token in ("3fa9c1", "104728"):
        scrub = Scrubber()
        scrub.add(token, "<SESSION>", embedded=True)
        scrubbed = scrub(f'"crb{token}6": {{}}, "/crirt-{token}-crictl"')
        assert scrubbed == '"crb<SESSION>6": {}, "/crirt-<SESSION>-crictl"'


def test_longer_values_go_first() -> None:
    scrub = Scrubber()
    scrub.add("abcdef0123456789", "<CTR>", truncated=True)
    assert scrub("abcdef0123456789 abcdef0123456") == "<CTR> <CTR-13>"
