"""The rights calculators: reading numbers as graduates write them (Chinese and English,
digits and words), each rule's boundaries, and ``run`` — the number first, the rule and its
article after, and a missing input asked for and then taken from the next message."""

from __future__ import annotations

import datetime as dt
import re
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.agent import calculators as calc
from bot.agent import quantities as qty
from bot.agent.calculators import Computed, NeedsInput, OvertimeEntry, run
from bot.kb.cards import CalculatorName
from bot.kb.models import Lang
from bot.prompts import BUNDLED_PROMPTS_DIR, MESSAGE_FILES, Messages

MESSAGES = Messages.load()
CJK = re.compile(r"[\u4e00-\u9fff]")
CALCULATORS: tuple[CalculatorName, ...] = get_args(CalculatorName)


def ask(name: CalculatorName, text: str, lang: Lang, *earlier: str) -> Computed | NeedsInput:
    return run(name, text, lang, earlier, messages=MESSAGES)


def computed(name: CalculatorName, text: str, lang: Lang, *earlier: str) -> Computed:
    outcome = ask(name, text, lang, *earlier)
    assert isinstance(outcome, Computed), outcome
    return outcome


def needs(name: CalculatorName, text: str, lang: Lang, *earlier: str) -> NeedsInput:
    outcome = ask(name, text, lang, *earlier)
    assert isinstance(outcome, NeedsInput), outcome
    return outcome


# -- reading numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("3年7个月", 43),
        ("三年七个月", 43),
        ("两年半", 30),
        ("一年零三个月", 15),
        ("1年又3个月", 15),
        ("18个月", 18),
        ("十八个月", 18),
        ("半年", 6),
        ("一年半", 18),
        ("一个半月", 1.5),
        ("半个月", 0.5),
        ("1.5年", 18),
        ("我签了三年的合同", 36),
        ("干了两个星期", 14 / 30),
        ("90天", 3),
        ("3 years and 7 months", 43),
        ("3 years, 7 months", 43),
        ("two and a half years", 30),
        ("18 months", 18),
        ("for half a year", 6),
        ("for a year and a half", 18),
        ("a 3-year contract", 36),
        ("an eighteen-month contract", 18),
        ("2.5 years", 30),
        ("5 months and 29 days", 5 + 29 / 30),
        ("5个月29天", 5 + 29 / 30),
    ],
)
def test_durations_are_read_in_months(text: str, months: float) -> None:
    assert qty.parse_months(text) == pytest.approx(months)


@pytest.mark.parametrize(
    ("text", "yuan"),
    [
        ("4万", 40_000),
        ("四万", 40_000),
        ("4万元", 40_000),
        ("40000", 40_000),
        ("40,000", 40_000),
        ("8千", 8_000),
        ("8k", 8_000),
        ("8K", 8_000),
        ("RMB 8,000", 8_000),
        ("¥8000", 8_000),
        ("8000块", 8_000),
        ("1.2万", 12_000),
        ("一万二", 12_000),
        ("1万2", 12_000),
        ("两万五", 25_000),
        ("3万5千", 35_000),
        ("八千五", 8_500),
        ("1w", 10_000),
        ("forty thousand yuan", 40_000),
        ("8 thousand", 8_000),
        ("6,500 yuan", 6_500),
        ("月薪6000。", 6_000),
    ],
)
def test_amounts_are_read_in_yuan(text: str, yuan: float) -> None:
    assert qty.parse_money(text) == pytest.approx(yuan)


@pytest.mark.parametrize(
    ("text", "percent"),
    [("80%", 80), ("８０％", 80), ("百分之八十", 80), ("八折", 80), ("8.5折", 85), ("七五折", 75),
     ("eighty percent", 80), ("80 per cent", 80)],
)  # fmt: skip
def test_percentages(text: str, percent: float) -> None:
    assert qty.parse_percent(text.translate({0xFF10 + i: 0x30 + i for i in range(10)})) == percent


