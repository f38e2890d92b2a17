"""Build ``bot/kb/region_data/divisions.csv``: China's province-level and prefecture-level
divisions with official names, short names, abbreviations, toneless pinyin and region codes.

Source: the division dictionary shipped in the PyPI package ``jionlp`` (an optional extra,
``pip install -e '.[regions]'``): ``jionlp/dictionary/china_location.zip`` (GB/T 2260 codes,
official names, short-name aliases) and the province abbreviations in
``jionlp/rule/rule_pattern.py``. Both are read as files; jionlp itself is never imported and
nothing is downloaded. Pinyin comes from pypinyin, with the few place-name readings it gets
wrong fixed below.

    python -m bot.kb.region_build           # rewrite the table
    python -m bot.kb.region_build --check   # exit 1 when the shipped table is stale

Codes: a province keeps the code the knowledge base has always used (the pinyin of its short
name, except ``shaanxi``, ``hongkong`` and ``macao``); a prefecture-level division's code is
the pinyin of its short name, or ``<pinyin>-<province code>`` for every division whose pinyin
another division shares (``suzhou-jiangsu`` / ``suzhou-anhui``).
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.metadata
import io
import sys
import zipfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pypinyin import lazy_pinyin

SOURCE = "jionlp"
OUTPUT = Path(__file__).with_name("region_data") / "divisions.csv"
COLUMNS = (
    *("code", "level", "province", "gb_code", "name"),
    *("short", "other", "abbr", "pinyin", "english"),
)

# Province codes that are not the pinyin of the short name.
_PROVINCE_CODES = {"陕西": "shaanxi", "香港": "hongkong", "澳门": "macao"}
# Second one-character abbreviations (民政部 lists two for these provinces; jionlp one).
_MORE_ABBREVIATIONS = {"贵州": "黔", "云南": "滇", "四川": "蜀", "陕西": "秦", "甘肃": "陇"}
# English names other than the capitalised pinyin.
_ENGLISH = {
    "内蒙古": ("Inner Mongolia",),
    "西藏": ("Tibet",),
    "香港": ("Hong Kong",),
    "澳门": ("Macau", "Macao"),
    "哈尔滨": ("Harbin",),
    "齐齐哈尔": ("Qiqihar",),
    "呼和浩特": ("Hohhot",),
    "鄂尔多斯": ("Ordos",),
    "乌鲁木齐": ("Urumqi",),
    "喀什": ("Kashgar",),
    "拉萨": ("Lhasa",),
    "日喀则": ("Shigatse",),
}
# Readings pypinyin gets wrong for these place names (长治 is not zhangzhi).
_PINYIN_FIXES = {
    "长治": "changzhi",
    "漯河": "luohe",
    "昌都": "changdu",
    "朝阳": "chaoyang",
    "锡林郭勒": "xilinguole",
    "克孜勒苏": "kezilesu",
    "阿勒泰": "aletai",
}


def _package_file(relative: str) -> Path:
    path = importlib.metadata.distribution(SOURCE).locate_file(relative)
    return Path(str(path))


def _source_version() -> str:
    return importlib.metadata.version(SOURCE)


def _location_lines() -> tuple[list[list[str]], str]:
    """The province and city lines of jionlp's china_location.txt, and the file's date."""
    with zipfile.ZipFile(_package_file("jionlp/dictionary/china_location.zip")) as archive:
        info = archive.getinfo("china_location.txt")
        text = archive.read(info).decode("utf-8")
    dated = "{:04d}-{:02d}-{:02d}".format(*info.date_time[:3])
    rows = []
    for line in text.splitlines():
        if line.startswith("\t\t"):
            continue  # counties and below
        fields = line.strip().split("\t")
        if len(fields) == 3:
            rows.append(["city" if line.startswith("\t") else "province", *fields])
    return rows, dated


def _abbreviations() -> dict[str, str]:
    """Province short name → one-character abbreviation, from jionlp's rule patterns."""
    tree = ast.parse(_package_file("jionlp/rule/rule_pattern.py").read_text(encoding="utf-8"))
    constants: dict[str, str] = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            constants[node.targets[0].id] = node.value.value
    names = constants["CHINA_PROVINCE_SHORT_PATTERN"].strip("()").split("|")
    letters = constants["CHINA_PROVINCE_ALIAS"]
    if len(names) != len(letters):
        raise SystemExit("jionlp's province names and abbreviations no longer line up")
    return dict(zip(names, letters, strict=True))


def _pinyin(name: str) -> str:
    return _PINYIN_FIXES.get(name) or "".join(lazy_pinyin(name)).lower()


def build() -> tuple[list[dict[str, str]], str]:
    """The table's rows and the header naming the source release."""
    lines, dated = _location_lines()
    abbreviations = _abbreviations()
    rows: list[dict[str, str]] = []
    province_code: dict[str, str] = {}  # first two GB digits → code
    for level, name, gb_code, alias in lines:
        shorts = sorted(alias.split("/"), key=len, reverse=True)  # 巴音郭楞 before 巴州
        short = shorts[0]
        prefix = gb_code[:2]
        if level == "province":
            code = _PROVINCE_CODES.get(short) or _pinyin(short)
            province_code[prefix] = code
            abbr = abbreviations[short] + _MORE_ABBREVIATIONS.get(short, "")
            english = _ENGLISH.get(short, (code.title(),))
        else:
            # skip a municipality's or SAR's own line, the 省直辖 placeholders (county-level
            # cities) and Taiwan's cities (GB/T 2260 lists Taiwan as one province-level code)
            if gb_code.endswith("0000") or not gb_code.endswith("00") or prefix == "71":
                continue
            if "直辖" in name:
                continue
            code, abbr = _pinyin(short), ""
            english = _ENGLISH.get(short, ())
        row = {
            "code": code,
            "level": level,
            "province": province_code[prefix],
            "gb_code": gb_code,
            "name": name,
            "short": short,
            "other": "|".join(shorts[1:]),
            "abbr": "|".join(abbr),
            "pinyin": _pinyin(short),
            "english": "|".join(english),
        }
        rows.append(row)
    shared = Counter(row["code"] for row in rows)
    for row in rows:
        if row["level"] == "city" and shared[row["code"]] > 1:
            row["code"] = f"{row['code']}-{row['province']}"
    rows.sort(key=lambda row: row["gb_code"])
    codes = [row["code"] for row in rows]
    if len(set(codes)) != len(codes):
        raise SystemExit("two divisions still share a code")
    header = (
        f"# Generated by `python -m bot.kb.region_build` from {SOURCE} {_source_version()} "
        f"(dictionary/china_location.txt dated {dated}; GB/T 2260 codes). Do not edit by hand."
    )
    return rows, header


def render(rows: list[dict[str, str]], header: str) -> str:
    out = io.StringIO()
    out.write(header + "\n")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.kb.region_build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(*build())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m bot.kb.region_build", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    levels = Counter(line.split(",")[1] for line in text.splitlines()[2:])
    print(f"wrote {args.output}: {levels['province']} provinces, {levels['city']} cities")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
