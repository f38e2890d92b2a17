"""Numbers in a graduate's message, in Chinese or English, digits or words: durations (in
months), money (in yuan), percentages, hours and dates.

``extract`` finds every quantity with its place in the message; ``parse_months``,
``parse_money``, ``parse_percent``, ``parse_hours`` and ``parse_date`` give the first of a kind,
or None. A message often holds several numbers of one kind ("服务期4年 已经干了1年 培训费4万"):
``labelled`` names the role of each by the words around it (the cue words in ``DURATION_CUES``,
``MONEY_CUES``, ``HOURS_CUES`` and ``DATE_CUES``), looking in its own clause and no further than
the neighbouring numbers. ``mentions`` says whether a message states a fact the calculators
need (an unlawful dismissal, an open-ended contract, unpaid wages, ...). ``gather`` reads a
calculator's inputs (``Slot``) from the graduate's messages, newest first.

The lexicons here are for reading, never shown to anyone.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["date", "duration", "money", "percent", "hours"]

_CN_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_CN_SMALL = {"十": 10, "百": 100, "千": 1000}
_CN_BIG = {"万": 10_000, "亿": 100_000_000}
_EN_UNITS = {
    w: i
    for i, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")
    )
}  # fmt: skip
_EN_TENS = {
    w: 10 * i
    for i, w in enumerate(
        ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"), 2
    )
}
_EN_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_EN_WORD = "|".join([*_EN_UNITS, *_EN_TENS, *_EN_SCALES])

DIGITS = r"\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
CN_NUMBER = r"[零〇一二两三四五六七八九十][零〇一二两三四五六七八九十百千]*"
EN_NUMBER = rf"\b(?:{_EN_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_EN_WORD}))*\b"
_NUMBER = rf"{DIGITS}|{CN_NUMBER}|{EN_NUMBER}"

_MONTHS_EN = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_MONTH_NAME = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_CN_SMALL_NUMBER = r"\d{1,2}|[一二三四五六七八九十]{1,3}"
_CN_YEAR = r"\d{4}|[〇零一二三四五六七八九]{4}"
_DATE_PATTERNS = (
    re.compile(
        rf"(?P<y>{_CN_YEAR}|\d{{2}})\s*年\s*(?P<m>{_CN_SMALL_NUMBER})\s*月份?"
        rf"(?:\s*(?P<d>{_CN_SMALL_NUMBER})\s*[日号])?"
    ),
    re.compile(r"\b(?P<y>\d{4})[-/.](?P<m>\d{1,2})(?:[-/.](?P<d>\d{1,2}))?\b"),
    re.compile(
        rf"\b(?P<mon>{_MONTH_NAME})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<y>\d{{4}})\b)?",
        re.I,
    ),
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<mon>{_MONTH_NAME})\b\.?"
        rf"(?:,?\s+(?P<y>\d{{4}})\b)?",
        re.I,
    ),
    re.compile(rf"\b(?P<mon>{_MONTH_NAME})\.?,?\s+(?P<y>\d{{4}})\b", re.I),
    re.compile(
        rf"(?<![\d年个])(?P<m>{_CN_SMALL_NUMBER})\s*月份?(?:\s*(?P<d>{_CN_SMALL_NUMBER})\s*[日号])?"
    ),
    re.compile(rf"(?P<y>{_CN_YEAR})\s*年"),
    re.compile(r"\b(?:in|since|from|of|until)\s+(?P<y>(?:19|20)\d{2})\b", re.I),
)
_PERCENT_PATTERNS = (
    re.compile(rf"(?P<n>{DIGITS}|{EN_NUMBER})\s*(?:%|％|\s+percent\b|\s+per\s*cent\b)", re.I),
    re.compile(rf"百分之(?P<n>{DIGITS}|{CN_NUMBER})"),
    re.compile(r"(?P<zhe>\d{1,2}(?:\.\d)?|[一二三四五六七八九]{1,2})\s*折"),
)
_HOURS_PATTERNS = (
    re.compile(
        rf"(?<!第)(?P<n>{DIGITS}|{CN_NUMBER}|半)\s*个?(?P<half>半)?\s*(?:小时|钟头)(?P<more>多)?"
    ),
    re.compile(
        rf"(?P<n>{DIGITS}|{EN_NUMBER}|half\s+an)(?P<half>\s+and\s+a\s+half)?\s*-?\s*"
        r"(?:hours?|hrs?|h)\b",
        re.I,
    ),
)
_DURATION_ZH = re.compile(
    rf"(?P<less>不满|不到|少于|未满|不足)?(?<!第)(?P<n>{DIGITS}|{CN_NUMBER}|半)\s*(?P<more>多)?\s*整?"
    r"(?P<unit>个多月|个半月|个月|年|周|个?星期|个?礼拜|天)(?P<half>半)?(?P<more2>多|以上)?"
)
_DURATION_EN = re.compile(
    rf"(?:(?P<pre>\b(?:more\s+than|over|at\s+least)\s+)|(?P<less>\b(?:less|fewer)\s+than\s+"
    rf"|\bunder\s+|\bnot\s+yet\s+))?"
    rf"(?P<n>{DIGITS}|{EN_NUMBER}|\ban?\b|\bhalf\s+an?\b)(?P<half>\s+and\s+a\s+half)?(?P<plus>\+)?"
    r"\s*-?\s*(?P<unit>years?|yrs?|months?|mos|weeks?|wks?|days?)\b(?P<half2>\s+and\s+a\s+half)?"
    r"(?P<more2>\s+or\s+more)?",
    re.I,
)
_UNIT_MONTHS = {"year": 12.0, "month": 1.0, "week": 7 / 30, "day": 1 / 30}
_UNIT_RANK = {"year": 4, "month": 3, "week": 2, "day": 1}
_JOINER = re.compile(r"\s*(?:零|又|and|,|，)?\s*", re.I)
_ARTICLE_BEFORE = re.compile(
    r"\b(?:for|of|after|about|around|nearly|almost|over|than|only|just|is|was|been|worked|"
    r"served|within|least|under|past|last)\s+$",
    re.I,
)
_MONEY = re.compile(
    rf"(?P<pre>(?:RMB|CNY|人民币|¥|￥)\s*)?"
    rf"(?P<n>(?:{DIGITS}|[一二两三四五六七八九十])(?:{DIGITS}|[零〇一二两三四五六七八九十百千万亿])*"
    rf"|{EN_NUMBER})"
    r"(?P<mag>[kKwW](?![A-Za-z])|\s*(?:thousand|million)\b)?"
    r"(?P<suf>\s*(?:元|块钱?|人民币|rmb\b|cny\b|yuan\b))?",
    re.I,
)
_RATE_GAP = re.compile(r"^[\s是拿给发有的了:：]{0,3}$")
_RATE_UNITS = {1.0, 1 / 30, 7 / 30, 12.0}
_PER_DAY_BEFORE = re.compile(r"(?:每|一)(?:天|日|晚|周|星期)|天天")
_PER_DAY_AFTER = re.compile(
    r"^\s*(?:(?:a|per|each|every)\s+(?:day|week|night)|daily|weekly|nightly)\b", re.I
)
_RATE = re.compile(r"(?:an?|per|/|每|一)\b|[/每一]", re.I)
_HOTLINES = {"110", "120", "119", "12333", "12348", "12356", "12345", "12308", "12315"}
_FILLER_AFTER_BARE = set("的是了呢吧啊左右多，。；！？、")

_ZH_BOUNDARY = r"[，。；！？、,;!?\n]|和|以及|还有|另外|并且|而且|但是|但"
_EN_BOUNDARY = r"\s(?:and|but|while|plus|also|whereas)\s"
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_BOUNDARY = re.compile(rf"{_ZH_BOUNDARY}|{_EN_BOUNDARY}|(?<=[{_CJK}])\s+(?=[{_CJK}])", re.I)

DURATION_CUES: Mapping[str, str] = {
    "worked": r"(?:已经?|都)(?:干|做|工作|服务|待|呆)(?:了|满)?|工作了?|干了|干满了?|做了|做满了?"
    r"|入职(?:了|已)?|工龄|司龄|在职|上班|待了|呆了"
    r"|已服务|服务了|工作年限|worked|working|employed|been\s+(?:there|here|with|at|in)|joined"
    r"|tenure|service|served|stayed|with\s+(?:the|my|this)\s+(?:company|employer|firm)",
    "contract": r"劳动合同期限?|合同期限?|合同|聘期|聘用期|contract|term",
    "service_period": r"服务期(?:限)?|服务协议|服务年限|约定服务"
    r"|(?:要求|必须|需要?|得|约定)(?:干满|服务|工作满?)"
    r"|service\s+(?:period|agreement|term|commitment|bond)|bond(?:ed)?|commit(?:ted|ment)?"
    r"|serve\s+for|stay\s+for|must\s+(?:work|stay)",
    "probation": r"试用期?|probation(?:ary)?(?:\s+period)?",
    "unsigned": r"(?:一直|还|都)?(?:没|未|没有|不|不给)(?:有|给我)?签(?:订)?(?:书面)?(?:劳动)?合同"
    r"|(?:后|以后|之后)?才(?:跟我|和我|给我|与我)?(?:补)?签|补签"
    r"|(?:(?:only|finally)\s+)?signed\s+(?:a\s+|the\s+|my\s+)?(?:written\s+)?(?:labou?r\s+)?contract"
    r"(?:\s+with\s+me)?(?:\s+only)?\s+after|(?:only|finally)\s+signed"
    r"|没有?(?:书面|劳动)?合同|无合同|without\s+(?:a\s+)?(?:written\s+)?contract"
    r"|no\s+(?:written\s+)?contract|unsigned|(?:not|never|hasn't|haven't|didn't|did\s+not|has\s+not"
    r"|have\s+not)\s+(?:been\s+)?sign(?:ed)?(?:\s+(?:a|any|the|my))?(?:\s+written)?\s*(?:labou?r\s+)?contract",
}
MONEY_CUES: Mapping[str, str] = {
    "wage": r"月薪|月工资|工资|薪水|薪资|薪酬|底薪|月入|每月|每个月|一个月|税前|到手|收入|待遇"
    r"|转正后?"
    r"|约定|合同(?:上|里)?(?:写|约定)?的?|salary|wages?|pay|paid|earns?|earning|income|a\s+month"
    r"|per\s+month|monthly|agreed",
    "probation_pay": r"试用期(?:工资|薪资|月薪|期间|内)?(?:只)?(?:给|发|拿)?|probation(?:ary)?"
    r"(?:\s+(?:pay|wage|salary|period))?|during\s+probation|on\s+probation",
    # the local average that caps severance (第四十七条); "我月平均工资1.2万" and "average
    # monthly wage 10,000" are the graduate's own wage (the base the months are paid at)
    "average": r"(?:当地|本地|本市|全市|全省|上年度?|城市|社会|职工|统筹地区)+月?平均工资"
    r"|社平(?:工资)?|社会平均|(?:local|city|area|regional|provincial|social|citywide)\s+average"
    r"(?:\s+(?:monthly\s+)?(?:wage|salary|pay))?"
    r"|average\s+(?:monthly\s+)?(?:wage|salary|pay)\s+(?:in|of|for)\s+(?:the\s+|my\s+|our\s+)?"
    r"(?:city|area|region|province|locality)",
    "training": r"培训(?:费用?)?|出资|学费|training(?:\s+(?:cost|fee|fees|costs|expenses?))?"
    r"|course",
    "daily": r"(?:每天|一天|每日)(?:的)?(?:工资|薪水|薪资)?|日工资|日薪|按天"
    r"|daily(?:\s+(?:wage|pay|rate))?|per\s+day|a\s+day",
    "hourly": r"时薪|每小时|一小时|每个小时|小时工资|按小时|hourly|per\s+hour|an\s+hour"
    r"|/\s*h(?:ou)?r",
    "annual": r"年薪|年收入|每年|annual(?:ly)?|a\s+year|per\s+year|per\s+annum|yearly",
    "penalty": r"违约金|赔偿?|罚款?|要(?:我)?(?:交|付|赔)|penalty|liquidated\s+damages|pay\s+back"
    r"|repay|compensate|charge[sd]?|demand(?:s|ed|ing)?|ask(?:s|ed|ing)?\s+(?:me\s+)?(?:for|to\s+pay)",
    "overtime_pay": r"加班费|加班工资|overtime\s+pay",
}
HOURS_CUES: Mapping[str, str] = {
    "weekday": r"工作日|平时|平日|下班后?|晚上|延长(?:工作时间)?|延时|周[一二三四五]"
    r"|星期[一二三四五]"
    r"|weekdays?|workdays?|working\s+days?|after\s+(?:work|hours)|evenings?|extended|mondays?"
    r"|tuesdays?|wednesdays?|thursdays?|fridays?",
    "rest_day": r"休息日|周末|周[六日天]|星期[六日天]|双休日?|礼拜[六天日]|weekends?|rest\s+days?"
    r"|days?\s+off|saturdays?|sundays?",
    "holiday": r"法定(?:节假日|假日|休假日|节日|假期)|节假日|国庆|春节|过年|除夕|五一|劳动节"
    r"|元旦|清明"
    r"|端午|中秋|(?:public|statutory|national|legal)\s+holidays?|national\s+day|spring\s+festival"
    r"|chinese\s+new\s+year|may\s+day|new\s+year(?:'s)?(?:\s+day)?|holidays?",
}
DATE_CUES: Mapping[str, str] = {
    "known": r"知道|得知|发现|意识到|收到|通知|开始(?:拖)?欠|欠薪|侵害|learn(?:ed|t)|found\s+out"
    r"|discover(?:ed)?|knew|notic(?:ed|e)|told|informed|received",
    "end": r"离职|辞职|被?辞退|被?开除|被?裁(?:员)?|解除|终止|到期|走人|离开|最后一天|劳动关系结束"
    r"|left|quit|resign(?:ed)?|fired|dismiss(?:ed)?|laid\s+off|terminat(?:ed|ion)|ended|last\s+day",
}
CUES: Mapping[Kind, Mapping[str, str]] = {
    "duration": DURATION_CUES,
    "money": MONEY_CUES,
    "hours": HOURS_CUES,
    "date": DATE_CUES,
    "percent": {},
}

Fact = Literal[
    "unlawful", "open_ended", "task_based", "wage_arrears", "still_employed", "left", "per_day"
]
FACTS: Mapping[Fact, str] = {
    "unlawful": r"违法|非法|不合法|unlawful(?:ly)?|illegal(?:ly)?|wrongful(?:ly)?"
    r"|unfair(?:ly)?\s+dismiss",
    "open_ended": r"无固定期限|无期限|不定期|open[\s-]?ended|permanent\s+contract|no\s+fixed\s+term"
    r"|indefinite",
    "task_based": r"完成一定(?:的)?工作任务|以(?:完成)?(?:工作)?任务为期限|项目(?:制)?合同|单项任务"
    r"|task[\s-]based|(?:specific|particular|single)\s+(?:task|project)|project[\s-]based"
    r"|until\s+the\s+(?:project|task)",
    "wage_arrears": r"欠薪|(?:拖|克扣|扣)?欠(?:了)?(?:我)?(?:的)?(?:\S{0,3}月)?"
    r"(?:工资|薪水|薪资|加班费|劳动报酬)"
    r"|(?:工资|薪水|加班费)(?:一直|还|都)?"
    r"(?:没|未|不)(?:有)?(?:发|给|付|结)|没(?:有)?(?:发|给|结)(?:我)?(?:的)?(?:工资|薪水|加班费)"
    r"|unpaid\s+(?:wages?|salary|pay|overtime)|wage\s+arrears|owe[sd]?\s+me|back\s+pay"
    r"|(?:haven't|have\s+not|hasn't|has\s+not|wasn't|was\s+not|weren't|not)\s+been\s+paid"
    r"|(?:hasn't|haven't|didn't|did\s+not|has\s+not|have\s+not|never|not)\s+pa(?:id|y)\s+(?:me|my\s+(?:wages?"
    r"|salary|pay|overtime))",
    "still_employed": r"还在职|仍在职|在职|还在(?:上班|公司|单位|这家|干)|没(?:有)?(?:离职|辞职|走)"
    r"|未离职|still\s+(?:work(?:ing)?|employed|there|at|with|on\s+the\s+job)|currently\s+(?:work|employed)"
    r"|(?:haven't|have\s+not|didn't|did\s+not)\s+(?:left|quit|resigned)",
    "left": r"离职|辞职|被?辞退|被?开除|被?裁员?|解除|终止|离开(?:了)?(?:公司|单位)|不干了|走了"
    r"|\bleft\b|\bquit\b|resign(?:ed)?|fired|dismiss(?:ed)?|laid\s+off|terminated|no\s+longer\s+work",
    "per_day": r"(?:每|一)(?:天|日|晚|周|星期)|天天|(?:a|per|each|every)\s+(?:day|week|night)"
    r"|daily|weekly|nightly",
}


@dataclass(frozen=True)
class PartialDate:
    """A date as written: the year or the day may be missing ("3月5日", "2024年3月")."""

    year: int | None
    month: int | None
    day: int | None

    def complete(self) -> dt.date | None:
        if self.year is None or self.month is None or self.day is None:
            return None
        try:
            return dt.date(self.year, self.month, self.day)
        except ValueError:
            return None


@dataclass(frozen=True)
class Quantity:
    kind: Kind
    value: float
    """Months (duration), yuan (money), percent (80 for 80%), hours; 0 for a date."""
    start: int
    end: int
    text: str
    approximate: bool = False
    """Written as 三年多 / 三年以上 / more than three years: at least ``value``, below
    ``value + step``."""
    less: bool = False
    """Written as 不满一年 / less than a year: below ``value``."""
    step: float = 0.0
    """A duration's smallest unit written, in months (12 for 三年多, 1 for 五个多月)."""
    weak: bool = False
    """A bare number (月薪6000 is not weak, 6000 alone is): counts only where a cue names it."""
    unit: str = ""
    """A duration written in days only: "day"; hours per day or week: "per_day"."""
    date: PartialDate | None = None


