"""User errors print as one plain message whatever characters they quote: a file name or label holding Rich
markup (`[/x]`, `[red]`) is shown as written, never parsed (it once crashed the error handler)."""

from __future__ import annotations

import sys

import pytest


def test_an_error_quoting_rich_markup_prints_it_literally_and_exits_1(tmp_path, monkeypatch, capsys):
    from modelyard import cli

    odd = tmp_path / "run[/x] [red]v2[/red]"
    monkeypatch.setattr(sys, "argv", ["modelyard", "evaluate", str(odd)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err
    assert done.value.code == 1, err
    assert f"not a bundle: {odd} is not a folder" in err and "Traceback" not in err


def test_a_warning_quoting_rich_markup_prints_it_literally(capsys):
    from modelyard import cli

    cli._warn("label '[/x]' has [bold]one[/bold] row")
    assert "label '[/x]' has [bold]one[/bold] row" in capsys.readouterr().err


def test_explain_refuses_a_heat_map_output_that_is_the_photo(tmp_path, monkeypatch, capsys):
    from modelyard import cli

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG not really")
    monkeypatch.setattr(sys, "argv", ["modelyard", "explain", str(tmp_path), "--image", str(photo), "-o", str(photo)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 1 and "is the --image file" in capsys.readouterr().err
    assert photo.read_bytes() == b"\x89PNG not really"


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--text", "exchange rate", "--text", "card arrived"], "--text given 2 times"),
        (["--text", "exchange rate", "-o", "map.png"], "--output writes an image's heat-map"),
    ],
)
def test_explain_refuses_what_it_would_otherwise_ignore(tmp_path, monkeypatch, capsys, extra, said):
    from modelyard import cli

    monkeypatch.setattr(sys, "argv", ["modelyard", "explain", str(tmp_path), *extra])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "map.png").exists()


def test_explain_refuses_a_heat_map_output_not_named_png(tmp_path, monkeypatch, capsys):
    """`-o out.txt` wrote a PNG under a .txt name."""
    from modelyard import cli

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG not really")
    out = tmp_path / "out.txt"
    monkeypatch.setattr(sys, "argv", ["modelyard", "explain", str(tmp_path), "--image", str(photo), "-o", str(out)])
    with pytest.raises(SystemExit) as done:
        cli.main()
    err = capsys.readouterr().err
    assert done.value.code == 1 and f"--output {out}: the heat-map is a PNG image" in err and "out.png" in err
    assert not out.exists()
