"""An API key that is set but empty is a startup error, never a server silently open to everyone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import ConfigError
from modelyard.serving.settings import ServeSettings


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_modelyard_api_key_is_refused_with_the_variable_named(monkeypatch, value):
    monkeypatch.setenv("MODELYARD_API_KEY", value)
    with pytest.raises(ValidationError, match="MODELYARD_API_KEY is set but empty"):
        ServeSettings()


def test_serve_stops_before_starting_when_the_key_is_empty(monkeypatch):
    monkeypatch.setenv("MODELYARD_API_KEY", "")
    result = CliRunner().invoke(app, ["serve", "bundle"])
    assert isinstance(result.exception, ConfigError)
    assert "MODELYARD_API_KEY is set but empty" in str(result.exception)


def test_an_unset_key_leaves_the_server_open_and_a_real_key_is_kept(monkeypatch):
    monkeypatch.delenv("MODELYARD_API_KEY", raising=False)
    assert ServeSettings().api_key is None
    monkeypatch.setenv("MODELYARD_API_KEY", "s3cret")
    assert ServeSettings().api_key == "s3cret"


def test_a_misspelt_serve_setting_is_refused_with_the_closest_name(monkeypatch):
    import modelyard
    from modelyard.errors import ConfigError
    from modelyard.serving.settings import ServeSettings

    with pytest.raises(ConfigError, match="serve: unknown setting 'prot' \\(did you mean 'port'\\?\\)"):
        modelyard.serve("no-such-bundle", prot=18143)
    monkeypatch.setenv("MODELYARD_PORT", "9001")  # the environment is still read, and other MODELYARD_* ignored
    monkeypatch.setenv("MODELYARD_HOME", "/tmp/elsewhere")
    assert ServeSettings().port == 9001 and ServeSettings(port=5).port == 5