# -- numbers ------------------------------------------------------------------------------------


def number_value(token: str) -> float | None:
    """The value of a number written in digits ("40,000", "1.2"), Chinese numerals ("三",
    "十八", "一万二", "两万五千", "二〇二四"), both ("1万2", "3万5千", "1.2万") or English words
    ("forty thousand", "twenty-five"); None if it is none of these."""
    token = token.strip().replace(",", "")
    if not token:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", token):
        return float(token)
    if re.fullmatch(rf"(?:{_EN_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_EN_WORD}))*", token, re.I):
        return _words_value(token)
    if len(token) > 1 and all(ch in _CN_DIGITS for ch in token):
        if len(token) != 4 and not re.search("[〇零]", token):
            return None  # 两三 (two or three) is no number
        return float("".join(str(_CN_DIGITS[ch]) for ch in token))
    total = section = 0.0
    number: float | None = None
    last_unit = 0.0
    shorthand = False
    for piece in re.findall(r"\d+(?:\.\d+)?|.", token):
        if piece[0].isdigit() or (piece in _CN_DIGITS and piece not in "零〇"):
            number = float(piece) if piece[0].isdigit() else float(_CN_DIGITS[piece])
        elif piece in "零〇":
            shorthand = False
            last_unit = 0.0
        elif piece in _CN_SMALL:
            section += (1.0 if number is None else number) * _CN_SMALL[piece]
            number, last_unit, shorthand = None, _CN_SMALL[piece], True
        elif piece in _CN_BIG:
            total = (total + section + (number or 0.0)) * _CN_BIG[piece]
            section, number, last_unit, shorthand = 0.0, None, _CN_BIG[piece], True
        else:
            return None
    if number is not None:
        section += number * last_unit / 10 if shorthand and last_unit >= 10 else number
    return total + section


