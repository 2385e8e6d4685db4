"""Find personal data in text and JSON-like values and replace it with typed placeholders or stable pseudonyms.

`<EMAIL>` says what was there; with a salt, `<EMAIL:3f2a9c1b>` also says which one (the first 8 hex digits of
HMAC-SHA256 of the normalised value), so counts, duplicates and joins still work on redacted data while the
value itself cannot be recovered without the salt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from modelyard.errors import ConfigError
from modelyard.privacy.detectors import PATTERNS, Span, phones

if TYPE_CHECKING:
    from modelyard.config import RedactionConfig

# When spans overlap, the better-validated kind wins: a checksum beats a numbering plan beats a language model
# (an IBAN before a card: a German IBAN's digits often hold a Luhn-valid run, the reverse never happens)
PRIORITY = ("cn_id", "iban", "card", "email", "ip", "phone", "person")
log = logging.getLogger(__name__)
HIDDEN_SALT = "<set>"  # a literal salt as model cards, reports and MLflow's copies of a bundle show it
_ENV_SALT = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_LINE_BREAKS = re.compile(r"\r?\n")
_BINARY_MIN_CHARS = 512  # longer base64 payloads are images or audio, not text to scan
_FULL_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: 0x20}
# what `Redactor.placeholder` writes: never redacted again, and a logged text holding one was altered by redaction
PLACEHOLDER = re.compile(rf"<(?:{'|'.join(k.upper() for k in PRIORITY)})(?::[0-9a-f]{{8}})?>")


@dataclass(frozen=True)
class Redactor:
    """Which kinds to look for, and how to replace them (placeholders, or pseudonyms when `salt` is set)."""

    kinds: tuple[str, ...] = PRIORITY
    salt: bytes | None = None
    phone_regions: tuple[str, ...] = ("CN", "US", "GB")

    def find_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """The non-overlapping spans of personal data in each text, in text order. The patterns read the text
        with full-width forms folded to ASCII (one character for one, so offsets hold): a card or ID number typed
        with an East Asian keyboard is the same number. A placeholder already in the text is left as it is."""
        found: list[list[Span]] = [[] for _ in texts]
        for i, text in enumerate(texts):
            folded = fold_width(text)
            for kind, detect in PATTERNS.items():
                if kind in self.kinds:
                    found[i].extend(detect(folded))
            if "phone" in self.kinds:
                found[i].extend(phones(folded, self.phone_regions))
        if "person" in self.kinds:
            from modelyard.privacy.names import person_spans  # loads spaCy: only when names are wanted

            for spans, names in zip(found, person_spans(texts), strict=True):
                spans.extend(names)
        return [_resolve(_outside_placeholders(text, spans)) for text, spans in zip(texts, found, strict=True)]

    def find(self, text: str) -> list[Span]:
        return self.find_many([text])[0]

    def placeholder(self, span: Span) -> str:
        label = span.kind.upper()
        if self.salt is None:
            return f"<{label}>"
        digest = hmac.new(self.salt, span.value.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"<{label}:{digest[:8]}>"

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        found = self.find_many(texts)
        return [_replace(text, spans, self.placeholder) for text, spans in zip(texts, found, strict=True)]

    def redact(self, text: str) -> str:
        return self.redact_many([text])[0]

    def redact_values(self, values: Sequence[Any], numbers: bool = True) -> list[Any]:
        """JSON-like values (strings, numbers, lists, dicts) with every string redacted, and every integer long
        enough to be a phone, card or ID number when `numbers` (inputs; not reports, where they are counts);
        keys stay. All strings go through the detectors in one batch."""
        strings: list[str] = []
        for value in values:
            _walk(value, strings.append, numbers)
        redacted = iter(self.redact_many(strings))
        return [_rebuild(value, redacted, numbers) for value in values]

    def redact_value(self, value: Any, numbers: bool = True) -> Any:
        return self.redact_values([value], numbers)[0]


def scanned_text(value: Any, numbers: bool = True) -> str | None:
    """The text of a value worth scanning: a string (not a base64 payload), or with `numbers` an integer (or a
    float holding one) long enough to be a phone, card or ID number."""
    if isinstance(value, str):
        return None if is_base64_payload(value) else value
    if numbers and isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1_000_000:
        return str(value)
    if numbers and isinstance(value, float) and value.is_integer() and 1e6 <= abs(value) < 1e20:
        return str(int(value))  # 13800138000.0: a number sent as a JSON float is the same number
    return None


def is_base64_payload(text: str) -> bool:
    """Whether `text` is a long base64 payload (an image or a recording): one word of the base64 alphabet, at most
    wrapped in lines as MIME does, that decodes strictly. Text with spaces between its words is never one, however
    long."""
    if len(text) < _BINARY_MIN_CHARS:
        return False
    payload = _LINE_BREAKS.sub("", text.strip())
    if _BASE64.fullmatch(payload) is None:
        return False
    try:
        base64.b64decode(payload, validate=True)
    except binascii.Error:
        return False
    return True


def _walk(value: Any, visit: Callable[[str], None], numbers: bool) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _walk(item, visit, numbers)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, visit, numbers)
    elif (text := scanned_text(value, numbers)) is not None:
        visit(text)


def _rebuild(value: Any, redacted: Any, numbers: bool) -> Any:
    """`value` with each scanned leaf replaced by the next redacted string, visiting leaves in `_walk`'s order."""
    if isinstance(value, dict):
        return {key: _rebuild(item, redacted, numbers) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rebuild(item, redacted, numbers) for item in value]
    text = scanned_text(value, numbers)
    if text is None:
        return value
    new = next(redacted)
    return value if isinstance(value, int | float) and new == text else new


