"""Writes pii_eval.jsonl: 500 labelled strings (English and Chinese) with planted personal data and look-alikes.

Run once; the file is committed and `benchmarks/pii_targets.py` reads it. Seeded, so a rerun gives the same file.
Every value is synthetic. Checksummed values are built to be valid (Luhn cards with real issuer prefixes, IBANs
with the country's BBAN layout and mod-97 digits, GB 11643 resident IDs with real birth dates); phone numbers are
random numbers kept when libphonenumber calls them valid, so the phone figures measure finding numbers in text
and their formats, not the numbering plan itself. Names: English names in sentences (with and without titles),
Chinese names in context (收件人, 我叫, 王女士) and bare Chinese names with no context, which the detectors are
not expected to find. Negatives: order and tracking numbers, dates, times, amounts, versions, postcodes,
Luhn-failing card-like numbers, IDs with a wrong check digit, IBANs with one digit changed.

    python benchmarks/data/make_pii_eval.py
"""

from __future__ import annotations

import json
import random
import re
import string
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn
from stdnum.cn import ric

OUT = Path(__file__).with_name("pii_eval.jsonl")
rng = random.Random(20261204)

EN_FIRST = (
    "James Mary Robert Patricia Michael Jennifer David Linda William Elizabeth Olivia Noah Emma Liam Sophia Lucas "
)
EN_FIRST += "Amelia Ethan Chloe Daniel Grace Samuel Hannah Oliver Isabella Henry Charlotte Jack Emily Thomas"
EN_LAST = "Smith Johnson Williams Brown Jones Garcia Miller Davis Wilson Anderson Taylor Thomas Moore Martin Jackson "
EN_LAST += "Thompson White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Green Baker Adams Nelson"
ZH_SURNAME = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕")
ZH_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红建国文斌浩宇晨欣怡梓涵子轩")
DOMAINS = [
    "example.com",
    "mail.example.org",
    "163.com",
    "qq.com",
    "outlook.com",
    "company.cn",
    "uni.edu.cn",
    "corp.co.uk",
]


def en_name() -> str:
    return f"{rng.choice(EN_FIRST.split())} {rng.choice(EN_LAST.split())}"


def zh_name() -> str:
    return rng.choice(ZH_SURNAME) + "".join(rng.choice(ZH_GIVEN) for _ in range(rng.choice([1, 2])))


def email() -> str:
    user = rng.choice(
        [
            f"{rng.choice(EN_FIRST.split()).lower()}.{rng.choice(EN_LAST.split()).lower()}",
            f"{rng.choice(EN_FIRST.split()).lower()}{rng.randint(1, 99)}",
            f"user_{rng.randint(1000, 9999)}",
            f"{rng.choice(EN_LAST.split()).lower()}+orders",
            "".join(rng.choice(string.ascii_lowercase) for _ in range(6)),
        ]
    )
    return f"{user}@{rng.choice(DOMAINS)}"