@pytest.mark.parametrize(
    ("text", "hours"),
    [("加班20小时", 20), ("二十个小时", 20), ("两个半小时", 2.5), ("半小时", 0.5), ("20 hours", 20),
     ("twenty hours", 20), ("1.5 hrs", 1.5), ("two and a half hours", 2.5), ("20h", 20)],
)  # fmt: skip
def test_hours(text: str, hours: float) -> None:
    assert qty.parse_hours(text) == hours


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("2024年3月5日", (2024, 3, 5)),
        ("2024年3月5号", (2024, 3, 5)),
        ("二〇二四年三月五日", (2024, 3, 5)),
        ("24年7月1日离职", (2024, 7, 1)),
        ("2024-03-05", (2024, 3, 5)),
        ("2024/3/5", (2024, 3, 5)),
        ("March 5, 2024", (2024, 3, 5)),
        ("5 March 2024", (2024, 3, 5)),
        ("on the 5th of March 2024", (2024, 3, 5)),
        ("3月5日", (None, 3, 5)),
        ("2024年3月", (2024, 3, None)),
    ],
)
def test_dates_keep_what_was_written(text: str, date: tuple[int | None, ...]) -> None:
    found = qty.parse_date(text)
    assert found is not None
    assert (found.year, found.month, found.day) == date


@pytest.mark.parametrize(
    "text",
    ["你好", "试用期最长多久？", "工资一直没发", "请拨打12333咨询", "我2024年毕业", "第一个月没签",
     "how long can probation be?", "两三个月"],
)  # fmt: skip
def test_nothing_is_read_where_there_is_no_number_of_that_kind(text: str) -> None:
    assert qty.parse_money(text) is None
    if "个月" not in text:
        assert qty.parse_months(text) is None
    assert qty.parse_hours(text) is None
    assert qty.parse_percent(text) is None


def test_a_year_is_a_date_not_a_duration() -> None:
    assert qty.parse_months("我2024年3月入职") is None
    assert qty.parse_date("我2024年3月入职") == qty.PartialDate(2024, 3, None)


def test_a_rate_is_not_a_duration() -> None:
    # "一个月8000" is a monthly wage: the month is no length of service
    assert qty.parse_months("一个月8000") is None
    assert qty.parse_months("I earn 8000 a month") is None
    assert qty.parse_hours("一小时50元") is None


def test_more_and_less_are_kept() -> None:
    (more,) = qty.extract("干了3年多")
    assert (more.value, more.approximate, more.step) == (36, True, 12)
    (less,) = qty.extract("合同不到三个月")
    assert (less.value, less.less) == (3, True)


def roles(text: str, kind: qty.Kind) -> dict[str, float]:
    return {cue: q.value for q, cue in qty.labelled(text, kind) if cue}


def test_several_numbers_take_their_roles_from_the_words_around_them() -> None:
    text = "服务期4年 已经干了1年 培训费4万"
    assert roles(text, "duration") == {"service_period": 48, "worked": 12}
    assert roles(text, "money") == {"training": 40_000}
    text = "4年服务期，已干1年，公司出资3万培训"
    assert roles(text, "duration") == {"service_period": 48, "worked": 12}
    text = "I signed a 4-year service agreement and have worked 1 year; training cost 40,000 yuan"
    assert roles(text, "duration") == {"service_period": 48, "worked": 12}
    assert roles(text, "money") == {"training": 40_000}


def test_agreed_wage_and_probation_pay_are_told_apart() -> None:
    assert roles("转正后月薪6000，试用期4000", "money") == {"wage": 6000, "probation_pay": 4000}
    assert roles("试用期工资4000，合同约定8000", "money") == {"probation_pay": 4000, "wage": 8000}
    assert roles("月薪3万，社平工资8000", "money") == {"wage": 30_000, "average": 8000}
    # one's own average wage is the base the months are paid at, not the local average cap
    assert roles("我干了5年3个月，月平均工资1.2万", "money") == {"wage": 12_000}
    assert roles("3 years in, average monthly wage 10,000", "money") == {"wage": 10_000}
    text = "the local average wage is 8,000 and my salary is 30,000"
    assert roles(text, "money") == {"average": 8000, "wage": 30_000}