def _words_value(phrase: str) -> float:
    total = current = 0.0
    for word in re.split(r"[\s-]+", phrase.lower()):
        if word in _EN_UNITS:
            current += _EN_UNITS[word]
        elif word in _EN_TENS:
            current += _EN_TENS[word]
        elif word == "hundred":
            current = max(current, 1.0) * 100
        elif word in _EN_SCALES:
            total += max(current, 1.0) * _EN_SCALES[word]
            current = 0.0
    return total + current


def _small_value(token: str) -> float | None:
    token = token.strip().lower()
    if token in ("a", "an"):
        return 1.0
    if token.startswith("half") or token == "半":
        return 0.5
    return number_value(token)


# -- extraction ---------------------------------------------------------------------------------


def extract(text: str) -> list[Quantity]:
    """Every quantity in ``text``, in order. Dates are read first, then percentages, hours,
    durations and money, each from what the earlier kinds left."""
    masked = text
    found: list[Quantity] = []
    for reader in (_dates, _percents, _hours, _durations, _money):
        new = reader(masked, text)
        found.extend(new)
        for q in new:
            masked = masked[: q.start] + "\x00" * (q.end - q.start) + masked[q.end :]
    return _drop_rates(text, sorted(found, key=lambda q: q.start))


def _dates(masked: str, text: str) -> list[Quantity]:
    found: list[Quantity] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(masked):
            date = _partial_date(m)
            if date is None:
                continue
            found.append(
                Quantity("date", 0.0, m.start(), m.end(), text[m.start() : m.end()], date=date)
            )
            masked = masked[: m.start()] + "\x00" * (m.end() - m.start()) + masked[m.end() :]
    return found


