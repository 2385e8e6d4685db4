"""Pattern detectors for personal data: a cheap regular expression finds candidates, a validator decides.

Checksummed kinds are validated with python-stdnum (Luhn for cards, ISO 7064 mod 97 for IBANs, GB 11643's
MOD 11-2 for Chinese resident IDs, plus the birth date and province code inside); phone numbers by Google's
libphonenumber port (`phonenumbers.PhoneNumberMatcher`, leniency VALID: the number must exist in the region's
numbering plan); IP addresses by `ipaddress`. A candidate that fails its validator is not personal data and is
left alone, which is what keeps order numbers, dates and amounts out of the results.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric


@dataclass(frozen=True)
class Span:
    """One finding: `text[start:end]` is personal data of `kind`; `value` is its normalised form (the same card
    written with or without spaces has one value, so it gets one pseudonym)."""

    kind: str
    start: int
    end: int
    value: str


_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"

# A local part is RFC 5322's atext (o'connor, jane+tag) and, in internationalised addresses (RFC 6531), letters of
# any script but CJK, Hangul and full-width forms: Chinese text writes addresses right after a word (邮箱zhang.wei@)
_INTL_LETTER = r"[^\W\d_\x00-\x7F\u2E80-\u9FFF\uAC00-\uD7AF\uF900-\uFAFF\uFF00-\uFFEF]|[\u0300-\u036F]"
_ATEXT = r"[A-Za-z0-9!#$%&*+^_{|}~-]|" + _INTL_LETTER
# an apostrophe or a dot may not start it and dots come singly (a dot-atom), so quotes and an ellipsis before the
# address stay text; at most 64 characters (RFC 5321), which also bounds the work from each start
_EMAIL = re.compile(
    rf"(?<!{_ATEXT})(?:{_ATEXT})(?:{_ATEXT}|['`]|\.(?![.@])){{0,63}}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
# after '+': a phone number; after a digit and a decimal point: the fraction of a number (-0.5408455846858077)
_CARD = re.compile(r"(?<![0-9A-Za-z+])(?<!\d[.,])\d(?:[ -]?\d){12,18}" + _NOT_ALNUM_AFTER)
# region, birth date, sequence and check: 18 characters, or as forms print them, 6 8 4 with one kind of space or dash
_CN_ID = re.compile(_NOT_ALNUM_BEFORE + r"\d{6}([ -]?)(?:19|20)\d{2}[01]\d[0-3]\d\1\d{3}[\dXx]" + _NOT_ALNUM_AFTER)
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,32}")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d]|\.\d)")
_IPV6 = re.compile(
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![0-9A-Fa-f:])"
)
# A bare run of digits after one of these words is a reference number, not a phone number
_REFERENCE_WORDS = re.compile(
    r"(?<![A-Za-z])(?:order|invoice|inv|batch|lot|case|ref|reference|tracking|ticket|account|acct|sku"
    r"|批次|订单|单号|编号|流水号|账号|工号)\s*(?:no\.?|number|id|#|号)?\s*[:：#.]?\s*$",
    re.IGNORECASE,
)

# One decimal point and a long fraction is a measurement (0.049054613825311656), a short one an amount (310000.0,
# 13800138000.50), not a phone written with dots
_DECIMAL = re.compile(r"\d+[.,](?:\d{1,2}|\d{6,})")
# A number glued to letters or digits by a hyphen, slash or dot is part of a code (INV-2024-000123, v1.2.3-456)
_CODE_BEFORE = re.compile(r"[A-Za-z0-9][-/_.]?$")
_CODE_AFTER = re.compile(r"^[-/_.]?[A-Za-z0-9]")

# Card lengths per issuer prefix (ISO/IEC 7812 IINs); a Luhn-valid number outside them is some other number
_CARD_BRANDS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("34", (15,)),
    ("37", (15,)),  # American Express
    ("4", (13, 16, 19)),  # Visa
    ("5", (16,)),  # Mastercard 51-55 (50, 56-59 are Maestro, 12-19 digits: below)
    ("2", (16,)),  # Mastercard 2221-2720
    ("6", (16, 17, 18, 19)),  # Discover, UnionPay, Maestro
    ("35", (16, 17, 18, 19)),  # JCB
    ("36", (14, 16)),
    ("30", (14, 16)),
    ("38", (14, 16)),  # Diners Club
)


def _card_ok(digits: str) -> bool:
    if not luhn.is_valid(digits):
        return False
    if digits.startswith(("50", "56", "57", "58")):  # Maestro
        return 12 <= len(digits) <= 19
    if digits[0] == "2" and not 2221 <= int(digits[:4]) <= 2720:
        return False
    if digits[0] == "5" and not 51 <= int(digits[:2]) <= 55:
        return False
    lengths = [n for prefix, n in _CARD_BRANDS if digits.startswith(prefix)]
    return bool(lengths) and len(digits) in lengths[-1]


def _card_layout(raw: str) -> bool:
    """As cards are printed: no separator, or one kind of separator between groups of four (the last group may
    be shorter), or 4-6-5 / 4-6-4 (American Express, Diners Club)."""
    if len(set(re.findall(r"[ -]", raw))) > 1:
        return False
    groups = [len(g) for g in re.split(r"[ -]", raw)]
    return len(groups) == 1 or groups in ([4, 6, 5], [4, 6, 4]) or (set(groups[:-1]) == {4} and groups[-1] <= 4)


def cards(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        if _card_layout(m.group()) and _card_ok(digits):
            yield Span("card", m.start(), m.end(), digits)


# GB/T 2260 province codes (the first two digits)
_PROVINCES = frozenset(str(code) for code in (*range(11, 16), 21, 22, 23, *range(31, 38), *range(41, 47)))
_PROVINCES |= frozenset(str(code) for code in (50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82))


def _cn_id_ok(value: str) -> bool:
    """GB 11643's ISO 7064 MOD 11-2 check digit, a real birth date and a province code. Not `ric.is_valid`: it also
    wants the county code to have existed in the birth year, but a county code is the one in force when the card
    was issued (from 1984), so it rejects the real IDs of everyone born before their district was created."""
    if value[:2] not in _PROVINCES or ric.calc_check_digit(value) != value[-1]:
        return False
    try:
        ric.get_birth_date(value)
    except ValueError:  # stdnum's InvalidComponent is a ValueError
        return False
    return True


def cn_ids(text: str) -> Iterator[Span]:
    for m in _CN_ID.finditer(text):
        value = re.sub(r"[ -]", "", m.group()).upper()
        if _cn_id_ok(value):
            yield Span("cn_id", m.start(), m.end(), value)


def ibans(text: str) -> Iterator[Span]:
    """The longest prefix of each candidate that is a valid IBAN (the pattern may run into following words)."""
    for m in _IBAN.finditer(text):
        raw = m.group()
        for end in range(len(raw), 14, -1):
            if raw[end - 1] == " ":
                continue
            compact = raw[:end].replace(" ", "").upper()
            if iban.is_valid(compact):
                yield Span("iban", m.start(), m.start() + end, compact)
                break


def emails(text: str) -> Iterator[Span]:
    for m in _EMAIL.finditer(text):
        yield Span("email", m.start(), m.end(), m.group().lower())


# Four dotted numbers right after "version", "ver." or "v" are a version (v1.2.3.4), not an IPv4 address
_VERSION_BEFORE = re.compile(r"(?<![A-Za-z])(?:version|ver\.?|v)\s*:?\s*$", re.IGNORECASE)


def ips(text: str) -> Iterator[Span]:
    for pattern in (_IPV4, _IPV6):
        for m in pattern.finditer(text):
            raw = m.group()
            if sum(c.isalnum() for c in raw) < 3:  # '::' or 'a:b:' is punctuation, not an address
                continue
            if pattern is _IPV4 and _VERSION_BEFORE.search(text[max(0, m.start() - 10) : m.start()]):
                continue
            try:
                address = ipaddress.ip_address(raw)
            except ValueError:
                continue
            yield Span("ip", m.start(), m.end(), address.compressed)


def _dated(raw: str) -> bool:
    """A first group of eight digits that reads as a date (20221120-67) makes a batch or document number."""
    head = re.match(r"(\d{8})(?!\d)", raw)
    if head is None:
        return False
    year, month, day = int(head.group(1)[:4]), int(head.group(1)[4:6]), int(head.group(1)[6:])
    return 1900 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31


def _phone_value(raw: str, region: str, regions: tuple[str, ...]) -> str:
    """E.164 where the number names its country (+NN, an international prefix) or is valid in exactly one of
    `regions`; otherwise its digits as written. A national number valid in two regions ('020 7946 0958': London
    and Guangzhou) normalised in either would share a pseudonym with a different person's number."""
    e164 = phonenumbers.PhoneNumberFormat.E164
    number = phonenumbers.parse(raw, region, keep_raw_input=True)
    if number.country_code_source != phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY:
        return phonenumbers.format_number(number, e164)
    valid = set()
    for other in regions:
        try:
            candidate = phonenumbers.parse(raw, other)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number_for_region(candidate, other):
            valid.add(phonenumbers.format_number(candidate, e164))
    return valid.pop() if len(valid) == 1 else re.sub(r"\D", "", raw)


def phones(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Numbers valid in one of `regions` (national format) or anywhere (written with +country code)."""
    if sum(c.isdigit() for c in text) < 7:
        return
    seen: set[tuple[int, int]] = set()
    for region in regions:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            where = (match.start, match.end)
            before = text[max(0, match.start - 40) : match.start]
            if where in seen or _CODE_BEFORE.search(before) or _CODE_AFTER.search(text[match.end : match.end + 2]):
                continue
            if match.raw_string[0].isdigit() and (_REFERENCE_WORDS.search(before) or _dated(match.raw_string)):
                continue
            if _DECIMAL.fullmatch(match.raw_string):
                continue
            seen.add(where)
            yield Span("phone", match.start, match.end, _phone_value(match.raw_string, region, regions))


PatternDetector = Callable[[str], Iterator[Span]]
PATTERNS: dict[str, PatternDetector] = {
    "cn_id": cn_ids,
    "card": cards,
    "iban": ibans,
    "email": emails,
    "ip": ips,
}
