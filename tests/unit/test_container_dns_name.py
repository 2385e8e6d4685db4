"""containerize names the Deployment and Service after the bundle: a Service name must be a DNS-1035 label."""

from __future__ import annotations

import re

import pytest

from modelyard.export.container import _dns_name

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


@pytest.mark.parametrize(
    ("bundle", "name"),
    [
        ("2024-intents", "model-2024-intents"),
        ("Support_Intents", "support-intents"),
        ("café-model", "caf--model"),
        ("---", "model"),
        ("9" * 80, "model-" + "9" * 57),
    ],
)
def test_the_kubernetes_name_is_a_dns_1035_label(bundle, name):
    assert _dns_name(bundle) == name
    assert DNS_1035.fullmatch(name) and len(name) <= 63