def test_overtime_hours_take_their_kind() -> None:
    assert roles("周末加班16小时，平时加班20小时", "hours") == {"rest_day": 16, "weekday": 20}
    text = "I worked 20 hours overtime on weekdays and 16 hours on weekends"
    assert roles(text, "hours") == {"weekday": 20, "rest_day": 16}
    assert roles("国庆节加班8小时", "hours") == {"holiday": 8}


def test_a_whole_day_of_overtime_is_one_day() -> None:
    opening = computed(
        "overtime_pay", "这周六被叫去加了一整天班，也不给调休，最少给多少", "zh", "日薪300"
    )
    assert opening.text.startswith("按你在休息日加班1天、日工资300元计算，加班费至少600元"), (
        opening.text
    )


def test_contract_term_and_probation_are_told_apart() -> None:
    assert roles("签了2年合同，试用期3个月", "duration") == {"contract": 24, "probation": 3}
    assert roles("没签合同5个月了", "duration") == {"unsigned": 5}


def test_an_hourly_rate_is_named_by_the_words_after_it() -> None:
    assert roles("I earn 40 yuan an hour", "money") == {"hourly": 40}
    assert roles("时薪50元", "money") == {"hourly": 50}


# -- the calculators ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "cap"),
    [(2.9, 0), (3, 1), (11.9, 1), (12, 2), (35.9, 2), (36, 6), (120, 6)],
)
def test_probation_cap_at_the_boundaries_of_article_19(term: float, cap: float) -> None:
    assert calc.probation_cap(term).cap_months == cap


def test_probation_cap_open_ended_and_task_based() -> None:
    assert calc.probation_cap(None, open_ended=True).cap_months == 6
    assert calc.probation_cap(60, task_based=True).cap_months == 0
    result = calc.probation_cap(24, stated_months=3)
    assert result.exceeds is True
    assert calc.probation_cap(24, stated_months=2).exceeds is False
    assert result.rules[0].citations == ("劳动合同法 第十九条",)
    with pytest.raises(ValueError):
        calc.probation_cap(None)


@pytest.mark.parametrize(
    ("service", "months"),
    [
        (0, 0),
        (1, 0.5),
        (5 + 29 / 30, 0.5),
        (6, 1),
        (11, 1),
        (12, 1),
        (17, 1.5),
        (18, 2),
        (43, 4),
        (41, 3.5),
        (180, 15),
    ],
)
def test_severance_months_follow_article_47(service: float, months: float) -> None:
    assert calc.severance_months(service) == months


def test_severance_amount_and_the_three_times_average_cap() -> None:
    plain = calc.severance(43, 8000)
    assert (plain.months_of_wages, plain.amount, plain.capped) == (4, 32_000, False)
    high = calc.severance(180, 30_000, 8000)
    assert (high.months_of_wages, high.base_wage, high.amount) == (12, 24_000, 288_000)
    assert high.capped
    # exactly three times the average is not above it
    assert not calc.severance(180, 24_000, 8000).capped
    assert calc.severance(180, 30_000).months_of_wages == 15
    assert calc.severance(24, 30_000, 8000).months_of_wages == 2


def test_unlawful_dismissal_is_twice_the_severance() -> None:
    result = calc.severance(30, 8000, unlawful=True)
    assert (result.months_of_wages, result.payable_months, result.amount) == (3, 6, 48_000)
    citations = [c for rule in result.rules for c in rule.citations]
    assert citations == ["劳动合同法 第四十七条", "劳动合同法 第八十七条"]