def _partial_date(m: re.Match[str]) -> PartialDate | None:
    parts = m.groupdict()
    year = number_value(parts["y"]) if parts.get("y") else None
    if year is not None and year < 100:
        year += 2000
    if parts.get("mon"):
        month: float | None = (
            _MONTHS_EN.index(
                next(name for name in _MONTHS_EN if name.startswith(parts["mon"].lower()[:3]))
            )
            + 1
        )
    else:
        month = number_value(parts["m"]) if parts.get("m") else None
    day = number_value(parts["d"]) if parts.get("d") else None
    if month is None:
        return PartialDate(int(year), None, None) if year and 1900 <= year <= 2100 else None
    if not 1 <= month <= 12 or (day is not None and not 1 <= day <= 31):
        return None
    if year is not None and not 1900 <= year <= 2100:
        return None
    return PartialDate(
        int(year) if year is not None else None, int(month), int(day) if day is not None else None
    )


def _percents(masked: str, text: str) -> list[Quantity]:
    found = []
    for pattern in _PERCENT_PATTERNS:
        for m in pattern.finditer(masked):
            if m.groupdict().get("zhe"):
                raw = m.group("zhe")
                digits = raw if raw[0].isdigit() else "".join(str(_CN_DIGITS[c]) for c in raw)
                value: float | None = float(digits) * (10 if len(raw) == 1 or "." in raw else 1)
            else:
                value = number_value(m.group("n"))
            if value is not None and 0 < value <= 1000:
                found.append(Quantity("percent", value, m.start(), m.end(), m.group()))
    return _no_overlap(found)