def luhn_number(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def card() -> str:
    brand = rng.choice(["visa", "mc", "mc2", "amex", "unionpay", "unionpay19", "jcb", "discover"])
    prefix, length = {
        "visa": ("4", 16),
        "mc": (str(rng.randint(51, 55)), 16),
        "mc2": (str(rng.randint(2221, 2720)), 16),
        "amex": (rng.choice(["34", "37"]), 15),
        "unionpay": ("62" + str(rng.randint(10, 99)), 16),
        "unionpay19": ("62" + str(rng.randint(10, 99)), 19),
        "jcb": ("35" + str(rng.randint(28, 89)), 16),
        "discover": ("6011", 16),
    }[brand]
    digits = luhn_number(prefix, length)
    style = rng.choice(["plain", "space", "dash"])
    if style == "plain":
        return digits
    sep = " " if style == "space" else "-"
    groups = (
        [digits[:4], digits[4:10], digits[10:]] if length == 15 else [digits[i : i + 4] for i in range(0, length, 4)]
    )
    return sep.join(groups)


IBAN_LAYOUTS = {  # n digits, a capital letters
    "DE": "8n10n",
    "GB": "4a6n8n",
    "FR": "5n5n11n2n",
    "NL": "4a10n",
    "ES": "4n4n2n10n",
    "IT": "1a5n5n12n",
    "CH": "5n12n",
    "BE": "3n7n2n",
    "AT": "5n11n",
    "PL": "8n16n",
}


def _bban(layout: str) -> str:
    out = ""
    for count, kind in re.findall(r"(\d+)([an])", layout):
        pool = string.ascii_uppercase if kind == "a" else string.digits
        out += "".join(rng.choice(pool) for _ in range(int(count)))
    return out


def iban_value() -> str:
    while True:
        country = rng.choice(list(IBAN_LAYOUTS))
        bban = _bban(IBAN_LAYOUTS[country])
        number = country + iban.calc_check_digits(country + "00" + bban) + bban
        if iban.is_valid(number):
            break
    if rng.random() < 0.5:
        return " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number


def cn_id() -> str:
    region = rng.choice(["110105", "310104", "440305", "330106", "510107", "420106", "320102", "370202", "610113"])
    birth = f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body = region + birth + f"{rng.randint(0, 999):03d}"
    value = body + ric.calc_check_digit(body + "0")  # stdnum drops the last character: a placeholder check digit
    return value.lower() if value.endswith("X") and rng.random() < 0.3 else value


def phone(kind: str) -> str:
    while True:
        if kind == "cn":
            national = rng.choice(["13", "15", "18", "17", "19"]) + "".join(rng.choice(string.digits) for _ in range(9))
            parsed = phonenumbers.parse(national, "CN")
        elif kind == "us":
            national = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            parsed = phonenumbers.parse(national, "US")
        else:
            region = rng.choice(["GB", "DE", "FR", "JP", "AU", "SG"])
            example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
            digits = str(example.national_number)
            national = digits[:-4] + "".join(rng.choice(string.digits) for _ in range(4))
            parsed = phonenumbers.parse("+" + str(example.country_code) + national, None)
        if phonenumbers.is_valid_number(parsed):
            break
    n = str(parsed.national_number)
    if kind == "cn":
        return rng.choice(
            [n, f"{n[:3]} {n[3:7]} {n[7:]}", f"{n[:3]}-{n[3:7]}-{n[7:]}", f"+86 {n[:3]} {n[3:7]} {n[7:]}", f"+86{n}"]
        )
    if kind == "us":
        return rng.choice([f"({n[:3]}) {n[3:6]}-{n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}", f"+1 {n[:3]} {n[3:6]} {n[6:]}"])
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def ip() -> str:
    choice = rng.random()
    if choice < 0.5:
        first = rng.choice([10, 172, 192, 203, 8, 61, 114, 220])
        return f"{first}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if choice < 0.7:
        return ":".join(groups)
    if choice < 0.9:
        return f"2001:db8:{groups[2]}::{groups[6]}:{groups[7]}"
    return f"fe80::{groups[5]}:{groups[6]}:{groups[7]}"


EN = {
    "email": ["Please send the invoice to {}.", "You can reach me at {} any time.", "Contact: {}", "Reply-to {} asap"],
    "phone": [
        "Call me back on {} after 5pm.",
        "My number is {}.",
        "tel: {}",
        "Please text {} when the parcel arrives.",
    ],
    "card": ["My card {} was charged twice.", "Card number: {}", "Refund to the card ending in {} please."],
    "iban": ["Please wire the deposit to IBAN {}.", "Account: {} (BIC not needed)", "Pay into {} by Friday."],
    "cn_id": ["ID number {} for the visa form.", "Passenger ID: {}"],
    "ip": ["Login attempt from {} was blocked.", "The server at {} is down.", "Whitelist {} on the firewall."],
    "person": [
        "{} asked about the delayed refund.",
        "Please forward this to {}.",
        "Dr. {} approved the request.",
        "My name is {} and I lost my card.",
        "Ms. {} will sign the contract.",
    ],
}
ZH = {
    "email": ["请把发票发到{}，谢谢。", "我的邮箱是{}", "联系邮箱：{}"],
    "phone": ["我的手机号是{}，请回电。", "联系电话：{}", "请拨打{}联系客服", "收到请回复{}"],
    "card": ["我的银行卡{}被扣了两次款。", "卡号：{}", "请退款到这张卡{}上"],
    "iban": ["请汇款到账户{}。", "境外账户IBAN：{}"],
    "cn_id": ["身份证号{}，请核实。", "我的身份证是{}", "证件号码：{}"],
    "ip": ["登录IP为{}，已被拦截。", "服务器{}无法访问"],
    "person": ["收件人：{}，电话见备注。", "我叫{}，想查询订单。", "联系人：{}", "持卡人姓名：{}"],
}
ZH_TITLED = ["请{}女士明天来办理。", "{}先生的快递到了。", "已通知{}经理处理。"]
ZH_BARE = ["{}明天会来拿快递。", "这个问题{}已经处理好了。"]
VALUES = {"email": email, "card": card, "iban": iban_value, "cn_id": cn_id, "ip": ip}

NEGATIVES = [
    lambda: (
        f"Order ORD-{rng.randint(2020, 2026)}-{rng.randint(0, 999999):06d} "
        f"shipped on 2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}."
    ),
    lambda: f"订单号：{rng.randint(10**15, 10**16 - 1)}，金额¥{rng.randint(1, 99)},{rng.randint(100, 999)}.00",
    lambda: (
        f"Invoice #{rng.randint(10**7, 10**8 - 1)} "
        f"total ${rng.randint(1, 9)},{rng.randint(100, 999)}.{rng.randint(10, 99)}"
    ),
    lambda: f"快递单号SF{rng.randint(10**11, 10**12 - 1)}，预计{rng.randint(1, 12)}月{rng.randint(1, 28)}日送达",
    lambda: (
        f"Meeting at {rng.randint(8, 18)}:{rng.randint(10, 59)}:00 on {rng.randint(1, 28)}/{rng.randint(1, 12)}/2025."
    ),
    lambda: f"Upgrade to version {rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)} before Monday.",
    lambda: f"Ticket {rng.randint(1000000, 9999999)} was closed; ratio {rng.randint(1, 9)}:{rng.randint(1, 9)}",
    lambda: (
        f"The transfer of €{rng.randint(100, 9999)},{rng.randint(10, 99)} "
        f"is pending (ref {rng.randint(10**9, 10**10 - 1)})."
    ),
    lambda: f"邮编{rng.randint(100000, 899999)}，房间{rng.randint(100, 3000)}号",
    lambda: (
        f"Batch {rng.randint(2020, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{rng.randint(1, 99):02d} "
        f"passed QA at 98.{rng.randint(0, 99)}%."
    ),
    lambda: f"SKU {rng.randint(10**12, 10**13 - 1)} is out of stock.",
    lambda: (
        f"第{rng.randint(1, 50)}季度营收增长{rng.randint(1, 40)}.{rng.randint(0, 9)}%，达到{rng.randint(100, 999)}万元"
    ),
    lambda: f"Postcode SW1A {rng.randint(1, 9)}AA, flat {rng.randint(1, 99)}",
    lambda: f"Version string 999.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)} is not an address",
    lambda: "It costs 1,299 dollars and ships in 3-5 days.",
    lambda: f"请在{rng.randint(2024, 2026)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日前完成付款",
    lambda: f"The reading was {rng.randint(100, 999)}.{rng.randint(100, 999)} units at station {rng.randint(10, 99)}.",
]


def bad_checksum() -> str:
    kind = rng.choice(["card", "iban", "cn_id"])
    if kind == "card":
        value = luhn_number("4", 16)
        value = value[:-1] + str((int(value[-1]) + rng.randint(1, 9)) % 10)
        return f"Test card {value} (invalid) was declined."
    if kind == "iban":
        value = iban_value().replace(" ", "")
        i = rng.randint(4, len(value) - 1)
        while not value[i].isdigit():
            i = rng.randint(4, len(value) - 1)
        value = value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1 :]
        return f"IBAN {value} failed validation."
    value = cn_id().upper()
    wrong = rng.choice([c for c in "0123456789X" if c != value[-1]])
    return f"证件号{value[:-1]}{wrong}校验失败"


