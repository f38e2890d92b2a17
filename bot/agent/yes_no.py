"""Yes or no first: a yes/no question ("合法吗？", "Can my employer …?") is answered "不可以。" /
"No." before the sentence that says so, when that sentence's polarity settles it.

The verdict is read from the lead sentence — what it rules: forbids, voids or says it is
not needed (不得, 禁止, 无效, 不需要, may not), or permits or obliges (可以, 应当, may, must) —
against what the question asks (may it be done, must it, is it legal, is it illegal) and
whether the question is itself negated ("不签合同可以吗"). A sentence that rules both ways,
hedges (一般, usually) or carries another negation settles nothing, and the answer is as
before. Measured against the answer cards, whose vetted answers open with their verdict and
quote the document's sentence (``tests/agent/test_yes_no.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.agent.lead_rank import is_yes_no
from bot.kb.lexical import EN_STOP_WORDS
from bot.kb.models import Lang
from bot.prompts import Messages

Verdict = Literal["yes", "no"]


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(alternatives), re.IGNORECASE)


# The evidence: what the sentence rules. Checked in this order, each match blanked before
# the next ("不可以" is a prohibition, not a permission).
_PROHIBIT = _words(
    r"不得|禁止|严禁|不能|不可以|不允许|无权|不应|不准",
    r"\b(?:may not|must not|shall not|cannot|can't|not allowed|prohibited|forbidden|"
    r"not permitted|banned|no (?:one|employer|unit) may)\b",
)
_INVALID = _words(
    r"无效|违法|非法|不合法|不属于|不是|不算|不构成|不可信|骗局|诈骗",
    r"\b(?:invalid|illegal|unlawful|void|is not|are not|isn't|aren't|does not count|"
    r"not (?:a|an|the) |scam|fraud)\b",
)
_NO_NEED = _words(
    r"不需要|无需|不必|不用|取消",
    r"\b(?:no need|not required|need not|needn't|do(?:es)? not (?:need|have to)|abolished)\b",
)
_PERMIT = _words(
    r"可以|有权|允许|合法|能够|享有|适用",
    r"\b(?:may|can|entitled|has the right|have the right|allowed|eligible|permitted|"
    r"lawful|legal)\b",
)
_OBLIGE = _words(
    r"应当|必须|应|须|需要",
    r"\b(?:must|shall|required|has to|have to|should|obliged|needs? to)\b",
)
_HEDGE = _words(
    r"一般|通常|原则上|视情况|具体|以.{1,12}为准|因地|各地|可能|部分|只能|仅|最多|不超过|不再",
    r"\b(?:generally|usually|normally|in principle|depends?|may vary|varies|check|some|"
    r"in most|typically|often|only|at most|no longer)\b",
)
"""Hedges and limits: "只能约定一次", "may end it only on the grounds listed" answer neither
yes nor no on their own."""
_NEGATION = _words(r"不|没有|未|无|非", r"\b(?:not|no|never|none|without)\b|n't\b")

# The question: what it asks, and whether it is negated. "能不能", "可不可以" (A-not-A)
# ask, they do not negate: read as "能", "可以".
_A_NOT_A = re.compile(r"([\u4e00-\u9fff]+?)[不没]\1")
_ASKS_ILLEGAL = _words(r"违法|犯法|违规", r"\b(?:illegal|unlawful|against the law)\b")
_ASKS_LEGAL = _words(r"合法|有效|正规", r"\b(?:legal|lawful|valid|legit)\b")
_ASKS_MAY = _words(
    r"可以|能|允许|让|有权|行不行|行吗",
    r"\b(?:can|could|may|allowed|entitled|ok|okay|let)\b",
)
_ASKS_NEED = _words(
    r"需要|要|必须|得|应该|用不用|还用",
    r"\b(?:need|must|have to|has to|required|should|obliged)\b",
)
_WH = _words(
    r"什么|怎么|怎样|如何|哪|谁|多少|多久|几|为什么|为何",
    r"^\s*(?:what|how|where|when|which|who|whom|why)\b",  # "… when I start?" still asks can
)
_POINTING = _words(r"这样|这么|这个|这|那样|那个|那", r"\b(?:that|this|it|so|they|them)\b")
_CLAUSE_END = re.compile(r"[，,；;。！!？?]+\s*|\s+(?=[^\sA-Za-z])")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_EN_WORD = re.compile(r"[a-z]{3,}")
_Q_NEGATION = _words(r"不|没|未", r"\b(?:not|no|without|never)\b|n't\b")


@dataclass(frozen=True)
class Polarity:
    """What a sentence rules, read in order (each match blanked before the next:
    "不可以" is a prohibition, not a permission)."""

    negative: bool  # forbids, voids, or says it is not needed (不得, 无效, 不需要, may not)
    positive: bool  # permits or obliges (可以, 应当, may, must)
    obliges: bool  # … obliges (应当, must): a duty, not a permission
    mixed: bool  # … both permits and obliges ("rest days: time off; holidays: must pay")
    hedged: bool  # 一般, usually, depends: the sentence does not settle it
    other_negation: bool  # a negation the markers do not explain ("不能补休的")


def polarity(sentence: str) -> Polarity:
    text = sentence.lower()
    found: dict[str, bool] = {}
    for name, pattern in (
        ("prohibit", _PROHIBIT),
        ("no_need", _NO_NEED),
        ("invalid", _INVALID),
        ("hedge", _HEDGE),
        ("oblige", _OBLIGE),
        ("permit", _PERMIT),
    ):
        found[name] = pattern.search(text) is not None
        text = pattern.sub(" ", text)
    return Polarity(
        negative=found["prohibit"] or found["no_need"] or found["invalid"],
        positive=found["oblige"] or found["permit"],
        obliges=found["oblige"] and not found["permit"],
        mixed=found["oblige"] and found["permit"],
        hedged=found["hedge"],
        other_negation=_NEGATION.search(text) is not None,
    )


def _asked(question: str) -> str:
    """The clause that asks: the last of the question ("公司扣了我身份证，能罚公司吗" asks
    whether the company can be fined, not whether it may keep the card), A-not-A read as
    the verb ("能不能" → "能")."""
    clauses = [c for c in _CLAUSE_END.split(question.strip().lower()) if c.strip()]
    return _A_NOT_A.sub(r"\1", clauses[-1] if clauses else question.lower())


def _content(text: str) -> set[str]:
    """The words of ``text`` beyond its asking ones: CJK bigrams, English words."""
    for asks in (_ASKS_ILLEGAL, _ASKS_LEGAL, _ASKS_NEED, _ASKS_MAY, _Q_NEGATION, _POINTING):
        text = asks.sub(" ", text)
    terms = {w for w in _EN_WORD.findall(text) if w not in EN_STOP_WORDS}
    for run in _CJK_RUN.findall(text.replace("吗", " ").replace("呢", " ")):
        terms.update(run[i : i + 2] for i in range(len(run) - 1))
    return terms


def about(question: str, sentence: str) -> bool:
    """The sentence shares a word with what the asking clause asks about (or, for a bare
    "合法吗？", "is that allowed?", with what the question says before it)."""
    asked = _content(_asked(question))
    if not asked:  # "可以这样吗": what "这样" points to was said before
        asked = _content(question.lower())
    said = _content(sentence.lower())
    return bool(asked & said) or not asked


def negated(question: str) -> bool:
    """The question is itself negated ("不签合同可以吗", "Can they not pay me?")."""
    rest = _asked(question)
    for asks in (_ASKS_ILLEGAL, _ASKS_LEGAL, _ASKS_NEED, _ASKS_MAY):
        rest = asks.sub(" ", rest)
    return _Q_NEGATION.search(rest) is not None


def verdict(question: str, sentence: str) -> Verdict | None:
    """``yes`` or ``no`` when ``question`` is a yes/no question and ``sentence`` settles
    it: the sentence rules one way only (forbids, voids or says it is not needed: no;
    permits or obliges: yes), without hedging or another negation, and a negated question
    ("可以不交社保吗") turns the answer round. A duty does not answer whether something
    may be done ("Can they pay me less?" — "Pay must be at least 80 %"): only "must I" or
    a negated question. Otherwise None (measured on the cards: ``tests/agent/test_yes_no``)."""
    if not is_yes_no(question) or kind(question) not in ("illegal", "legal", "may", "need"):
        return None  # "是真的吗", "算不算": the sentence's polarity does not answer them
    if _WH.search(_asked(question)) or not about(question, sentence):
        return None  # "还要做什么？" is not yes/no; a sentence on something else settles nothing
    p = polarity(sentence)
    if p.hedged or p.other_negation or p.negative == p.positive or p.mixed:
        return None
    flipped = negated(question)
    if flipped and not p.obliges:
        return None  # "不还，合法吗" — "不得扣押": a negated question needs a duty to answer
    if p.obliges and not flipped and kind(question) != "need":
        return None
    if kind(question) == "illegal":
        flipped = not flipped  # "违法吗": a prohibition answers yes
    says_yes = p.positive != flipped
    return "yes" if says_yes else "no"


def kind(question: str) -> str:
    """What the question asks: ``illegal``, ``legal``, ``may``, ``need`` or
    ``is`` (anything else: "有加分吗", "Is it true?")."""
    asked = _asked(question)
    if _ASKS_ILLEGAL.search(asked):
        return "illegal"
    if _ASKS_LEGAL.search(asked):
        return "legal"
    if _ASKS_MAY.search(asked):  # "要再延长三个月，能这样吗" asks may, not need
        return "may"
    if _ASKS_NEED.search(asked):
        return "need"
    return "is"


def opening(verdict: Verdict, question: str, lang: Lang, messages: Messages) -> str:
    """The verdict's words ("不可以。", "No."), worded for what the question asks."""
    return messages.get(f"yes_no_{kind(question)}_{verdict}", lang)
