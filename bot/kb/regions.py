"""Region names: documents use ``national`` or lowercase pinyin (``shanghai``); people type
上海, 上海市, Shanghai. ``normalise_region`` maps all of them to the code."""

from __future__ import annotations

REGIONS: dict[str, str] = {
    "北京": "beijing",
    "天津": "tianjin",
    "河北": "hebei",
    "山西": "shanxi",
    "内蒙古": "neimenggu",
    "辽宁": "liaoning",
    "吉林": "jilin",
    "黑龙江": "heilongjiang",
    "上海": "shanghai",
    "江苏": "jiangsu",
    "浙江": "zhejiang",
    "安徽": "anhui",
    "福建": "fujian",
    "江西": "jiangxi",
    "山东": "shandong",
    "河南": "henan",
    "湖北": "hubei",
    "湖南": "hunan",
    "广东": "guangdong",
    "广西": "guangxi",
    "海南": "hainan",
    "重庆": "chongqing",
    "四川": "sichuan",
    "贵州": "guizhou",
    "云南": "yunnan",
    "西藏": "xizang",
    "陕西": "shaanxi",
    "甘肃": "gansu",
    "青海": "qinghai",
    "宁夏": "ningxia",
    "新疆": "xinjiang",
    "香港": "hongkong",
    "澳门": "macao",
    "台湾": "taiwan",
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

_SUFFIXES = ("省", "市", "自治区", "壮族自治区", "回族自治区", "维吾尔自治区", "特别行政区")
_CODES = set(REGIONS.values())


def normalise_region(name: str) -> str:
    """上海 / 上海市 / Shanghai / shanghai → ``shanghai``; unknown names are lowercased."""
    text = name.strip()
    lowered = text.lower().replace(" ", "").replace("-", "").replace("'", "")
    if lowered in _CODES:
        return lowered
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return REGIONS.get(text, lowered)
