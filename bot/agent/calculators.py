"""Rights calculators: the number a graduate asks for, with the rule and the article it
comes from.

Seven pure functions compute from numbers (``probation_cap``, ``severance``,
``unsigned_contract_double_wage``, ``training_penalty``, ``overtime_pay``,
``probation_wage_floor``, ``arbitration_deadline``); each result carries its figures and the
``Rule`` it applied (a message key in ``prompts/calculators.yaml`` and the law and article).
``run`` reads the inputs from the graduate's message and the earlier ones
(``bot.agent.quantities``), and gives either ``Computed`` (the opening of the answer, the
number first, then the rule and its citation) or ``NeedsInput`` (what is missing and the
question that asks for it), in the graduate's language.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.agent import quantities as qty
from bot.agent.quantities import Quantity, Slot, gather
from bot.kb.cards import CalculatorName
from bot.kb.models import Lang
from bot.prompts import Messages

OvertimeKind = Literal["weekday", "rest_day", "holiday"]
OVERTIME_PERCENT: Mapping[OvertimeKind, int] = {"weekday": 150, "rest_day": 200, "holiday": 300}
"""劳动法 第四十四条: pay for overtime, in percent of the normal wage."""
PROBATION_WAGE_PERCENT = 80
"""劳动合同法 第二十条: probation pay is at least 80% of the agreed wage."""
DOUBLE_WAGE_MAX_MONTHS = 11.0
SEVERANCE_CAP_YEARS = 12.0
_EPS = 1e-6


@dataclass(frozen=True)
class Rule:
    key: str
    """The message (prompts/calculators.yaml) that states the rule."""
    citations: tuple[str, ...]
    """The law and article, e.g. "劳动合同法 第四十七条"."""


@dataclass(frozen=True)
class ProbationCap:
    term_months: float | None
    open_ended: bool
    task_based: bool
    cap_months: float
    """The longest probation allowed; 0: none may be set."""
    stated_months: float | None
    exceeds: bool | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Severance:
    service_months: float
    months_of_wages: float
    """N: one per full year, a remainder of six months or more as one, less as a half (capped
    at twelve when the wage is above three times the local average)."""
    payable_months: float
    """N, or 2N for an unlawful dismissal."""
    unlawful: bool
    monthly_wage: float | None
    average_wage: float | None
    base_wage: float | None
    """The wage the months are paid at: the monthly wage, or three times the average."""
    capped: bool
    amount: float | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class DoubleWage:
    months_without_contract: float
    extra_months: float
    """Months of extra wage: from the second month, at most eleven."""
    monthly_wage: float | None
    amount: float | None
    deemed_open_ended: bool
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class TrainingPenalty:
    training_cost: float
    service_period_months: float
    served_months: float
    unserved_months: float
    max_penalty: float
    claimed: float | None
    claim_exceeds: bool | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class OvertimeEntry:
    kind: OvertimeKind
    quantity: float
    unit: Literal["hour", "day"] = "hour"


@dataclass(frozen=True)
class OvertimeLine:
    entry: OvertimeEntry
    percent: int
    equivalent: float
    """The normal pay it is worth, in the entry's unit (20 hours at 150% → 30)."""
    amount: float | None


@dataclass(frozen=True)
class OvertimePay:
    lines: tuple[OvertimeLine, ...]
    hourly_wage: float | None
    daily_wage: float | None
    total_equivalent: float | None
    """When every line has the same unit."""
    total_amount: float | None
    rules: tuple[Rule, ...]

    @property
    def unit(self) -> Literal["hour", "day"]:
        return self.lines[0].entry.unit


@dataclass(frozen=True)
class ProbationWageFloor:
    agreed_wage: float
    floor: float
    probation_pay: float | None
    below: bool | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class ArbitrationDeadline:
    case: Literal["general", "wage_after_end", "wage_in_employment"]
    start: dt.date | None
    deadline: dt.date | None
    """None while wage arrears are claimed during employment (no time limit)."""
    rules: tuple[Rule, ...]


Result = (
    ProbationCap
    | Severance
    | DoubleWage
    | TrainingPenalty
    | OvertimePay
    | ProbationWageFloor
    | ArbitrationDeadline
)