def fold_width(text: str) -> str:
    """`text` with full-width ASCII forms (U+FF01-U+FF5E) and the ideographic space as their ASCII characters."""
    return text if text.isascii() else text.translate(_FULL_WIDTH)


def _outside_placeholders(text: str, spans: list[Span]) -> list[Span]:
    """The spans that do not touch a placeholder this module wrote: redacting twice changes nothing (a
    pseudonym's eight hex digits can read as a phone number)."""
    if "<" not in text:
        return spans
    taken = [m.span() for m in PLACEHOLDER.finditer(text)]
    return [s for s in spans if all(s.end <= start or s.start >= end for start, end in taken)]


def _resolve(spans: list[Span]) -> list[Span]:
    """Keep the best span where several overlap: higher priority kind first, then the longer one."""
    ranked = sorted(spans, key=lambda s: (PRIORITY.index(s.kind), -(s.end - s.start), s.start))
    kept: list[Span] = []
    for span in ranked:
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def _replace(text: str, spans: list[Span], placeholder: Callable[[Span], str]) -> str:
    parts, last = [], 0
    for span in spans:
        parts += [text[last : span.start], placeholder(span)]
        last = span.end
    parts.append(text[last:])
    return "".join(parts)


def is_env_salt(salt: str) -> bool:
    """Whether the configured salt is a `${NAME}` reference (no secret in it) rather than the secret itself."""
    return _ENV_SALT.match(salt) is not None


def hide_salt(config_text: str) -> str:
    """A dumped config with a literal `privacy.hash_salt` shown as '<set>' (model cards, reports); `${NAME}`
    references stay, they hold no secret. The YAML is read, not searched: a long salt is folded over lines."""
    config = yaml.safe_load(config_text) if config_text.strip() else None
    privacy = config.get("privacy") if isinstance(config, dict) else None
    salt = privacy.get("hash_salt") if isinstance(privacy, dict) else None
    if salt is None or (isinstance(salt, str) and is_env_salt(salt)):
        return config_text
    privacy["hash_salt"] = HIDDEN_SALT
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def resolve_salt(salt: str | None) -> bytes | None:
    """The configured salt; `${NAME}` reads the environment variable NAME, so the secret stays out of the config
    file, the bundle and the tracking store."""
    if salt is None:
        return None
    if salt == HIDDEN_SALT:  # a bundle copy from MLflow, which never holds the secret: placeholders, never a known key
        log.warning(
            "privacy.hash_salt is hidden in this copy of the bundle (it came from MLflow): findings become plain "
            "<KIND> placeholders, not pseudonyms; serve the original bundle, or train with hash_salt: ${NAME}"
        )
        return None
    match = _ENV_SALT.match(salt)
    if match is None:
        return salt.encode("utf-8")
    value = os.environ.get(match.group(1))
    if not value:
        raise ConfigError(
            f"privacy.hash_salt: the environment variable {match.group(1)} is not set or empty",
            f"export {match.group(1)}=<a long random secret>, or remove privacy.hash_salt for plain placeholders",
        )
    return value.encode("utf-8")


def from_config(config: RedactionConfig) -> Redactor:
    kinds = tuple(k for k in PRIORITY if k in config.detectors)
    return Redactor(kinds, resolve_salt(config.hash_salt), tuple(config.phone_regions))


def redactor_for(config: RedactionConfig | None, target: str) -> Redactor | None:
    """The redactor for one place data leaves through (`log`, `report`, `monitoring`, `tracking`), or None when
    the config turns redaction off there. A config without a privacy section (older bundles) gets the defaults."""
    if config is None:
        from modelyard.config import RedactionConfig

        config = RedactionConfig()
    if target not in config.redact or not config.detectors:
        return None
    return from_config(config)