def record(template: str, values: list[tuple[str, str]], lang: str) -> dict:
    """Fill `template`'s {} slots in order and record where each value landed."""
    text, spans = "", []
    pieces = template.split("{}")
    for piece, (kind, value) in zip(pieces, values, strict=False):
        text += piece
        spans.append({"kind": kind, "start": len(text), "end": len(text) + len(value), "value": value})
        text += value
    text += pieces[-1]
    return {"text": text, "lang": lang, "spans": spans}


def planted(kind: str, lang: str) -> dict:
    if kind == "person":
        return record(
            rng.choice(EN["person"] if lang == "en" else ZH["person"]),
            [("person", en_name() if lang == "en" else zh_name())],
            lang,
        )
    if kind == "phone":
        region = rng.choice(["cn", "cn", "us", "intl"]) if lang == "zh" else rng.choice(["us", "us", "cn", "intl"])
        value = phone(region)
    else:
        value = VALUES[kind]()
    return record(rng.choice((EN if lang == "en" else ZH)[kind]), [(kind, value)], lang)


def multi(lang: str) -> dict:
    kinds = rng.sample(["email", "phone", "card", "iban", "cn_id", "ip"], 2)
    values = [(k, VALUES[k]() if k != "phone" else phone("cn" if lang == "zh" else "us")) for k in kinds]
    if lang == "en":
        template = rng.choice(["Customer {} wrote: details {} and {}.", "From {}: please update {} and {}"])
        return record(template, [("person", en_name()), *values], lang)
    template = rng.choice(["客户信息：{}；{}。", "请核对{}和{}是否一致"])
    return record(template, values, lang)


def main() -> None:
    rows: list[dict] = []
    for kind in ["email", "phone", "card", "iban", "cn_id", "ip", "person"]:
        for _ in range(25):
            rows.append(planted(kind, "en"))
            rows.append(planted(kind, "zh"))
    for _ in range(12):
        name = rng.choice(ZH_SURNAME) + rng.choice(ZH_GIVEN)
        rows.append(record(rng.choice(ZH_TITLED), [("person", name)], "zh"))
    for _ in range(8):
        rows.append(record(rng.choice(ZH_BARE), [("person", zh_name())], "zh"))
    for _ in range(40):
        rows.append(multi(rng.choice(["en", "zh"])))
    while len(rows) < 500 - 30:
        text = rng.choice(NEGATIVES)()
        rows.append({"text": text, "lang": "zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en", "spans": []})
    for _ in range(30):
        text = bad_checksum()
        rows.append({"text": text, "lang": "zh" if "证件" in text else "en", "spans": []})
    rng.shuffle(rows)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} strings, {sum(len(r['spans']) for r in rows)} planted values, to {OUT}")


if __name__ == "__main__":
    main()