@dataclass(frozen=True)
class Computed:
    calculator: CalculatorName
    text: str
    """The answer's opening: the number first, then a line with the rule and its citation."""
    result: Result
    citations: tuple[str, ...]


@dataclass(frozen=True)
class NeedsInput:
    calculator: CalculatorName
    missing: tuple[str, ...]
    """Input names: contract_term, service_length, training_cost, known_date, ..."""
    question: str


CalcOutcome = Computed | NeedsInput


# -- the calculators ----------------------------------------------------------------------------

_PROBATION_RULE = Rule("calc_rule_probation_cap", ("劳动合同法 第十九条",))


def probation_cap(
    term_months: float | None,
    *,
    open_ended: bool = False,
    task_based: bool = False,
    stated_months: float | None = None,
) -> ProbationCap:
    """劳动合同法 第十九条: under 3 months or a task-based contract, none; 3 months to under
    1 year, 1 month; 1 to under 3 years, 2 months; 3 years or more, or open-ended, 6 months."""
    if task_based:
        cap = 0.0
    elif open_ended:
        cap = 6.0
    elif term_months is None:
        raise ValueError("a contract term, an open-ended or a task-based contract is needed")
    else:
        cap = _probation_cap_months(term_months)
    exceeds = None if stated_months is None else stated_months > cap + _EPS
    return ProbationCap(
        term_months, open_ended, task_based, cap, stated_months, exceeds, (_PROBATION_RULE,)
    )


def _probation_cap_months(term: float) -> float:
    if term < 3 - _EPS:
        return 0.0
    if term < 12 - _EPS:
        return 1.0
    if term < 36 - _EPS:
        return 2.0
    return 6.0


def severance_months(service_months: float) -> float:
    """劳动合同法 第四十七条: one month per full year; a remainder of six months or more counts
    as a year, a shorter one as half a month."""
    years = math.floor(service_months / 12 + _EPS)
    rest = service_months - 12 * years
    if rest >= 6 - _EPS:
        return years + 1.0
    return years + 0.5 if rest > _EPS else float(years)


def severance(
    service_months: float,
    monthly_wage: float | None = None,
    average_wage: float | None = None,
    *,
    unlawful: bool = False,
) -> Severance:
    """Economic compensation (第四十七条), with the three-times-average cap (at most twelve
    years) when the local average wage is known, and twice that for an unlawful dismissal
    (第八十七条)."""
    months = severance_months(service_months)
    base = monthly_wage
    capped = False
    if monthly_wage is not None and average_wage and monthly_wage > 3 * average_wage + _EPS:
        base, capped = 3 * average_wage, True
        months = min(months, SEVERANCE_CAP_YEARS)
    payable = 2 * months if unlawful else months
    rules = [Rule("calc_rule_severance", ("劳动合同法 第四十七条",))]
    if unlawful:
        rules.append(Rule("calc_rule_severance_unlawful", ("劳动合同法 第八十七条",)))
    return Severance(
        service_months=service_months,
        months_of_wages=months,
        payable_months=payable,
        unlawful=unlawful,
        monthly_wage=monthly_wage,
        average_wage=average_wage,
        base_wage=base,
        capped=capped,
        amount=None if base is None else payable * base,
        rules=tuple(rules),
    )


def unsigned_contract_double_wage(
    months_without_contract: float, monthly_wage: float | None = None
) -> DoubleWage:
    """劳动合同法 第八十二条 (实施条例 第六、七条): an extra month's wage for each month without a
    written contract from the second month on, at most eleven."""
    extra = min(max(months_without_contract - 1.0, 0.0), DOUBLE_WAGE_MAX_MONTHS)
    citations: tuple[str, ...] = (
        "劳动合同法 第八十二条",
        "劳动合同法实施条例 第六条",
        "劳动合同法实施条例 第七条",
    )
    if extra <= _EPS:
        citations = ("劳动合同法 第十条", *citations)
    return DoubleWage(
        months_without_contract=months_without_contract,
        extra_months=extra,
        monthly_wage=monthly_wage,
        amount=None if monthly_wage is None else extra * monthly_wage,
        deemed_open_ended=months_without_contract >= 12 - _EPS,
        rules=(Rule("calc_rule_double_wage", citations),),
    )