@pytest.mark.parametrize(
    ("months", "extra"), [(0.5, 0), (1, 0), (2, 1), (5, 4), (5.5, 4.5), (12, 11), (30, 11)]
)
def test_double_wage_from_the_second_month_at_most_eleven(months: float, extra: float) -> None:
    result = calc.unsigned_contract_double_wage(months, 6000)
    assert result.extra_months == extra
    assert result.amount == extra * 6000
    assert result.deemed_open_ended is (months >= 12)


def test_training_penalty_is_pro_rata_to_the_unserved_period() -> None:
    # the document's own example: 30,000 yuan, three years, one served → at most 20,000
    assert calc.training_penalty(30_000, 36, 12).max_penalty == pytest.approx(20_000)
    assert calc.training_penalty(40_000, 48, 0).max_penalty == 40_000
    assert calc.training_penalty(40_000, 48, 48).max_penalty == 0
    assert calc.training_penalty(40_000, 48, 60).max_penalty == 0
    assert calc.training_penalty(30_000, 36, 12, claimed=30_000).claim_exceeds is True
    assert calc.training_penalty(30_000, 36, 12, claimed=15_000).claim_exceeds is False


def test_overtime_pay_rates_of_article_44() -> None:
    result = calc.overtime_pay(
        [
            OvertimeEntry("weekday", 20),
            OvertimeEntry("rest_day", 16),
            OvertimeEntry("holiday", 8),
        ],
        hourly_wage=50,
    )
    assert [line.percent for line in result.lines] == [150, 200, 300]
    assert [line.amount for line in result.lines] == [1500, 1600, 1200]
    assert result.total_amount == 4300
    assert result.total_equivalent == 30 + 32 + 24
    days = calc.overtime_pay([OvertimeEntry("holiday", 3, "day")], hourly_wage=50)
    assert (days.lines[0].equivalent, days.total_amount) == (9, None)


def test_probation_wage_floor_is_eighty_percent() -> None:
    assert calc.probation_wage_floor(6000).floor == 4800  # the document's example
    assert calc.probation_wage_floor(6000, 4000).below is True
    assert calc.probation_wage_floor(6000, 4800).below is False


def test_arbitration_deadline_is_one_year() -> None:
    result = calc.arbitration_deadline(dt.date(2024, 3, 5))
    assert (result.case, result.deadline) == ("general", dt.date(2025, 3, 5))
    assert calc.arbitration_deadline(dt.date(2024, 2, 29)).deadline == dt.date(2025, 2, 28)
    employed = calc.arbitration_deadline(None, wage_arrears=True, still_employed=True)
    assert (employed.case, employed.deadline) == ("wage_in_employment", None)
    after = calc.arbitration_deadline(dt.date(2024, 6, 30), wage_arrears=True)
    assert (after.case, after.deadline) == ("wage_after_end", dt.date(2025, 6, 30))


# -- run: the answer's opening ------------------------------------------------------------------


def test_severance_opens_with_the_number_in_both_languages() -> None:
    zh = computed("severance", "我工作了3年7个月，公司要裁我，能拿多少补偿？", "zh")
    head, rule = zh.text.split("\n", 1)
    assert head == "按你工作3年7个月，经济补偿是4个月工资。"
    assert "《劳动合同法》第四十七条" in rule
    en = computed("severance", "I worked there for 3 years and 7 months. What severance?", "en")
    head, rule = en.text.split("\n", 1)
    assert head == "For 3 years and 7 months of service, the severance is 4 months' wages."
    assert "劳动合同法 第四十七条" in rule
    assert en.citations == zh.citations == ("劳动合同法 第四十七条",)


def test_amounts_and_half_months_are_written_out() -> None:
    zh = computed("severance", "干了3年5个月，月薪8000", "zh")
    assert "3.5个月工资" in zh.text
    assert "28,000元" in zh.text
    en = computed("severance", "3 years and 5 months, salary 8,000 a month", "en")
    assert "3.5 months' wages" in en.text
    assert "RMB 28,000" in en.text
    assert "半个月工资" in computed("severance", "工作了4个月", "zh").text
    assert "half a month's wages" in computed("severance", "I worked 4 months", "en").text