def _hours(masked: str, text: str) -> list[Quantity]:
    found = []
    for pattern in _HOURS_PATTERNS:
        for m in pattern.finditer(masked):
            value = _small_value(m.group("n"))
            if value is None or value <= 0:
                continue
            value += 0.5 if m.group("half") else 0.0
            more = bool(m.groupdict().get("more"))
            found.append(Quantity("hours", value, m.start(), m.end(), m.group(), approximate=more))
    return _no_overlap(found)


def _durations(masked: str, text: str) -> list[Quantity]:
    parts: list[tuple[int, int, float, str, bool, bool]] = []
    for m in _DURATION_ZH.finditer(masked):
        value = _small_value(m.group("n"))
        raw_unit = m.group("unit")
        unit = "year" if raw_unit == "年" else "day" if raw_unit == "天" else "month"
        unit = "week" if "周" in raw_unit or "星期" in raw_unit or "礼拜" in raw_unit else unit
        if value is None or (unit == "year" and value > 60):
            continue
        value += 0.5 if m.group("half") or raw_unit == "个半月" else 0.0
        more = bool(m.group("more") or m.group("more2") or raw_unit == "个多月")
        parts.append(
            (m.start(), m.end(), value * _UNIT_MONTHS[unit], unit, more, bool(m.group("less")))
        )
    for m in _DURATION_EN.finditer(masked):
        number = m.group("n")
        lone = number.lower() in ("a", "an") and not m.group("half2") and not m.group("pre")
        if lone and m.start() > 0 and not _ARTICLE_BEFORE.search(masked[: m.start()]):
            continue
        value = _small_value(number)
        if value is None:
            continue
        value += 0.5 if m.group("half") or m.group("half2") else 0.0
        unit = {"y": "year", "m": "month", "w": "week", "d": "day"}[m.group("unit")[0].lower()]
        more = bool(m.group("pre") or m.group("plus") or m.group("more2"))
        parts.append(
            (m.start(), m.end(), value * _UNIT_MONTHS[unit], unit, more, bool(m.group("less")))
        )
    parts.sort()
    merged: list[Quantity] = []
    last_unit = ""
    for start, end, months, unit, more, less in parts:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and _UNIT_RANK[unit] < _UNIT_RANK[last_unit]
            and start >= previous.end
            and _JOINER.fullmatch(masked[previous.end : start])
        ):
            merged[-1] = replace(
                previous,
                value=previous.value + months,
                end=end,
                text=text[previous.start : end],
                approximate=previous.approximate or more,
                step=_UNIT_MONTHS[unit],
                unit="day" if previous.unit == "day" and unit == "day" else "",
            )
        elif previous is None or start >= previous.end:
            merged.append(
                Quantity(
                    "duration",
                    months,
                    start,
                    end,
                    text[start:end],
                    approximate=more,
                    less=less,
                    step=_UNIT_MONTHS[unit],
                    unit="day" if unit == "day" else "",
                )
            )
        else:
            continue
        last_unit = unit
    return merged


