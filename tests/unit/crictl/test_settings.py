"""Client config file handling and flag > file > default precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from crictl.errors import CliError
from crictl.main import main
from crictl.settings import FlagValues, parse_config_text, read_config, resolve


def test_precedence_flag_over_file_over_default() -> None:
    file_config = parse_config_text("runtime-endpoint: unix:///file.sock\ntimeout: 7\ndebug: true\n")
    settings = resolve(FlagValues(), file_config)
    assert (settings.runtime_endpoint, settings.runtime_endpoint_set) == ("unix:///file.sock", True)
    assert settings.timeout == 7.0 and settings.debug is True and settings.max_retries == 0
    settings = resolve(FlagValues(runtime_endpoint="unix:///flag.sock", timeout=0, debug=False), file_config)
    assert settings.runtime_endpoint == "unix:///flag.sock"
    assert settings.timeout == 2.0  # 0 or less means the default
    assert settings.debug is False
    defaults = resolve(FlagValues(), None)
    assert (defaults.runtime_endpoint_set, defaults.timeout, defaults.max_retries) == (False, 2.0, 3)


def test_bad_config_errors_in_upstream_words() -> None:
    with pytest.raises(CliError, match="Config option 'colour' is not valid"):
        parse_config_text("colour: blue\n", "/etc/crictl.yaml")
    with pytest.raises(CliError, match="parsing config option 'timeout'"):
        parse_config_text("timeout: soon\n")
    with pytest.raises(CliError, match=r"^yaml: line 2: "):
        parse_config_text("runtime-endpoint: [unclosed\n", "/x.yaml")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_config_set_preserves_comments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crictl.yaml"
    path.write_text('# my runtime\nruntime-endpoint: "unix:///old.sock"  # keep me\ntimeout: 2\n')
    code, _, err = run(capsys, "-c", str(path), "config", "--set", "runtime-endpoint=unix:///new.sock,debug=true")
    assert code == 0, err
    text = path.read_text()
    # yaml.v3's layout, as upstream writes it: one space before an inline comment.
    assert text.startswith('# my runtime\nruntime-endpoint: "unix:///new.sock" # keep me\ntimeout: 2\n')
    assert "debug: true\n" in text and "max-retries: 0\n" in text
    assert read_config(str(path)).debug is True
    code, out, _ = run(capsys, "-c", str(path), "config", "--get", "runtime-endpoint")
    assert out == "unix:///new.sock\n"
    code, out, _ = run(capsys, "-c", str(path), "config", "timeout", "9")
    assert read_config(str(path)).timeout == 9
    code, out, _ = run(capsys, "-c", str(path), "config", "--list")
    assert "\ntimeout                9\n" in out
    code, _, err = run(capsys, "-c", str(path), "config", "--get", "nope")
    assert code == 1 and "no configuration option named nope" in err


def test_config_creates_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub" / "crictl.yaml"
    code, _, err = run(capsys, "-c", str(path), "config", "--set", "timeout=5")
    assert code == 0, err
    assert path.read_text() == (
        'runtime-endpoint: ""\nimage-endpoint: ""\ntimeout: 5\ndebug: false\npull-image-on-create: false\n'
        "disable-pull-on-run: false\nmax-retries: 0\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "runtime-endpoint: unix:///run/x.sock\ntimeout: 10\ndebug: true\n",
        "# comment\nimage-endpoint: ''\npull-image-on-create: false\nmax-retries: 0\n",
        'runtime-endpoint: "unix:///a b"\ntimeout:\n',
        "timeout: 010\n", "timeout: 0x10\n", "debug: yes\n", "debug: True\n", "debug: ~\n",
        "runtime-endpoint: unix:///x # trailing comment\n", "---\ntimeout: 3\n", "  timeout: 3\n",
        "timeout: 1_000\n", "on: 1\n", "runtime-endpoint: 'it''s'\n", 'runtime-endpoint: "a\\tb"\n',
        "timeout: 1:30\n", "timeout:\t4\n", "runtime-endpoint: [a, b]\n", "timeout: ²\n",
    ],
)  # fmt: skip
def test_flat_config_reader_agrees_with_pyyaml(text: str) -> None:
    import yaml

    from crictl.settings import _flat_config

    fast = _flat_config(text)
    assert fast is None or fast == yaml.safe_load(text)
    if text.startswith(("runtime-endpoint: unix:///run", "# comment", 'runtime-endpoint: "unix')):
        assert fast is not None, "the common file must not need PyYAML"