def training_penalty(
    training_cost: float,
    service_period_months: float,
    served_months: float,
    claimed: float | None = None,
) -> TrainingPenalty:
    """劳动合同法 第二十二条: at most the training cost, and at most the share of it for the
    unserved part of the service period."""
    if service_period_months <= 0:
        raise ValueError("the service period must be positive")
    unserved = max(service_period_months - served_months, 0.0)
    maximum = training_cost * unserved / service_period_months
    return TrainingPenalty(
        training_cost=training_cost,
        service_period_months=service_period_months,
        served_months=served_months,
        unserved_months=unserved,
        max_penalty=maximum,
        claimed=claimed,
        claim_exceeds=None if claimed is None else claimed > maximum + 0.005,
        rules=(Rule("calc_rule_training_penalty", ("劳动合同法 第二十二条",)),),
    )


def overtime_pay(
    entries: Sequence[OvertimeEntry],
    hourly_wage: float | None = None,
    daily_wage: float | None = None,
) -> OvertimePay:
    """劳动法 第四十四条: at least 150% (working days), 200% (rest days without time off in
    lieu) and 300% (statutory holidays) of the normal wage; amounts where the hourly wage (for
    hours) or the daily wage (for whole days) is known. The documents give no conversion from
    a monthly wage (the base is set locally), so none is made."""
    if not entries:
        raise ValueError("no overtime given")
    lines = []
    for entry in entries:
        percent = OVERTIME_PERCENT[entry.kind]
        wage = hourly_wage if entry.unit == "hour" else daily_wage
        amount = None if wage is None else entry.quantity * wage * percent / 100
        lines.append(OvertimeLine(entry, percent, entry.quantity * percent / 100, amount))
    same_unit = len({line.entry.unit for line in lines}) == 1
    amounts = [line.amount for line in lines if line.amount is not None]
    return OvertimePay(
        lines=tuple(lines),
        hourly_wage=hourly_wage,
        daily_wage=daily_wage,
        total_equivalent=sum(line.equivalent for line in lines) if same_unit else None,
        total_amount=sum(amounts) if len(amounts) == len(lines) else None,
        rules=(Rule("calc_rule_overtime", ("劳动法 第四十四条",)),),
    )


def probation_wage_floor(
    agreed_wage: float, probation_pay: float | None = None
) -> ProbationWageFloor:
    """劳动合同法 第二十条: at least 80% of the agreed wage (and never below the local minimum
    wage or the lowest wage for the same post, which the calculator cannot know)."""
    floor = agreed_wage * PROBATION_WAGE_PERCENT / 100
    below = None if probation_pay is None else probation_pay < floor - 0.005
    return ProbationWageFloor(
        agreed_wage, floor, probation_pay, below,
        (Rule("calc_rule_probation_wage", ("劳动合同法 第二十条",)),),
    )  # fmt: skip


def arbitration_deadline(
    start: dt.date | None, *, wage_arrears: bool = False, still_employed: bool = False
) -> ArbitrationDeadline:
    """劳动争议调解仲裁法 第二十七条: one year from the day the worker knew (or should have
    known) of the violation; wage arrears during employment are not limited, and after the
    employment ends they run one year from its end (``start`` is then the end)."""
    rules = (Rule("calc_rule_arbitration", ("劳动争议调解仲裁法 第二十七条",)),)
    if wage_arrears and still_employed:
        return ArbitrationDeadline("wage_in_employment", None, None, rules)
    if start is None:
        raise ValueError("the date the time limit runs from is needed")
    case: Literal["general", "wage_after_end"] = "wage_after_end" if wage_arrears else "general"
    return ArbitrationDeadline(case, start, one_year_after(start), rules)