def _money(masked: str, text: str) -> list[Quantity]:
    found = []
    for m in _MONEY.finditer(masked):
        raw = m.group("n")
        value = number_value(raw)
        if value is None or value <= 0:
            continue
        mag = (m.group("mag") or "").strip().lower()
        value *= {"k": 1000, "w": 10_000, "thousand": 1000, "million": 1_000_000}.get(mag, 1)
        marked = bool(m.group("pre") or m.group("suf") or mag or re.search("[万千]", raw))
        digits_only = bool(re.fullmatch(DIGITS, raw))
        if not marked:
            before = masked[m.start() - 1] if m.start() else ""
            after = masked[m.end()] if m.end() < len(masked) else ""
            if before == "第" or (before.isalnum() and before.isascii()) or after == "%":
                continue
            if re.match(rf"[{_CJK}]", after) and after not in _FILLER_AFTER_BARE:
                continue
            if not digits_only and value < 100 and not re.search("[十百]", raw):
                continue
            if raw in _HOTLINES or len(raw.replace(",", "")) > 8:
                continue
        weak = not marked and (value < 100 or (digits_only and 1900 <= value <= 2100))
        found.append(Quantity("money", value, m.start(), m.end(), m.group(), weak=weak))
    return found


def _no_overlap(found: list[Quantity]) -> list[Quantity]:
    kept: list[Quantity] = []
    for q in sorted(found, key=lambda q: (q.start, -q.end)):
        if not kept or q.start >= kept[-1].end:
            kept.append(q)
    return kept


