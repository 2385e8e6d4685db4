"""PII detectors: checksummed kinds are found only when their checksum holds; look-alikes are left alone."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.config import RedactionConfig
from modelyard.errors import ConfigError
from modelyard.privacy import Redactor, from_config, redactor_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
PATTERNS_ONLY = Redactor(kinds=("cn_id", "card", "iban", "email", "ip", "phone"))


def kinds(text: str, redactor: Redactor = PATTERNS_ONLY) -> list[tuple[str, str]]:
    return [(s.kind, text[s.start : s.end]) for s in redactor.find(text)]


@pytest.mark.parametrize(
    "card",
    ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500005555555559", "378282246310005", "6212345678901265"],
)
def test_luhn_valid_card_numbers_are_found_in_any_common_layout(card):
    assert kinds(f"card: {card}, thanks") == [("card", card)]


@pytest.mark.parametrize("number", ["4111 1111 1111 1112", "1234 5678 9012 3456", "4111-1111 1111-1111"])
def test_card_like_numbers_that_fail_luhn_or_mix_separators_are_not_cards(number):
    assert kinds(f"ref {number}") == []


@pytest.mark.parametrize(
    "value",
    [
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "FR14 2004 1010 0505 0001 3M02 606",
        "NL91ABNA0417164300",
    ],
)
def test_ibans_with_a_valid_mod97_checksum_are_found(value):
    assert kinds(f"IBAN {value} please") == [("iban", value)]


def test_an_iban_with_one_wrong_digit_is_not_found():
    assert kinds("IBAN DE89 3704 0044 0532 0130 01") == []


def test_a_chinese_resident_id_needs_its_gb11643_check_digit_and_a_real_birth_date():
    assert kinds("身份证号11010519491231002X，请核实") == [("cn_id", "11010519491231002X")]
    assert kinds("身份证号110105194912310021") == []  # wrong check digit
    assert kinds("身份证号110105194913310024") == []  # month 13


@pytest.mark.parametrize("written", ["440306 19900101 009X", "440306-19900101-009x"])
def test_a_chinese_resident_id_in_6_8_4_groups_is_found_at_its_offsets_and_named_as_the_18_character_form(written):
    text = f"身份证 {written} 请核实"
    (span,) = PATTERNS_ONLY.find(text)
    assert (span.kind, text[span.start : span.end], span.value) == ("cn_id", written, "44030619900101009X")
    salted = Redactor(kinds=("cn_id",), salt=b"pepper")
    assert salted.redact(text) == f"身份证 {salted.redact('44030619900101009X')} 请核实"


@pytest.mark.parametrize("number", ["440306 19900101 0095", "440306 19900101-009X", "4403061 9900101 009X"])
def test_grouped_id_look_alikes_with_a_wrong_check_digit_or_mixed_groups_are_not_ids(number):
    assert kinds(f"身份证 {number}") == []


@pytest.mark.parametrize(
    "phone",
    ["13800138000", "+86 138 0013 8000", "138-0013-8000", "+1 415-555-2671", "(650) 253-0000", "+44 20 7946 0958"],
)
def test_phone_numbers_valid_in_their_numbering_plan_are_found(phone):
    assert kinds(f"请拨打{phone}联系") == [("phone", phone)]


def phone_value(text: str, regions: tuple[str, ...] = ("CN", "US", "GB")) -> str:
    from modelyard.privacy.detectors import phones

    return next(s.value for s in phones(f"call {text} now", regions))


def test_a_national_number_valid_in_one_region_joins_its_international_form():
    assert phone_value("138-0013-8000") == phone_value("+86 138 0013 8000") == "+8613800138000"
    assert phone_value("(650) 253-0000") == phone_value("+1 650 253 0000") == "+16502530000"
    assert phone_value("(415) 555-2671", ("US",)) == "+14155552671"


def test_a_national_number_valid_in_several_regions_is_kept_as_written_not_joined_to_another_country():
    assert phone_value("020 7946 0958") == "02079460958"  # London and Guangzhou
    assert phone_value("+86 20 7946 0958") == phone_value("0086 20 7946 0958") == "+862079460958"
    assert phone_value("(415) 555-2671") == "4155552671"  # also a Chinese fixed line


@pytest.mark.parametrize("label", ["Phone number:", "Tel. no.", "mobile", "手机号：", "电话"])
def test_a_phone_number_after_its_own_label_is_found(label):
    assert kinds(f"{label} 13800138000") == [("phone", "13800138000")]


@pytest.mark.parametrize(
    "address",
    ["anne-marie.o'connor@corp.ie", "josé.garcía@example.es", "renée@ex.fr", "Jane_O'Neil+tag@x.com", "Иван@mail.ru"],
)
def test_an_email_with_an_apostrophe_or_non_ascii_letters_is_found_whole(address):
    assert kinds(f"write to {address} today") == [("email", address)]


@pytest.mark.parametrize("text", ["(anne@x.com)", "'anne@x.com'", '"anne@x.com"', "“anne@x.com”", "see...anne@x.com"])
def test_brackets_quotes_and_dots_around_an_email_stay_text(text):
    assert kinds(text) == [("email", "anne@x.com")]


@pytest.mark.parametrize("text", ["version 1.2.3.4 released", "Version: 10.0.1.2", "v1.2.3.4", "ver. 2.0.0.1"])
def test_four_dotted_numbers_after_version_are_a_version_not_an_ip(text):
    assert kinds(text) == []
    assert kinds(f"server 1.2.3.4 {text}") == [("ip", "1.2.3.4")]


def test_emails_and_ip_addresses_are_found_next_to_chinese_text():
    text = "邮箱zhang.wei@example.com.cn，服务器192.168.10.24，网关2001:db8:85a3::8a2e:370:7334。"
    assert kinds(text) == [
        ("email", "zhang.wei@example.com.cn"),
        ("ip", "192.168.10.24"),
        ("ip", "2001:db8:85a3::8a2e:370:7334"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Order 20240315001 shipped on 2024-03-15 12:30:45 for $1,234.56",
        "订单号4155550132已发货，金额¥12,800.00",
        "version 2.13.1 on 999.12.1.4, ratio 3:2:1",
        "invoice INV-2024-000123, qty 1200000",
        "-0.5408455846858077",  # a float's fraction: Luhn-valid with a Mastercard prefix
        "0.049054613825311656",  # read as a German national number (0 49 ...)
        "amount 1.4267738509897323 EUR",
        "310000.0",  # an amount with a short fraction
        "balance 13800138000.50",
    ],
)
def test_order_numbers_dates_amounts_and_versions_are_not_personal_data(text):
    assert kinds(text) == []


def test_names_come_from_the_english_ner_model_and_from_chinese_context():
    names = Redactor(kinds=("person",))
    assert kinds("Please ask Maria Garcia to call back.", names) == [("person", "Maria Garcia")]
    assert kinds("收件人：王小明，地址见备注", names) == [("person", "王小明")]
    assert kinds("请李女士明天来办理", names) == [("person", "李")]


def test_the_name_model_runs_only_where_two_capitalised_words_other_than_i_meet(monkeypatch):
    from modelyard.privacy import names

    seen: list[str] = []
    pipeline = names._nlp()

    class Recording:
        def pipe(self, texts, batch_size):
            seen.extend(texts)
            return pipeline.pipe(texts, batch_size=batch_size)

    monkeypatch.setattr(names, "_nlp", Recording)
    texts = ["Can I link my new card?", "Hey I'm stuck, Did I pay?", "Hey I'm Jane Doe", "I Maria Garcia agree"]
    found = names.person_spans(texts)
    assert seen == texts[2:]
    assert [[span.value for span in spans] for spans in found] == [[], [], ["Jane Doe"], ["Maria Garcia"]]


def test_placeholders_say_the_kind_and_salted_pseudonyms_are_stable_per_value():
    text = "mail a.b@example.org, card 4111 1111 1111 1111 or 4111111111111111"
    assert PATTERNS_ONLY.redact(text) == "mail <EMAIL>, card <CARD> or <CARD>"
    salted = Redactor(kinds=PATTERNS_ONLY.kinds, salt=b"pepper").redact(text)
    first, second = salted.split(" or ")[0][-15:], salted.split(" or ")[1]
    assert first == second and first.startswith("<CARD:") and len(first) == len("<CARD:12345678>")
    other_salt = Redactor(kinds=PATTERNS_ONLY.kinds, salt=b"salt").redact(text)
    assert other_salt != salted


def test_json_values_are_redacted_in_strings_and_long_integers_only():
    value = {"inputs": ["write to a@b.io"], "phone": 13800138000, "fax": 13800138000.0, "age": 42, "ok": True}
    assert PATTERNS_ONLY.redact_value(value) == {
        "inputs": ["write to <EMAIL>"],
        "phone": "<PHONE>",
        "fax": "<PHONE>",
        "age": 42,
        "ok": True,
    }


def test_a_long_text_without_punctuation_is_redacted_not_taken_for_base64():
    short = "hi my card is 4111 1111 1111 1111 and phone 13800138000 please refund"
    long = short + " thanks" * 80  # 629 letters, digits and spaces
    expected = PATTERNS_ONLY.redact(long)
    assert "<CARD>" in expected and "<PHONE>" in expected
    assert PATTERNS_ONLY.redact_value({"inputs": [short, long]}) == {"inputs": [PATTERNS_ONLY.redact(short), expected]}


@pytest.mark.parametrize(
    "file",
    [
        EXAMPLES / "raccoon_mini" / "images" / "raccoon-106.jpg",
        EXAMPLES / "spoken_digits" / "recordings" / "6_george_3.wav",
    ],
)
def test_base64_images_and_recordings_are_passed_over_whole_or_wrapped_in_mime_lines(file):
    data = file.read_bytes()
    for encoded in (base64.b64encode(data).decode(), base64.encodebytes(data).decode()):
        assert PATTERNS_ONLY.redact_value({"inputs": [encoded]}) == {"inputs": [encoded]}


def test_redaction_is_on_everywhere_by_default_and_can_be_turned_off_per_place():
    assert all(redactor_for(None, place) is not None for place in ("log", "report", "monitoring", "tracking"))
    only_log = RedactionConfig(redact=["log"])
    assert redactor_for(only_log, "log") is not None and redactor_for(only_log, "report") is None


def test_a_salt_can_come_from_the_environment_and_a_missing_one_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PII_SALT_FOR_TEST", "s3cret")
    assert from_config(RedactionConfig(hash_salt="${PII_SALT_FOR_TEST}")).salt == b"s3cret"
    with pytest.raises(ConfigError, match="PII_SALT_MISSING is not set"):
        from_config(RedactionConfig(hash_salt="${PII_SALT_MISSING}"))


def test_an_altered_or_missing_name_model_is_refused_with_the_package_named(tmp_path):
    from modelyard.errors import ModelNotFoundError
    from modelyard.privacy.names import NER_PACKAGE, _verify

    with pytest.raises(ModelNotFoundError, match=NER_PACKAGE):
        _verify(tmp_path)


def test_a_literal_salt_is_hidden_in_dumped_configs_but_an_environment_reference_is_kept():
    from modelyard.privacy.redact import hide_salt

    dumped = "privacy:\n  redact:\n  - log\n  hash_salt: pepper-123\n"
    assert yaml.safe_load(hide_salt(dumped)) == {"privacy": {"redact": ["log"], "hash_salt": "<set>"}}
    for kept in ("privacy:\n  hash_salt: ${PII_SALT}\n", "privacy:\n  hash_salt: null\n"):
        assert hide_salt(kept) == kept
    long_salt = " ".join(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"] * 3)
    for salt in (long_salt, "${PII_SALT}s3cr3tTail"):  # folded over lines; a reference with a secret after it
        shown = hide_salt(yaml.safe_dump({"privacy": {"hash_salt": salt}, "name": "x"}, width=40))
        assert "hotel" not in shown and "s3cr3t" not in shown
        assert yaml.safe_load(shown)["privacy"]["hash_salt"] == "<set>"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("卡号６２１２３４５６７８９０１２６５", "card"),
        ("身份证１１０１０５１９４９１２３１００２Ｘ", "cn_id"),
        ("邮箱ａ．ｂ＠ｅｘａｍｐｌｅ．ｏｒｇ", "email"),
        ("手机１３８００１３８０００", "phone"),
        ("iban de89370400440532013000 please", "iban"),
    ],
)
def test_full_width_and_lower_case_forms_are_found_at_their_own_offsets(text, kind):
    ((found, span),) = kinds(text)
    assert found == kind and span in text and len(span) > 8


def test_redacting_twice_changes_nothing_even_where_a_pseudonym_reads_as_a_number():
    salted = Redactor(kinds=PATTERNS_ONLY.kinds, salt=b"pepper")
    once = "call <PHONE:16836013> or <CARD:40404040>, mail <EMAIL>"
    assert salted.redact(once) == once


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("0123456789 +-().:@xX的张先生ABCDEFabcdef\n"), max_size=80) | st.text(max_size=80)
)
def test_any_text_is_redacted_without_error_and_changed_exactly_when_something_was_found(text):
    assert (PATTERNS_ONLY.redact(text) == text) == (PATTERNS_ONLY.find(text) == [])


def test_a_salt_hidden_in_a_bundle_copy_from_mlflow_gives_placeholders_with_a_warning(caplog):
    """MLflow's copy of a bundle shows a literal salt as '<set>': it is never used as a (publicly known) key."""
    redactor = from_config(RedactionConfig(hash_salt="<set>"))
    assert redactor.salt is None and "came from MLflow" in caplog.text


def test_train_warns_about_a_literal_salt_as_validate_does(banking_slice):
    import modelyard
    from modelyard.pipeline import prepared_for_training
    from modelyard.tasks import as_config, get_task

    path = banking_slice / "salted.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "salted",
                "task": "text_classification",
                "data": {"train": "train.csv", "text_column": "text", "label_column": "category"},
                "model": {"backbone": "tfidf-linear"},
                "privacy": {"hash_salt": "pepper-123"},
            }
        )
    )
    config = as_config(path)
    trained = prepared_for_training(get_task(config.task), config).warnings
    validated = modelyard.validate(path).warnings
    salt = [w for w in validated if "privacy.hash_salt is written in the config" in w]
    assert salt and [w for w in trained if w in salt] == salt
