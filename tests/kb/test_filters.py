"""Validity, region and language filters, as a graduate's search would see them."""

from __future__ import annotations

import datetime as dt

from bot.kb.models import Validity
from bot.kb.service import KnowledgeBase
from tests.conftest import DocWriter

SUBSIDY = "## 扩岗补助\n\n招用毕业年度高校毕业生的企业，可申领一次性扩岗补助，每人不超过1500元。\n"


def test_expired_and_future_documents_are_kept_but_not_retrieved(
    kb: KnowledgeBase, write_doc: DocWriter
) -> None:
    expired = write_doc("subsidy-old-zh", SUBSIDY, expires=dt.date(2025, 12, 31))
    future = write_doc(
        "subsidy-next-zh", SUBSIDY.replace("1500", "2000"), effective_from=dt.date(2027, 1, 1)
    )
    current = write_doc("probation-zh", "## 试用期\n\n试用期工资不得低于约定工资的百分之八十。\n")
    kb.ingest([expired, future, current])

    found = {h.doc_id for h in kb.search("一次性扩岗补助每人多少钱", k=10)}
    assert "subsidy-old-zh" not in found and "subsidy-next-zh" not in found

    with_all = {
        h.doc_id for h in kb.search("一次性扩岗补助每人多少钱", k=10, include_inactive=True)
    }
    assert {"subsidy-old-zh", "subsidy-next-zh"} <= with_all

    validity = {d.meta.id: kb.validity(d) for d in kb.documents()}
    assert validity == {
        "subsidy-old-zh": Validity.EXPIRED,
        "subsidy-next-zh": Validity.NOT_YET_EFFECTIVE,
        "probation-zh": Validity.ACTIVE,
    }
    # Validity is judged on the day of the search: on 2027-02-01 the new rule applies.
    later = kb.search("一次性扩岗补助每人多少钱", k=10, today=dt.date(2027, 2, 1))
    assert later[0].doc_id == "subsidy-next-zh"


def test_region_keeps_national_and_that_region_only(
    kb: KnowledgeBase, write_doc: DocWriter
) -> None:
    body = "## 应届生口径\n\n毕业两年内未落实编制内工作的毕业生，可按应届生报考事业单位。\n"
    paths = [
        write_doc("fresh-national-zh", body, region="national"),
        write_doc("fresh-shanghai-zh", body + "本规定适用于上海。\n", region="shanghai"),
        write_doc("fresh-beijing-zh", body + "本规定适用于北京。\n", region="beijing"),
    ]
    kb.ingest(paths)
    query = "毕业两年了还能算应届生考事业单位吗"

    assert {h.doc_id for h in kb.search(query, k=10, region="上海")} == {
        "fresh-national-zh",
        "fresh-shanghai-zh",
    }
    assert {h.doc_id for h in kb.search(query, k=10, region="Beijing")} == {
        "fresh-national-zh",
        "fresh-beijing-zh",
    }
    assert kb.search(query, k=10, region="上海市")[0].doc_id == "fresh-shanghai-zh"
    # no region named: only the national rule applies (a city's rule is not everyone's)
    assert {h.doc_id for h in kb.search(query, k=10)} == {"fresh-national-zh"}


def test_language_is_a_preference_unless_restricted(
    kb: KnowledgeBase, write_doc: DocWriter
) -> None:
    kb.ingest(
        [
            write_doc("probation-zh", "## 试用期\n\n试用期最长不得超过六个月。\n", lang="zh"),
            write_doc(
                "probation-en",
                "## Probation\n\nProbation may not exceed six months (试用期).\n",
                lang="en",
                title="Probation",
            ),
            write_doc(
                "archives-zh",
                "## 档案\n\n档案通过机要通信或EMS转递，严禁个人自带。\n",
                lang="zh",
                title="档案",
            ),
        ]
    )
    assert kb.search("试用期最长多久？")[0].doc_id == "probation-zh"
    assert kb.search("how long can probation last?")[0].doc_id == "probation-en"
    # Only another language has the answer: still found.
    assert kb.search("can I carry my personnel file (档案) myself?")[0].doc_id == "archives-zh"
    only_en = kb.search("试用期最长多久？", lang="en", lang_only=True)
    assert {h.doc.meta.lang for h in only_en} == {"en"}