def _drop_rates(text: str, found: list[Quantity]) -> list[Quantity]:
    """A unit of one next to an amount is a rate, not a quantity of its own: "一个月8000",
    "一年20万", "8000 a month", "一小时50元". Hours said per day or week ("每天加班2小时",
    "2 hours a day") are marked ``per_day``."""
    dropped: set[int] = set()
    per_day: set[int] = set()
    for i, q in enumerate(found):
        if q.kind not in ("duration", "hours") or q.value not in _RATE_UNITS:
            continue
        if not re.match(r"(?:一|1\b|1[^\d.]|每|an?\b|one\b|per\b)", q.text, re.I):
            continue
        for j in (i - 1, i + 1):
            if not 0 <= j < len(found) or j in dropped:
                continue
            other = found[j]
            gap = text[q.end : other.start] if j > i else text[other.end : q.start]
            if not _RATE_GAP.match(gap.replace("加班", "")):
                continue
            daily = q.kind == "duration" and q.value in (1 / 30, 7 / 30)
            if other.kind == "money" or (other.kind == "hours" and daily):
                dropped.add(i)
                break
    for i, q in enumerate(found):
        if q.kind == "hours" and (
            _PER_DAY_BEFORE.search(text[max(0, q.start - 6) : q.start])
            or _PER_DAY_AFTER.match(text[q.end : q.end + 16])
        ):
            per_day.add(i)
    return [
        replace(q, unit="per_day") if i in per_day else q
        for i, q in enumerate(found)
        if i not in dropped
    ]


# -- roles --------------------------------------------------------------------------------------


def labelled(
    text: str, kind: Kind, cues: Mapping[str, str] | None = None
) -> list[tuple[Quantity, str | None]]:
    """The quantities of ``kind`` in ``text``, each with the cue (a key of ``cues``, by default
    the kind's own) that names its role, or None. A cue counts in the quantity's own clause,
    between it and its neighbouring quantities; the nearest wins. In Chinese a cue before
    the number is preferred ("服务期4年"), in English both sides count ("4 years of service")."""
    quantities = extract(text)
    table = CUES[kind] if cues is None else cues
    matches = _cue_matches(text, table, quantities)
    boundaries = [
        (m.start(), m.end()) for m in _BOUNDARY.finditer(text) if not _inside(m.start(), quantities)
    ]
    chinese = bool(re.search(rf"[{_CJK}]", text))
    result: list[tuple[Quantity, str | None]] = []
    for i, q in enumerate(quantities):
        if q.kind != kind:
            continue
        left = max([e for s, e in boundaries if e <= q.start] + [quantities[i - 1].end if i else 0])
        right = min(
            [s for s, e in boundaries if s >= q.end]
            + [quantities[i + 1].start if i + 1 < len(quantities) else len(text)]
        )
        best: tuple[float, int, str] | None = None
        for name, start, end in matches:
            if left <= start and end <= q.start:
                distance = float(q.start - end)
            elif q.end <= start and end <= right:
                distance = start - q.end + (4.0 if chinese else 0.5)
                if not text[q.end : start].strip() and _RATE.match(text[start:end]):
                    distance = -1.0  # "40 yuan an hour", "8000 a month": the rate names it
            else:
                continue
            candidate = (distance, -(end - start), name)
            if best is None or candidate < best:
                best = candidate
        result.append((q, best[2] if best else None))
    return result


def _cue_matches(
    text: str, table: Mapping[str, str], quantities: list[Quantity]
) -> list[tuple[str, int, int]]:
    spans = [
        (name, m.start(), m.end())
        for name, pattern in table.items()
        for m in re.finditer(pattern, text, re.I)
        if m.end() > m.start() and not _inside(m.start(), quantities)
    ]
    return [
        (name, s, e)
        for name, s, e in spans
        if not any((s2 <= s and e <= e2) and (e2 - s2) > (e - s) for _, s2, e2 in spans)
    ]