def one_year_after(day: dt.date) -> dt.date:
    """The same day a year later (29 February → 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return dt.date(day.year + 1, 2, 28)


# -- reading the inputs -------------------------------------------------------------------------


# -- writing the answer -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Writer:
    messages: Messages
    lang: Lang
    lines: list[str] = field(default_factory=list)

    def say(self, key: str, **values: object) -> None:
        self.lines.append(self.messages.get(key, self.lang, **values))

    def text(self, rules: Sequence[Rule]) -> str:
        head = "".join(self.lines) if self.lang == "zh" else " ".join(self.lines)
        rule_lines = [self.messages.get(rule.key, self.lang, **_RULE_VALUES) for rule in rules]
        return "\n".join([head, *rule_lines])

    def number(self, value: float, places: int = 1) -> str:
        rounded = round(value, places)
        if abs(rounded - round(rounded)) < _EPS:
            return f"{round(rounded):,}"
        return f"{rounded:,.{places}f}".rstrip("0").rstrip(".")

    def money(self, value: float) -> str:
        return self.messages.get("calc_money", self.lang, n=self.number(value, 2))

    def unit(self, value: float, one: str, many: str) -> str:
        key = one if abs(value - 1) < _EPS else many
        return self.messages.get(key, self.lang, n=self.number(value))

    def duration(self, q: Quantity | float) -> str:
        months = q if isinstance(q, float | int) else q.value
        days = round(months * 30)
        years, rest = divmod(days, 360)
        whole, days = divmod(rest, 30)
        parts = [
            self.unit(n, one, many)
            for n, one, many in (
                (years, "calc_year_one", "calc_years"),
                (whole, "calc_month_one", "calc_months"),
                (days, "calc_day_one", "calc_days"),
            )
            if n
        ] or [self.unit(0, "calc_month_one", "calc_months")]
        keys = {2: "calc_join_two", 3: "calc_join_three"}
        text = (
            parts[0]
            if len(parts) == 1
            else self.messages.get(
                keys[len(parts)], self.lang, **dict(zip("abc", parts, strict=False))
            )
        )
        if isinstance(q, Quantity) and q.approximate:
            return self.messages.get("calc_more_than", self.lang, value=text)
        if isinstance(q, Quantity) and q.less:
            return self.messages.get("calc_less_than", self.lang, value=text)
        return text

    def wage_months(self, value: float) -> str:
        if abs(value - 0.5) < _EPS:
            return self.messages.get("calc_wage_half_month", self.lang)
        return self.unit(value, "calc_wage_month_one", "calc_wage_months")

    def date(self, day: dt.date) -> str:
        names = self.messages.get("calc_month_names", self.lang).split()
        return self.messages.get(
            "calc_date", self.lang, year=day.year, day=day.day,
            month_name=names[day.month - 1],
        )  # fmt: skip


_RULE_VALUES = {kind: f"{percent}" for kind, percent in OVERTIME_PERCENT.items()}


def _ask(
    name: CalculatorName, w: _Writer, missing: Sequence[tuple[str, dict[str, str]]]
) -> NeedsInput:
    questions = [w.messages.get(f"calc_ask_{item}", w.lang, **values) for item, values in missing]
    if len(questions) == 1:
        question = questions[0]
    else:
        items = [
            w.messages.get("calc_ask_item", w.lang, n=i, question=q)
            for i, q in enumerate(questions, 1)
        ]
        question = "\n".join([w.messages.get("calc_ask_intro", w.lang), *items])
    return NeedsInput(name, tuple(item for item, _ in missing), question)


def _done(name: CalculatorName, w: _Writer, result: Result) -> Computed:
    citations = tuple(c for rule in result.rules for c in rule.citations)
    return Computed(name, w.text(result.rules), result, citations)


# -- one runner per calculator ------------------------------------------------------------------


def _run_probation_cap(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    found = gather(
        texts,
        [Slot("term", "duration", ("contract",), True), Slot("stated", "duration", ("probation",))],
    )
    task, open_ended = qty.said(texts, "task_based"), qty.said(texts, "open_ended")
    term = found.get("term")
    stated = found["stated"].value if "stated" in found else None
    if term is None and not (task or open_ended):
        return _ask("probation_cap", w, [("contract_term", {})])
    if term is not None and not (task or open_ended):
        low, high = qty.bounds(term)
        if _probation_cap_months(low) != _probation_cap_months(high):
            return _ask("probation_cap", w, [("contract_term", {})])
    result = probation_cap(
        qty.bounds(term)[0] if term else None,
        open_ended=open_ended, task_based=task, stated_months=stated,
    )  # fmt: skip
    cap = w.unit(result.cap_months, "calc_month_one", "calc_months")
    if task:
        w.say("calc_probation_cap_task")
    elif open_ended:
        w.say("calc_probation_cap_open_ended", cap=cap)
    elif term is not None:
        key = "calc_probation_cap" if result.cap_months else "calc_probation_cap_none"
        w.say(key, term=w.duration(term), cap=cap)
    if result.exceeds is not None and stated is not None:
        key = "calc_probation_cap_exceeds" if result.exceeds else "calc_probation_cap_within"
        w.say(key, stated=w.duration(stated))
    return _done("probation_cap", w, result)


def _run_severance(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    found = gather(
        texts,
        [
            Slot("service", "duration", ("worked",), True),
            Slot("wage", "money", ("wage",), True),
            Slot("average", "money", ("average",)),
        ],
    )
    service = found.get("service")
    if service is None:
        return _ask("severance", w, [("service_length", {})])
    low, high = qty.bounds(service)
    if severance_months(low) != severance_months(high):
        return _ask("severance", w, [("service_length_exact", {"service": w.duration(service)})])
    wage = found["wage"].value if "wage" in found else None
    average = found["average"].value if "average" in found else None
    result = severance(low, wage, average, unlawful=qty.said(texts, "unlawful"))
    months = w.wage_months(result.months_of_wages)
    if result.unlawful:
        w.say(
            "calc_severance_unlawful", service=w.duration(service),
            wages=w.wage_months(result.payable_months), base_wages=months,
        )  # fmt: skip
    else:
        w.say("calc_severance", service=w.duration(service), wages=months)
    if result.amount is not None and wage is not None:
        if result.capped and average is not None and result.base_wage is not None:
            w.say(
                "calc_severance_amount_capped", wage=w.money(wage), average=w.money(average),
                base=w.money(result.base_wage), amount=w.money(result.amount),
            )  # fmt: skip
        else:
            w.say("calc_severance_amount", wage=w.money(wage), amount=w.money(result.amount))
    return _done("severance", w, result)


def _run_double_wage(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    name: CalculatorName = "unsigned_contract_double_wage"
    found = gather(
        texts,
        [
            Slot("months", "duration", ("unsigned", "worked"), True),
            Slot("wage", "money", ("wage",), True),
        ],
    )
    months = found.get("months")
    if months is None:
        return _ask(name, w, [("months_without_contract", {})])
    low, high = qty.bounds(months)
    if (
        abs(
            unsigned_contract_double_wage(low).extra_months
            - unsigned_contract_double_wage(high).extra_months
        )
        > _EPS
    ):
        return _ask(name, w, [("months_without_contract_exact", {"months": w.duration(months)})])
    wage = found["wage"].value if "wage" in found else None
    result = unsigned_contract_double_wage(low, wage)
    if result.extra_months <= _EPS:
        w.say("calc_double_wage_none", months=w.duration(months))
    else:
        w.say(
            "calc_double_wage", months=w.duration(months), extra=w.wage_months(result.extra_months)
        )
        if result.amount is not None and wage is not None:
            w.say("calc_double_wage_amount", wage=w.money(wage), amount=w.money(result.amount))
    if result.deemed_open_ended:
        w.say("calc_double_wage_open_ended")
    return _done(name, w, result)


def _run_training_penalty(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    name: CalculatorName = "training_penalty"
    found = gather(
        texts,
        [
            Slot("cost", "money", ("training",), True),
            Slot("claimed", "money", ("penalty",)),
            Slot("period", "duration", ("service_period",), True),
            Slot("served", "duration", ("worked",), True),
        ],
    )
    needed = (("cost", "training_cost"), ("period", "service_period"), ("served", "time_served"))
    missing: list[tuple[str, dict[str, str]]] = [
        (item, {})
        for slot, item in needed
        if slot not in found or (found[slot].value <= 0 and slot != "served")
    ]
    if missing:
        return _ask(name, w, missing)
    cost, period, served = found["cost"].value, qty.bounds(found["period"])[0], found["served"]
    claimed = found["claimed"].value if "claimed" in found else None
    low, high = qty.bounds(served)
    if (
        abs(
            training_penalty(cost, period, low).max_penalty
            - training_penalty(cost, period, high).max_penalty
        )
        > 0.005
    ):
        return _ask(name, w, [("time_served_exact", {"served": w.duration(served)})])
    result = training_penalty(cost, period, low, claimed)
    if result.unserved_months <= _EPS:
        w.say("calc_training_penalty_served", period=w.duration(found["period"]))
    else:
        w.say(
            "calc_training_penalty", cost=w.money(cost), period=w.duration(found["period"]),
            served=w.duration(served), amount=w.money(result.max_penalty),
            unserved=w.duration(result.unserved_months),
        )  # fmt: skip
    if result.claim_exceeds is not None and claimed is not None:
        key = (
            "calc_training_claim_exceeds" if result.claim_exceeds else "calc_training_claim_within"
        )
        w.say(key, claimed=w.money(claimed))
    return _done(name, w, result)


_OVERTIME_KINDS: tuple[OvertimeKind, ...] = ("weekday", "rest_day", "holiday")


def _overtime_found(text: str) -> tuple[list[tuple[Quantity, str | None]], bool]:
    """The hours (and days) of overtime in one message with their kinds, and whether any
    is said per day or week."""
    pairs = qty.labelled(text, "hours") + [
        (q, cue) for q, cue in qty.labelled(text, "duration", qty.HOURS_CUES) if q.unit == "day"
    ]
    return pairs, any(q.unit == "per_day" for q, _ in pairs)


def _run_overtime(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    name: CalculatorName = "overtime_pay"
    per_kind: dict[OvertimeKind, list[Quantity]] = {}
    uncued: list[Quantity] = []
    for text in texts:
        pairs, per_day = _overtime_found(text)
        if per_day:
            return _ask(name, w, [("overtime_total", {})])
        for kind in _OVERTIME_KINDS:
            if kind not in per_kind and any(cue == kind for _, cue in pairs):
                per_kind[kind] = [q for q, cue in pairs if cue == kind]
        if not uncued:
            uncued = [q for q, cue in pairs if cue is None]
    if not per_kind and uncued:
        named = next((k for text in texts for k in qty.cue_named(text, "hours")), None)
        if named is None:
            return _ask(name, w, [("overtime_kind", {})])
        per_kind[_as_kind(named)] = uncued
    if not per_kind:
        return _ask(name, w, [("overtime_hours", {})])
    entries = []
    for kind in _OVERTIME_KINDS:
        for unit in ("hour", "day"):
            total = sum(
                q.value * 30 if unit == "day" else q.value
                for q in per_kind.get(kind, [])
                if (q.kind == "duration") == (unit == "day")
            )
            if total > _EPS:
                entries.append(OvertimeEntry(kind, total, unit))
    wages = gather(
        texts,
        [
            Slot("hourly", "money", ("hourly",)),
            Slot("daily", "money", ("daily",)),
            Slot("wage", "money", ("wage",)),
        ],
    )
    rates = {
        unit: wages[k].value for unit, k in (("hour", "hourly"), ("day", "daily")) if k in wages
    }
    result = overtime_pay(entries, rates.get("hour"), rates.get("day"))
    if len(result.lines) > 1:
        if result.total_amount is not None:
            w.say("calc_overtime_total_amount", amount=w.money(result.total_amount))
        elif result.total_equivalent is not None:
            w.say("calc_overtime_total", equivalent=_time(w, result.total_equivalent, result.unit))
    for line in result.lines:
        values = {
            "kind": w.messages.get(f"calc_overtime_{line.entry.kind}", w.lang),
            "quantity": _time(w, line.entry.quantity, line.entry.unit),
            "percent": line.percent,
            "equivalent": _time(w, line.equivalent, line.entry.unit),
        }
        rate = rates.get(line.entry.unit)
        if line.amount is not None and rate is not None:
            key = f"calc_overtime_amount_{line.entry.unit}"
            w.say(key, rate=w.money(rate), amount=w.money(line.amount), **values)
        else:
            w.say("calc_overtime", **values)
    if result.total_amount is None and "wage" in wages:
        w.say("calc_overtime_monthly_note", wage=w.money(wages["wage"].value))
    return _done(name, w, result)


def _as_kind(cue: str) -> OvertimeKind:
    return next(kind for kind in _OVERTIME_KINDS if kind == cue)


def _time(w: _Writer, value: float, unit: Literal["hour", "day"]) -> str:
    if unit == "day":
        return w.unit(value, "calc_day_one", "calc_days")
    return w.unit(value, "calc_hour_one", "calc_hours")


def _run_probation_wage(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    name: CalculatorName = "probation_wage_floor"
    found = gather(
        texts,
        [Slot("agreed", "money", ("wage",), True), Slot("paid", "money", ("probation_pay",))],
    )
    if "agreed" not in found:
        return _ask(name, w, [("agreed_wage", {})])
    agreed = found["agreed"].value
    paid = found["paid"].value if "paid" in found else None
    if paid is None:
        percent = next((p for text in texts if (p := qty.parse_percent(text)) is not None), None)
        paid = None if percent is None else agreed * percent / 100
    result = probation_wage_floor(agreed, paid)
    w.say(
        "calc_probation_wage", agreed=w.money(agreed), floor=w.money(result.floor),
        percent=PROBATION_WAGE_PERCENT,
    )  # fmt: skip
    if result.below is not None and paid is not None:
        key = "calc_probation_wage_below" if result.below else "calc_probation_wage_ok"
        w.say(key, paid=w.money(paid), percent=PROBATION_WAGE_PERCENT)
    return _done(name, w, result)


def _run_arbitration(texts: Sequence[str], w: _Writer) -> CalcOutcome:
    name: CalculatorName = "arbitration_deadline"
    found = gather(
        texts,
        [Slot("known", "date", ("known", "end"), True), Slot("end", "date", ("end",))],
    )
    arrears = qty.said(texts, "wage_arrears")
    status = next(
        (s for text in texts for s in ("still_employed", "left") if qty.mentions(text, s)),
        None,
    )
    if arrears and status is None and "end" in found:
        status = "left"
    if arrears and status == "still_employed":
        result = arbitration_deadline(None, wage_arrears=True, still_employed=True)
        w.say("calc_arbitration_wage_employed")
        return _done(name, w, result)
    if arrears and status is None:
        return _ask(name, w, [("employment_status", {})])
    start = found.get("end") or found.get("known") if arrears else found.get("known")
    if start is None:
        return _ask(name, w, [("end_date" if arrears else "known_date", {})])
    day = start.date.complete() if start.date else None
    if day is None:
        return _ask(name, w, [("full_date", {"date": start.text})])
    result = arbitration_deadline(day, wage_arrears=arrears)
    key = "calc_arbitration_wage_after" if arrears else "calc_arbitration"
    w.say(key, start=w.date(day), deadline=w.date(result.deadline or day))
    w.say("calc_arbitration_restart")
    return _done(name, w, result)


_RUNNERS: Mapping[CalculatorName, Callable[[Sequence[str], _Writer], CalcOutcome]] = {
    "probation_cap": _run_probation_cap,
    "severance": _run_severance,
    "unsigned_contract_double_wage": _run_double_wage,
    "training_penalty": _run_training_penalty,
    "overtime_pay": _run_overtime,
    "probation_wage_floor": _run_probation_wage,
    "arbitration_deadline": _run_arbitration,
}


def run(
    name: CalculatorName,
    text: str,
    lang: Lang,
    earlier: Sequence[str] = (),
    *,
    messages: Messages | None = None,
) -> CalcOutcome:
    """Compute ``name`` from the graduate's message ``text`` and their ``earlier`` messages
    (newest first; an input given there counts unless the new message gives it again), or
    say what is missing and ask for it, in ``lang``."""
    writer = _Writer(messages or Messages.load(), lang)
    return _RUNNERS[name]([text, *earlier], writer)
