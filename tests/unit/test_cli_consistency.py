"""The command line behaves alike across commands: usage errors exit 2 naming the option, -q hides reports but
never warnings, and each failure is one message, not a traceback."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.errors import UserError

runner = CliRunner()


@pytest.mark.parametrize("url", ["localhost:18292", "ftp://localhost:18292", "http://localhost:99999", "http://"])
def test_federate_join_without_a_server_url_is_a_usage_error_naming_the_option(tmp_path, url):
    result = runner.invoke(app, ["federate", str(tmp_path / "absent.yaml"), "--join", url, "--site", "a"])
    assert result.exit_code == 2, result.output
    assert "--join" in result.output and "http(s)://HOST:PORT" in result.output


def test_a_federation_server_that_drops_the_connection_is_one_message_naming_it():
    from modelyard.federated import transport

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)

    http = httpx.Client(base_url="http://fed.example:8765", transport=httpx.MockTransport(drop))
    with pytest.raises(UserError, match=r"federation server http://fed.example:8765.*RemoteProtocolError"):
        transport._call(http, "GET", transport.PREFIX)
