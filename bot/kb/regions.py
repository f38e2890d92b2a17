"""Regions: every province-level and prefecture-level division of China, from the national
division table in ``region_data/divisions.csv`` (see ``bot.kb.region_build`` for its source).

Documents use ``national`` or a region code: a province's pinyin (``shanghai``, ``shaanxi``,
``neimenggu``, ``hongkong``) or a prefecture-level division's (``suzhou-jiangsu``,
``shenzhen``). People type 上海, 上海市, 沪, Shanghai, "shang hai": ``lookup`` and
``normalise_region`` map all of them to the division and its code; ``find_region`` spots a
division named in a free-text question.
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NATIONAL = "national"
_NATIONAL_NAMES = frozenset({"national", "nationwide", "全国"})
_DATA = Path(__file__).with_name("region_data") / "divisions.csv"
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_ZH_SUFFIXES = ("特别行政区", "自治区", "自治州", "地区", "省", "市", "州", "盟")
_EN_SUFFIX = re.compile(
    r"\s+(?:province|city|municipality|prefecture|sar|special administrative region"
    r"|autonomous region|shi|sheng)$"
)

# Free text: short names that are ordinary words are found only by their full name (中山市,
# not 中山大学 or 孙中山; 朝阳区 is a district of Beijing; 白银 is silver, 安康 well-being,
# 来宾 guests, 日照 sunshine) ...
_COMMON_WORDS = frozenset({"中山", "朝阳", "白银", "安康", "来宾", "日照"})
# ... and these phrases contain a division's name without naming it (长白山 is not 白山,
# 中山西路 is not 山西, 内华达州 is not 达州). Each is skipped whole.
_NOT_PLACES = frozenset(
    {
        "大理石",
        "大理寺",
        "长治久安",
        "大同小异",
        "世界大同",
        "三明治",
        "四平八稳",
        "长白山",
        "太白山",
        "峨眉山",
        "天山南北",
        "中山东",
        "中山西",
        "中山南",
        "中山北",
        "山南海北",
        "天南海北",
        "中南海",
        "出海口",
        "入海口",
        "夸下海口",
        "夸海口",
        "五大连池",
        "巴丹吉林",
        "挪威海",
        "北海道",
        "北海公园",
        "淮南子",
        "东躲西藏",
        "黄石公园",
        "周口店",
        "洛阳纸贵",
        "玉树临风",
        "普洱茶",
        "哈密瓜",
        "复合肥",
        "广安门",
        "邯郸学步",
        "文山会海",
        "巴尔喀什",
        "马拉喀什",
        "昆士兰州",
        "马里兰州",
        "内华达州",
        "佛罗里达州",
        "明尼苏达州",
        "斯克州",
        "茨克州",
    }
)
# Latin free text: pinyin that is also a given name (Jian, Lu'an, Aba) or names something else
# too (Zhongshan University; Chaoyang and Baoshan, districts of Beijing and Shanghai).
_LATIN_COMMON = frozenset({"jian", "luan", "aba", "zhongshan", "chaoyang", "baoshan"})


@dataclass(frozen=True)
class Division:
    """A province-level or prefecture-level division."""

    code: str  # suzhou-jiangsu
    name: str  # 苏州市 (official)
    short: str  # 苏州
    pinyin: str  # suzhou (toneless)
    level: Literal["province", "city"]
    province: str  # the province's code; a province's own code
    gb_code: str = ""  # GB/T 2260: 320500
    other_names: tuple[str, ...] = ()  # 巴州 (for 巴音郭楞), Inner Mongolia
    abbreviations: tuple[str, ...] = ()  # 沪: exact lookup only, never in free text


@dataclass(frozen=True)
class _Table:
    divisions: dict[str, Division]
    exact: dict[str, tuple[str, ...]]  # lookup key → codes (several: ambiguous)
    zh_text: dict[str, str | None]  # Chinese name in free text → code (None: skip it)
    latin_text: dict[str, str]  # space-separated lowercase words → code
    longest_zh: int


def _split(cell: str) -> tuple[str, ...]:
    return tuple(part for part in cell.split("|") if part)


def _latin_key(text: str) -> str:
    """Shànghǎi / "shang hai" / Xi'an / Hong Kong SAR → shanghai / xian / hongkong."""
    text = unicodedata.normalize("NFKD", text.strip().lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _EN_SUFFIX.sub("", re.sub(r"\s+", " ", text))
    return re.sub(r"[^a-z0-9]", "", text)


def _latin_words(text: str) -> str:
    """Lowercase words separated by single spaces, apostrophes inside words dropped."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z])['’](?=[a-z])", "", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


def _read(path: Path) -> list[Division]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return [
            Division(
                code=row["code"],
                name=row["name"],
                short=row["short"],
                pinyin=row["pinyin"],
                level="province" if row["level"] == "province" else "city",
                province=row["province"],
                gb_code=row["gb_code"],
                other_names=_split(row["other"]) + _split(row["english"]),
                abbreviations=_split(row["abbr"]),
            )
            for row in rows
        ]


@functools.cache
def _table() -> _Table:
    divisions = {d.code: d for d in _read(_DATA)}
    ranked: dict[str, dict[int, set[str]]] = {}  # key → rank → codes (a code beats a name)

    def add(key: str, code: str, rank: int) -> None:
        if key:
            ranked.setdefault(key, {}).setdefault(rank, set()).add(code)

    zh_text: dict[str, str | None] = dict.fromkeys(_NOT_PLACES | _COMMON_WORDS)
    latin_text: dict[str, set[str]] = {}
    for d in divisions.values():
        add(_latin_key(d.code), d.code, 0)
        pinyins = {d.pinyin, d.pinyin.replace("v", "u"), d.pinyin.replace("v", "yu")}
        for name in (d.name, d.short, *d.other_names, *d.abbreviations, *pinyins):
            add(_latin_key(name) if not _CJK.search(name) else name, d.code, 1)
            if len(name) >= 2 and _CJK.search(name):
                if name not in _COMMON_WORDS and name not in _NOT_PLACES:
                    zh_text[name] = d.code if zh_text.get(name, d.code) == d.code else None
            elif name and not _CJK.search(name) and name not in _LATIN_COMMON:
                latin_text.setdefault(_latin_words(name), set()).add(d.code)
    exact = {key: tuple(sorted(by_rank[min(by_rank)])) for key, by_rank in ranked.items()}
    for code in divisions:  # a code names its division even where it is also a pinyin
        if code not in _LATIN_COMMON:
            latin_text[code.replace("-", " ")] = {code}
    return _Table(
        divisions=divisions,
        exact=exact,
        zh_text=zh_text,
        latin_text={words: next(iter(c)) for words, c in latin_text.items() if len(c) == 1},
        longest_zh=max(map(len, zh_text)),
    )


def divisions() -> list[Division]:
    """Every division, provinces and cities, in GB/T 2260 order."""
    return list(_table().divisions.values())


def _candidates(text: str) -> tuple[str, ...]:
    """The codes a name could mean: one, several (ambiguous), or none."""
    table = _table()
    text = unicodedata.normalize("NFKC", text).strip()
    if not _CJK.search(text):
        return table.exact.get(_latin_key(text), ())
    key = re.sub(r"\s+", "", text)
    found = table.exact.get(key, ())
    for suffix in _ZH_SUFFIXES:  # 广西自治区, 延边州
        if not found and key.endswith(suffix) and len(key) - len(suffix) >= 2:
            found = table.exact.get(key[: -len(suffix)], ())
    return found


def lookup(name: str) -> Division | None:
    """The division a name means: 苏州 / 苏州市 / 江苏苏州 / Suzhou, Jiangsu / suzhou-jiangsu.
    ``None`` for unknown names and for ambiguous ones ("Suzhou": 苏州 or 宿州)."""
    table = _table()
    codes = _candidates(name)
    if len(codes) == 1:
        return table.divisions[codes[0]]
    if codes:
        return None
    cjk = bool(_CJK.search(name))
    key = re.sub(r"\s+", "", name) if cjk else _latin_key(name)
    for province in table.divisions.values():  # 江苏省苏州市, Jiangsu Suzhou
        if province.level != "province":
            continue
        names = (province.name, province.short) if cjk else (province.code, province.pinyin)
        for prefix in names:
            rest = key[len(prefix) :] if key.startswith(prefix) else ""
            inside = [c for c in _candidates(rest) if _in(c, province.code)] if rest else []
            if len(inside) == 1:
                return table.divisions[inside[0]]
    return None


def _in(code: str, province: str) -> bool:
    division = _table().divisions[code]
    return division.level == "city" and division.province == province


def normalise_region(name: str) -> str:
    """上海 / 上海市 / 沪 / Shanghai → ``shanghai``; 全国 → ``national``. An unknown or
    ambiguous name comes back lowercased, without spaces, hyphens or apostrophes."""
    text = name.strip()
    lowered = text.lower().replace(" ", "").replace("-", "").replace("'", "")
    if lowered in _NATIONAL_NAMES:
        return NATIONAL
    division = lookup(text)
    return division.code if division else lowered


def is_known(code: str) -> bool:
    """A region code documents may use: ``national`` or a division's code."""
    return code == NATIONAL or code in _table().divisions


def province_of(code: str) -> str | None:
    """The province a region code lies in (a province is its own); ``None`` otherwise."""
    division = _table().divisions.get(code)
    return division.province if division else None


def applies(doc_region: str, asked: str | None) -> bool:
    """Whether a document for ``doc_region`` answers a question about ``asked``: a national
    document always; a regional one for its own region and, for a province, every city in
    it (a Jiangsu rule applies in Suzhou); never for another region or no region at all."""
    doc = normalise_region(doc_region)
    if doc == NATIONAL:
        return True
    if not asked:
        return False
    wanted = normalise_region(asked)
    return wanted == doc or province_of(wanted) == doc


def find_region(text: str) -> Division | None:
    """The division a free-text question names: 我在苏州工作 → 苏州; "shenzhen talent
    subsidy" → 深圳. Chinese names of two characters or more (never 沪 in 沪漂), pinyin and
    English names as whole words; the first one named wins, except that a city named after
    its own province is the more precise answer (江苏省苏州市 → 苏州)."""
    table = _table()
    hits: list[tuple[int, str]] = []
    i = 0
    while i < len(text):  # leftmost-longest scan; stop phrases are consumed and skipped
        for size in range(min(table.longest_zh, len(text) - i), 1, -1):
            piece = text[i : i + size]
            if piece in table.zh_text:
                code = table.zh_text[piece]
                if code is not None:
                    hits.append((i, code))
                i += size
                break
        else:
            i += 1
    latin = _latin_words(text)
    words = [(m.start(), m.group()) for m in re.finditer(r"[a-z0-9]+", latin)]
    j = 0
    while j < len(words):  # whole words: Hong Kong, suzhou-jiangsu, shenzhen
        step = 1
        for size in range(min(3, len(words) - j), 0, -1):
            code = table.latin_text.get(" ".join(word for _, word in words[j : j + size]))
            if code is not None:
                hits.append((words[j][0], code))
                step = size
                break
        j += step
    if not hits:
        return None
    hits.sort()
    first = table.divisions[hits[0][1]]
    if first.level == "province":
        for _, code in hits[1:]:
            if table.divisions[code].province == first.code and code != first.code:
                return table.divisions[code]
    return first


def suggest(name: str, limit: int = 3) -> list[str]:
    """Close names for an unknown or ambiguous one, for error messages: 苏洲 → 苏州,
    shangai → shanghai, suzhou → suzhou-anhui, suzhou-jiangsu."""
    table = _table()
    text = unicodedata.normalize("NFKC", name).strip()
    if _CJK.search(text):
        key = re.sub(r"\s+", "", text)
        pool = {n: c for n, c in table.zh_text.items() if c is not None}
        inside = sorted((n for n in pool if n in key or key in n), key=len, reverse=True)
        close = difflib.get_close_matches(key, pool, n=limit * 2, cutoff=0.5)
        codes = [pool[n] for n in [*inside, *close]]
        shown = [table.divisions[c].short for c in dict.fromkeys(codes)]
        return shown[:limit]
    key = _latin_key(text)
    if len(table.exact.get(key, ())) > 1:
        return list(table.exact[key])
    close = difflib.get_close_matches(key, table.exact, n=limit * 2, cutoff=0.75)
    codes = [c for k in close for c in table.exact[k]]
    return list(dict.fromkeys(codes))[:limit]


def validate_region(value: str) -> str:
    """A document's region as its code; ``ValueError`` saying what to write instead."""
    code = normalise_region(value)
    if is_known(code):
        return code
    shown = value.strip()
    candidates = _candidates(shown)
    if len(candidates) > 1:
        named = " or ".join(f"{c} ({_table().divisions[c].name})" for c in candidates)
        raise ValueError(f"ambiguous region {shown!r}: write {named}")
    options = suggest(shown)
    hint = f"; did you mean {', '.join(options)}?" if options else ""
    raise ValueError(
        f"unknown region {shown!r}: use national or a province/city name such as "
        f"上海 / shanghai{hint}"
    )


def _regions() -> dict[str, str]:
    """Chinese name → code for every division (its official name and the short names safe to
    spot in free text, the short name last), and 全国 → national."""
    names: dict[str, str] = {}
    for d in _table().divisions.values():
        for name in (d.name, *d.other_names, d.short):
            if _CJK.search(name) and name not in _COMMON_WORDS:
                names[name] = d.code
    names["全国"] = NATIONAL
    return names


REGIONS: dict[str, str] = _regions()
"""Chinese name → region code; its values are every region code, ``national`` included. To
check a code use ``is_known``; to spot a division in text, ``find_region``."""


def region_name(code: str, lang: str) -> str:
    """How a region is named to a graduate: 苏州 / Suzhou (the code itself when unknown)."""
    division = lookup(code)
    if division is None:
        return code
    if lang == "zh":
        return division.short
    english = [n for n in division.other_names if not _CJK.search(n)]
    return english[0] if english else division.pinyin.title()