def test_exactly_six_months_and_one_day_less() -> None:
    assert "1个月工资" in computed("severance", "工作了6个月", "zh").text
    assert "半个月工资" in computed("severance", "工作了5个月29天", "zh").text


def test_unlawful_dismissal_leads_with_twice_the_severance() -> None:
    zh = computed("severance", "在公司干了两年半，月薪8000，公司违法辞退我", "zh")
    assert zh.text.index("6个月工资") < zh.text.index("3个月工资")
    assert "48,000元" in zh.text
    assert "劳动合同法 第八十七条" in zh.citations
    en = computed("severance", "I was unlawfully fired after two and a half years, pay 8k", "en")
    assert "6 months' wages" in en.text
    assert "RMB 48,000" in en.text
    assert "劳动合同法 第八十七条" not in computed("severance", "工作两年半", "zh").citations


def test_the_twelve_year_cap_is_explained() -> None:
    result = computed("severance", "月薪3万，社平工资8000，工作了15年", "zh")
    assert result.text.startswith("按你工作15年，经济补偿是12个月工资。")
    assert "288,000元" in result.text


def test_probation_cap_run() -> None:
    result = computed("probation_cap", "签了2年合同，试用期3个月，合法吗？", "zh")
    assert result.text.startswith("按你2年的劳动合同，试用期最长2个月。")
    assert "超过" in result.text.split("\n")[0]
    assert "第十九条" in result.text.split("\n")[1]
    en = computed("probation_cap", "My contract is three months. How long can probation be?", "en")
    assert en.text.startswith(
        "For a labour contract of 3 months, probation can be at most 1 month."
    )
    none = computed("probation_cap", "合同不到三个月，能约定试用期吗", "zh")
    assert "不得约定试用期" in none.text.split("\n")[0]
    assert "6个月" in computed("probation_cap", "无固定期限合同，试用期最长多久", "zh").text
    task = computed("probation_cap", "以完成一定工作任务为期限的合同有试用期吗", "zh")
    assert isinstance(task.result, calc.ProbationCap)
    assert task.result.cap_months == 0


def test_double_wage_run() -> None:
    result = computed("unsigned_contract_double_wage", "入职5个月了，一直没签合同，月薪6000", "zh")
    assert "4个月工资" in result.text.split("\n")[0]
    assert "24,000元" in result.text
    assert "第八十二条" in result.text.split("\n")[-1]
    year = computed("unsigned_contract_double_wage", "I worked 14 months without a contract", "en")
    assert "11 months' wages" in year.text
    assert "open-ended" in year.text
    first = computed("unsigned_contract_double_wage", "入职一个月，还没签合同", "zh")
    assert isinstance(first.result, calc.DoubleWage)
    assert first.result.extra_months == 0
    assert "劳动合同法 第十条" in first.citations


def test_training_penalty_run_reads_the_brief_example() -> None:
    result = computed("training_penalty", "服务期4年 已经干了1年 培训费4万", "zh")
    assert "违约金最多30,000元" in result.text
    claim = computed(
        "training_penalty", "公司花了3万送我去培训，签了3年服务期，干了1年，公司要我赔3万", "zh"
    )
    assert "20,000元" in claim.text
    assert "超过了这个上限" in claim.text
    en = computed(
        "training_penalty", "Training cost 40,000 yuan, service period 4 years, served 1 year", "en"
    )
    assert "at most RMB 30,000" in en.text


def test_overtime_run() -> None:
    result = computed("overtime_pay", "周末加班16小时，平时加班20小时，时薪50元", "zh")
    assert result.text.startswith("按你的加班时间，加班费合计至少3,100元")
    en = computed("overtime_pay", "I worked 20 hours overtime on weekdays", "en")
    assert "150%" in en.text
    assert "30 hours" in en.text
    days = computed("overtime_pay", "国庆加班3天，月薪8000", "zh")
    assert "9天" in days.text
    assert "12333" in days.text  # the base is set locally: ask, the document says


