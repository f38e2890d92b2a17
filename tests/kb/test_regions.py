"""Regions: every province and prefecture-level city, by any name a person types, spotted in
questions, matched against documents, and checked in front matter."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections import Counter
from pathlib import Path

import pytest

from bot.kb import region_build
from bot.kb.loaders import MetadataError, load_file
from bot.kb.regions import (
    REGIONS,
    applies,
    divisions,
    find_region,
    is_known,
    lookup,
    normalise_region,
    province_of,
    suggest,
)
from tests.conftest import DocWriter

# official name, short name, abbreviations, code (as documents have always used), English
PROVINCES = [
    ("北京市", "北京", "京", "beijing", "Beijing"),
    ("天津市", "天津", "津", "tianjin", "Tianjin"),
    ("河北省", "河北", "冀", "hebei", "Hebei"),
    ("山西省", "山西", "晋", "shanxi", "Shanxi"),
    ("内蒙古自治区", "内蒙古", "蒙", "neimenggu", "Inner Mongolia"),
    ("辽宁省", "辽宁", "辽", "liaoning", "Liaoning"),
    ("吉林省", "吉林", "吉", "jilin", "Jilin"),
    ("黑龙江省", "黑龙江", "黑", "heilongjiang", "Heilongjiang"),
    ("上海市", "上海", "沪", "shanghai", "Shanghai"),
    ("江苏省", "江苏", "苏", "jiangsu", "Jiangsu"),
    ("浙江省", "浙江", "浙", "zhejiang", "Zhejiang"),
    ("安徽省", "安徽", "皖", "anhui", "Anhui"),
    ("福建省", "福建", "闽", "fujian", "Fujian"),
    ("江西省", "江西", "赣", "jiangxi", "Jiangxi"),
    ("山东省", "山东", "鲁", "shandong", "Shandong"),
    ("河南省", "河南", "豫", "henan", "Henan"),
    ("湖北省", "湖北", "鄂", "hubei", "Hubei"),
    ("湖南省", "湖南", "湘", "hunan", "Hunan"),
    ("广东省", "广东", "粤", "guangdong", "Guangdong"),
    ("广西壮族自治区", "广西", "桂", "guangxi", "Guangxi"),
    ("海南省", "海南", "琼", "hainan", "Hainan"),
    ("重庆市", "重庆", "渝", "chongqing", "Chongqing"),
    ("四川省", "四川", "川蜀", "sichuan", "Sichuan"),
    ("贵州省", "贵州", "贵黔", "guizhou", "Guizhou"),
    ("云南省", "云南", "云滇", "yunnan", "Yunnan"),
    ("西藏自治区", "西藏", "藏", "xizang", "Tibet"),
    ("陕西省", "陕西", "陕秦", "shaanxi", "Shaanxi"),
    ("甘肃省", "甘肃", "甘陇", "gansu", "Gansu"),
    ("青海省", "青海", "青", "qinghai", "Qinghai"),
    ("宁夏回族自治区", "宁夏", "宁", "ningxia", "Ningxia"),
    ("新疆维吾尔自治区", "新疆", "新", "xinjiang", "Xinjiang"),
    ("香港特别行政区", "香港", "港", "hongkong", "Hong Kong"),
    ("澳门特别行政区", "澳门", "澳", "macao", "Macau"),
    ("台湾省", "台湾", "台", "taiwan", "Taiwan"),
]

# name as typed → (code, province code)
CITIES = {
    "深圳市": ("shenzhen", "guangdong"),
    "广州": ("guangzhou", "guangdong"),
    "杭州": ("hangzhou", "zhejiang"),
    "南京市": ("nanjing", "jiangsu"),
    "Wuhan": ("wuhan", "hubei"),
    "成都": ("chengdu", "sichuan"),
    "Xi'an": ("xian", "shaanxi"),
    "贵阳": ("guiyang", "guizhou"),
    "延边朝鲜族自治州": ("yanbian", "jilin"),
    "延边": ("yanbian", "jilin"),
    "大兴安岭地区": ("daxinganling", "heilongjiang"),
    "锡林郭勒盟": ("xilinguole", "neimenggu"),
    "巴州": ("bayinguoleng", "xinjiang"),
    "三沙市": ("sansha", "hainan"),
    "儋州": ("danzhou", "hainan"),
    "吉林市": ("jilinshi", "jilin"),
    "海南藏族自治州": ("hainanzhou", "qinghai"),
    "长治": ("changzhi", "shanxi"),
    "漯河": ("luohe", "henan"),
    "Harbin": ("haerbin", "heilongjiang"),
    "lüliang": ("lvliang", "shanxi"),
}

# pinyin shared by two prefecture-level divisions: (Chinese name, code) for each
COLLISIONS = {
    "suzhou": [("苏州", "suzhou-jiangsu"), ("宿州", "suzhou-anhui")],
    "fuzhou": [("福州", "fuzhou-fujian"), ("抚州", "fuzhou-jiangxi")],
    "taizhou": [("泰州", "taizhou-jiangsu"), ("台州", "taizhou-zhejiang")],
    "yichun": [("伊春", "yichun-heilongjiang"), ("宜春", "yichun-jiangxi")],
    "yulin": [("玉林", "yulin-guangxi"), ("榆林", "yulin-shaanxi")],
}

# The hand list the knowledge base used before the national table: its names keep their codes.
OLD_CITY_CODES = {
    "深圳": "shenzhen",
    "广州": "guangzhou",
    "杭州": "hangzhou",
    "南京": "nanjing",
    "武汉": "wuhan",
    "成都": "chengdu",
    "西安": "xian",
    "贵阳": "guiyang",
    "全国": "national",
}


def test_the_table_has_every_province_and_prefecture_level_division() -> None:
    levels = Counter(d.level for d in divisions())
    assert levels == {"province": 34, "city": 333}
    provinces = {d.code for d in divisions() if d.level == "province"}
    assert provinces == {code for *_, code, _ in PROVINCES}
    assert all(d.province in provinces for d in divisions())
    codes = [d.code for d in divisions()]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)?", code) for code in codes)


@pytest.mark.parametrize(("name", "short", "abbreviations", "code", "english"), PROVINCES)
def test_every_province_by_every_name(
    name: str, short: str, abbreviations: str, code: str, english: str
) -> None:
    for typed in (name, short, *abbreviations, code, code.upper(), english, english.lower()):
        division = lookup(typed)
        assert division is not None, typed
        assert (division.code, division.level, division.province) == (code, "province", code)
        assert normalise_region(typed) == code
    division = lookup(name)
    assert division is not None and (division.name, division.short) == (name, short)
    assert REGIONS[short] == code and REGIONS[name] == code


@pytest.mark.parametrize(("typed", "expected"), CITIES.items())
def test_prefecture_level_cities_by_name(typed: str, expected: tuple[str, str]) -> None:
    division = lookup(typed)
    assert division is not None
    assert (division.code, division.province, division.level) == (*expected, "city")
    assert province_of(division.code) == expected[1]


def test_codes_the_knowledge_base_already_uses_are_kept() -> None:
    for name, code in OLD_CITY_CODES.items():
        assert normalise_region(name) == code
        assert REGIONS[name] == code
        assert is_known(code)


def test_a_citys_code_is_its_pinyin_unless_another_division_shares_it() -> None:
    for division in divisions():
        if division.level == "city" and division.code != division.pinyin:
            assert division.code == f"{division.pinyin}-{division.province}"
            others = [d for d in divisions() if d.pinyin == division.pinyin and d != division]
            assert others, division


@pytest.mark.parametrize("pinyin", COLLISIONS)
def test_a_shared_pinyin_is_ambiguous_but_the_chinese_names_are_not(pinyin: str) -> None:
    assert lookup(pinyin) is None
    assert lookup(pinyin.title()) is None
    assert not is_known(normalise_region(pinyin))
    assert sorted(suggest(pinyin)) == sorted(code for _, code in COLLISIONS[pinyin])
    for name, code in COLLISIONS[pinyin]:
        division = lookup(name)
        assert division is not None and division.code == code
        assert lookup(code) == division
        assert lookup(f"{division.short}市") == division


def test_a_city_can_be_named_with_its_province() -> None:
    for typed in (
        "江苏苏州",
        "江苏省苏州市",
        "Suzhou, Jiangsu",
        "Jiangsu Suzhou",
        "suzhou jiangsu",
    ):
        assert normalise_region(typed) == "suzhou-jiangsu", typed
    assert normalise_region("安徽宿州") == "suzhou-anhui"
    assert normalise_region("Fuzhou Jiangxi") == "fuzhou-jiangxi"
    assert lookup("浙江苏州") is None  # 苏州 is not in Zhejiang


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("shang hai", "shanghai"),
        ("  SHANGHAI ", "shanghai"),
        ("Shànghǎi", "shanghai"),
        ("nei meng gu", "neimenggu"),
        ("Guangdong Province", "guangdong"),
        ("Hong Kong SAR", "hongkong"),
        ("xianggang", "hongkong"),
        ("Macao", "macao"),
        ("aomen", "macao"),
        ("Xizang", "xizang"),
        ("Shanxi", "shanxi"),
        ("Shaanxi", "shaanxi"),
        ("shen zhen", "shenzhen"),
        ("广西自治区", "guangxi"),
        ("延边州", "yanbian"),
        ("吉林", "jilin"),
        ("海南", "hainan"),
    ],
)
def test_pinyin_english_and_loose_forms(typed: str, code: str) -> None:
    assert normalise_region(typed) == code


def test_national_and_unknown_names() -> None:
    for typed in ("national", "National", "全国"):
        assert normalise_region(typed) == "national"
    assert is_known("national") and province_of("national") is None
    assert lookup("全国") is None  # not a division
    for unknown in ("火星", "Atlantis", "", "上", "shenzhen-guangdong"):
        assert lookup(unknown) is None
        assert not is_known(normalise_region(unknown))
    assert normalise_region("Atlantis City") == "atlantiscity"  # unknown: lowercased as before


def test_suggestions_for_typos() -> None:
    assert suggest("苏洲")[0] == "苏州"
    assert suggest("苏州工业园区")[0] == "苏州"
    assert suggest("shangai")[0] == "shanghai"
    assert suggest("guangzou")[0] == "guangzhou"
    assert suggest("qwertyuiop") == []


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("我在苏州工作，能申请租房补贴吗", "suzhou-jiangsu"),
        ("上海的落户政策", "shanghai"),
        ("应届生去深圳有什么人才补贴", "shenzhen"),
        ("江苏省苏州市的就业见习补贴", "suzhou-jiangsu"),  # the city, not its province
        ("吉林省长春市的人才政策", "changchun"),
        ("北京和上海哪个落户容易", "beijing"),  # the first one named
        ("内蒙古自治区的三支一扶", "neimenggu"),
        ("延边州有没有基层就业补贴", "yanbian"),
        ("我考上了白银市的事业单位", "baiyin"),
        ("中山市的社保怎么交", "zhongshan"),
        ("Shenzhen talent subsidy for graduates", "shenzhen"),
        ("how do I settle my hukou in Xi'an", "xian"),
        ("Is there a rent allowance in Inner Mongolia?", "neimenggu"),
        ("I work in Hong Kong now", "hongkong"),
        ("moving to suzhou-anhui after graduation", "suzhou-anhui"),
        ("我在shenzhen上班", "shenzhen"),
        ("I'm moving to Suzhou, 苏州 not 宿州", "suzhou-jiangsu"),  # the pinyin is ambiguous
    ],
)
def test_find_region_in_questions(question: str, code: str) -> None:
    found = find_region(question)
    assert found is not None and found.code == code


@pytest.mark.parametrize(
    "question",
    [
        "试用期最长多久",
        "沪漂怎么交社保",  # a one-character abbreviation is not a place in free text
        "我在中山大学读研，毕业后怎么办",  # 中山 is a common name: only 中山市 counts
        "单位在中山西路",  # ... and it does not leave 山西 behind
        "午饭吃三明治可以报销吗",
        "白银价格跟工资有关系吗",
        "暑假去长白山旅游",
        "祝大家安康",
        "欢迎各位来宾",
        "Suzhou industrial park jobs",  # Suzhou or Suzhou: unknown
        "my classmate Jian found a job",
        "I study at Zhongshan University",  # in Guangzhou, not Zhongshan
        "I rent a flat in Chaoyang district",
        "How long is probation?",
    ],
)
def test_find_region_ignores_words_that_are_not_places(question: str) -> None:
    assert find_region(question) is None


def test_applies_national_everywhere_and_regional_only_to_its_region() -> None:
    assert applies("national", None)
    assert applies("national", "suzhou-jiangsu")
    assert applies("jiangsu", "jiangsu")
    assert applies("jiangsu", "suzhou-jiangsu")  # a Jiangsu rule applies in Suzhou
    assert applies("jiangsu", "苏州")
    assert applies("shanghai", "上海市")
    assert applies("suzhou-jiangsu", "suzhou-jiangsu")
    assert not applies("jiangsu", "suzhou-anhui")  # 宿州 is in Anhui
    assert not applies("jiangsu", None)
    assert not applies("jiangsu", "zhejiang")
    assert not applies("suzhou-jiangsu", "jiangsu")  # a city rule does not cover the province
    assert not applies("suzhou-jiangsu", "nanjing")
    assert not applies("shanghai", "suzhou")  # ambiguous: no region


def test_front_matter_region_is_stored_as_its_code(write_doc: DocWriter) -> None:
    for typed, code in [
        ("上海市", "shanghai"),
        ("Suzhou, Anhui", "suzhou-anhui"),
        ("粤", "guangdong"),
    ]:
        path = write_doc("doc", "# 标题\n\n正文。\n", region=typed)
        assert load_file(path, max_bytes=1_000_000).meta.region == code


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("atlantis", ["unknown region 'atlantis'", "national", "上海 / shanghai"]),
        ("苏洲", ["unknown region '苏洲'", "did you mean 苏州"]),
        ("suzhou", ["ambiguous region 'suzhou'", "suzhou-jiangsu (苏州市)", "suzhou-anhui"]),
    ],
)
def test_an_unknown_front_matter_region_is_refused(
    write_doc: DocWriter, typed: str, says: list[str]
) -> None:
    path = write_doc("doc", "# 标题\n\n正文。\n", region=typed)
    with pytest.raises(MetadataError) as refused:
        load_file(path, max_bytes=1_000_000)
    for text in says:
        assert text in str(refused.value)


def test_the_shipped_table_is_what_the_generator_builds() -> None:
    """Regenerating from the package release named in the table's header changes nothing."""
    table = Path(region_build.OUTPUT).read_text(encoding="utf-8")
    named = re.search(r"from jionlp (\S+) ", table.splitlines()[0])
    assert named is not None
    if importlib.util.find_spec("jionlp") is None:
        pytest.skip("jionlp, the table's source, is absent: pip install -e '.[regions]'")
    if importlib.metadata.version("jionlp") != named.group(1):
        pytest.skip(f"jionlp {importlib.metadata.version('jionlp')} is not {named.group(1)}")
    assert region_build.render(*region_build.build()) == table
    assert region_build.main(["--check"]) == 0


def test_an_ingest_region_option_is_checked_like_front_matter(write_doc: DocWriter) -> None:
    """``gradguide kb ingest --region`` overrides the front matter and is checked the same way."""
    path = write_doc("doc", "# 标题\n\n正文。\n", region="national")
    assert load_file(path, {"region": "宿州"}, max_bytes=1_000_000).meta.region == "suzhou-anhui"
    with pytest.raises(MetadataError, match="unknown region 'mars'"):
        load_file(path, {"region": "mars"}, max_bytes=1_000_000)