def _inside(position: int, quantities: list[Quantity]) -> bool:
    return any(q.start <= position < q.end for q in quantities)


def mentions(text: str, fact: Fact) -> bool:
    """Whether ``text`` states ``fact`` (see ``FACTS``)."""
    if fact == "left" and re.search(FACTS["still_employed"], text, re.I):
        text = re.sub(FACTS["still_employed"], " ", text, flags=re.I)
    return bool(re.search(FACTS[fact], text, re.I))


def cue_named(text: str, kind: Kind) -> list[str]:
    """The role cues of ``kind`` that ``text`` contains, in order of appearance (a reply like
    "周末的" names the kind of overtime without a number)."""
    matches = _cue_matches(text, CUES[kind], [])
    return [name for name, _, _ in sorted(matches, key=lambda m: m[1])]


# -- the first of a kind ------------------------------------------------------------------------


def _first(text: str, kind: Kind) -> Quantity | None:
    return next((q for q in extract(text) if q.kind == kind and not q.weak), None)


def parse_months(text: str) -> float | None:
    """The first duration in months: "3年7个月" → 43, "两年半" → 30, "半年" → 6,
    "two and a half years" → 30, "5个月29天" → 5.97."""
    q = _first(text, "duration")
    return q.value if q else None


def parse_money(text: str) -> float | None:
    """The first amount in yuan: "4万" → 40000, "一万二" → 12000, "8k" → 8000,
    "RMB 8,000" → 8000; a bare number counts from 100 up."""
    q = _first(text, "money")
    return q.value if q else None


def parse_percent(text: str) -> float | None:
    """The first percentage: "80%" → 80, "百分之八十" → 80, "八折" → 80, "8.5折" → 85."""
    q = _first(text, "percent")
    return q.value if q else None


def parse_hours(text: str) -> float | None:
    """The first number of hours: "加班20小时" → 20, "两个半小时" → 2.5, "20 hours" → 20."""
    q = _first(text, "hours")
    return q.value if q else None


def parse_date(text: str) -> PartialDate | None:
    """The first date: "2024年3月5日", "2024-03-05", "March 5, 2024", "3月5日" (no year)."""
    q = _first(text, "date")
    return q.date if q else None


# -- the inputs of a calculator ----------------------------------------------------------------

_DAY = 1 / 30


@dataclass(frozen=True)
class Slot:
    name: str
    kind: Kind
    cues: tuple[str, ...]
    """The cues (``quantities.CUES``) that name this input, the preferred first."""
    default: bool = False
    """A quantity with no cue may fill it (the graduate answering the question asked)."""


def gather(texts: Sequence[str], slots: Sequence[Slot]) -> dict[str, Quantity]:
    """The inputs found in ``texts`` (newest first). A cued quantity in a newer message wins;
    then quantities with no cue fill the inputs still missing, in the order of ``slots``. A
    kind with a single default input takes an uncued quantity as if it were cued."""
    kinds = {slot.kind for slot in slots}
    read = [{kind: labelled(text, kind) for kind in kinds} for text in texts]
    defaults = {k: [s for s in slots if s.kind == k and s.default] for k in kinds}
    found: dict[str, Quantity] = {}
    for slot in slots:
        for message in read:
            pairs = message[slot.kind]
            hit = next((q for cue in slot.cues for q, c in pairs if c == cue), None)
            if hit is None and slot.default and len(defaults[slot.kind]) == 1:
                hit = next((q for q, c in pairs if c is None and not q.weak), None)
            if hit is not None:
                found[slot.name] = hit
                break
    for message in read:
        for kind, waiting in defaults.items():
            used = list(found.values())
            free = [
                q
                for q, c in message[kind]
                if c is None and not q.weak and all(q is not u for u in used)
            ]
            for slot in waiting:
                if slot.name not in found and free:
                    found[slot.name] = free.pop(0)
    return found


def said(texts: Sequence[str], fact: Fact) -> bool:
    return any(mentions(text, fact) for text in texts)


def bounds(q: Quantity) -> tuple[float, float]:
    """The least and the most a duration can be ("三年多": 36 to just under 48)."""
    if q.less:
        return min(_DAY, q.value), q.value - _DAY
    if q.approximate:
        return q.value, q.value + q.step - _DAY
    return q.value, q.value