def test_overtime_in_days_is_paid_at_the_daily_wage() -> None:
    result = computed("overtime_pay", "我每天工资300，周末加班2天", "zh")
    assert "1,200元" in result.text
    en = computed("overtime_pay", "I worked 3 days over Spring Festival, daily wage 300 yuan", "en")
    assert "RMB 2,700" in en.text
    # a monthly wage is no base the documents convert: the amount is not made up
    monthly = computed("overtime_pay", "周末加班2天，月薪6000", "zh")
    assert "元（工资的" not in monthly.text
    assert "4天" in monthly.text


def test_a_contract_signed_late_counts_the_months_before_it() -> None:
    zh = computed("unsigned_contract_double_wage", "入职7个月后才签合同", "zh")
    en = computed(
        "unsigned_contract_double_wage", "They only signed a contract after 7 months", "en"
    )
    for result in (zh, en):
        assert isinstance(result.result, calc.DoubleWage)
        assert result.result.extra_months == 6


@pytest.mark.parametrize(
    ("text", "arrears"),
    [
        ("公司拖欠了我三个月工资", True),
        ("工资一直没发", True),
        ("they haven't paid my salary for two months", True),
        ("I have not been paid since May", True),
        ("公司拖欠社保", False),
        ("they never paid my social insurance", False),
    ],
)
def test_unpaid_wages_are_told_from_other_violations(text: str, arrears: bool) -> None:
    assert qty.mentions(text, "wage_arrears") is arrears


def test_probation_wage_run() -> None:
    result = computed("probation_wage_floor", "合同约定工资6000，试用期只给4000，合法吗？", "zh")
    assert "4,800元" in result.text
    assert "低于这个标准" in result.text
    assert "最低工资" in result.text
    discount = computed("probation_wage_floor", "月薪6000，试用期打八折", "zh")
    assert isinstance(discount.result, calc.ProbationWageFloor)
    assert discount.result.below is False
    en = computed(
        "probation_wage_floor", "My agreed salary is RMB 8,000; probation pay 6,000", "en"
    )
    assert "RMB 6,400" in en.text
    assert "below this floor" in en.text


def test_arbitration_run() -> None:
    result = computed("arbitration_deadline", "我2024年3月5日被辞退", "zh")
    assert "2025年3月5日" in result.text
    assert "第二十七条" in result.text
    en = computed("arbitration_deadline", "I was dismissed on 29 February 2024", "en")
    assert "28 February 2025" in en.text
    employed = computed("arbitration_deadline", "公司拖欠我工资，我还在职", "zh")
    assert isinstance(employed.result, calc.ArbitrationDeadline)
    assert employed.result.deadline is None
    left = computed(
        "arbitration_deadline", "I left on 2024-06-30 and they still owe me wages", "en"
    )
    assert "30 June 2025" in left.text


# -- run: asking for what is missing ------------------------------------------------------------


@pytest.mark.parametrize("name", CALCULATORS)
@pytest.mark.parametrize(
    ("lang", "text"), [("zh", "你好，想算一下"), ("en", "hi, can you work it out")]
)
def test_every_calculator_asks_in_the_graduates_language(
    name: CalculatorName, lang: Lang, text: str
) -> None:
    result = needs(name, text, lang)
    assert result.missing
    assert bool(CJK.search(result.question)) is (lang == "zh")
    assert "{" not in result.question


def test_a_missing_input_is_asked_for_and_taken_from_the_next_message() -> None:
    first = needs("severance", "公司要辞退我，补偿怎么算？", "zh")
    assert first.missing == ("service_length",)
    answer = computed("severance", "3年7个月", "zh", "公司要辞退我，补偿怎么算？")
    assert answer.text.startswith("按你工作3年7个月，经济补偿是4个月工资。")
    question = "My employer wants me to pay back training costs. How much?"
    assert needs("training_penalty", question, "en").missing == (
        "training_cost",
        "service_period",
        "time_served",
    )
    earlier = "The training cost 40,000 yuan and the service period is 4 years"
    assert needs("training_penalty", earlier, "en", question).missing == ("time_served",)
    done = computed("training_penalty", "1 year", "en", earlier, question)
    assert "at most RMB 30,000" in done.text


def test_a_vague_length_is_asked_for_exactly() -> None:
    vague = needs("severance", "我干了3年多被辞退", "zh")
    assert vague.missing == ("service_length_exact",)
    assert "3年多" in vague.question
    exact = computed("severance", "3年8个月", "zh", "我干了3年多被辞退")
    assert "4个月工资" in exact.text
    # "一年多" without a contract is eleven months however long it was
    assert "11个月工资" in computed("unsigned_contract_double_wage", "一年多没签合同", "zh").text


def test_the_newest_message_wins() -> None:
    result = computed("severance", "不对，是4年", "zh", "我工作了3年，月薪1万")
    assert result.text.startswith("按你工作4年，经济补偿是4个月工资。")
    assert "40,000元" in result.text


def test_overtime_kind_and_dates_are_asked_for() -> None:
    assert needs("overtime_pay", "加班20小时", "zh").missing == ("overtime_kind",)
    kind = computed("overtime_pay", "周末", "zh", "加班了16小时，加班费怎么算")
    assert "200%" in kind.text
    assert needs("overtime_pay", "每天加班2小时", "zh").missing == ("overtime_total",)
    assert needs("arbitration_deadline", "3月5日被辞退的", "zh").missing == ("full_date",)
    assert needs("arbitration_deadline", "公司拖欠我工资", "zh").missing == ("employment_status",)
    after = computed("arbitration_deadline", "2024年3月5日", "zh", "公司拖欠工资，我已经离职了")
    assert "2025年3月5日" in after.text


# -- the messages -------------------------------------------------------------------------------


def test_the_calculator_messages_are_loaded_in_both_languages() -> None:
    assert "calculators.yaml" in MESSAGE_FILES
    keys = [k for k in MESSAGES.names() if k.startswith("calc_")]
    assert len(keys) >= 60
    for key in keys:
        assert MESSAGES.template(key, "zh") != MESSAGES.template(key, "en"), key
        # a Chinese text with English words in it was not translated
        assert not re.search("[A-Za-z]", re.sub(r"\{\w+\}", "", MESSAGES.template(key, "zh")))
    assert (BUNDLED_PROMPTS_DIR / "calculators.yaml").is_file()


def test_every_rule_line_names_its_article() -> None:
    rules = [k for k in MESSAGES.names() if k.startswith("calc_rule_")]
    assert len(rules) == 8
    for key in rules:
        for lang in ("zh", "en"):
            assert re.search(r"第[一二三四五六七八九十]+条", MESSAGES.template(key, lang)), key


_ALPHABET = (
    "0123456789.,万千年个月天周半多零一二两三四五六七八九十小时元块号日 ，。kKwhoursyearmonth"
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(CALCULATORS),
    text=st.text(alphabet=_ALPHABET, max_size=40),
    cue=st.sampled_from(["", "工作了", "月薪", "服务期", "培训费", "周末加班", "离职", "合同"]),
    lang=st.sampled_from(["zh", "en"]),
)
def test_any_message_gives_an_answer_or_a_question(
    name: CalculatorName, text: str, cue: str, lang: Lang
) -> None:
    outcome = ask(name, cue + text, lang, text)
    if isinstance(outcome, Computed):
        assert outcome.citations
        assert len(outcome.text.split("\n")) >= 2
        assert "{" not in outcome.text
    else:
        assert outcome.missing
        assert outcome.question
