"""The official Telegram Bot API description, read as data, for checking requests and replies.

The description lives outside the project, in ``../shared/telegram-bot-api-spec/api.min.json``
relative to the repository root (the environment variable ``GRADGUIDE_BOT_API_SPEC`` names
another file). It is read, never copied. Its shape::

    {"version": "Bot API 10.1",
     "methods": {NAME: {"fields": [{"name", "types", "required", "description"}],
                        "returns": ["Message"]}},
     "types": {NAME: {"fields": [...]} or {"subtypes": [NAME, ...]}}}

* :func:`load_spec` returns a :class:`SpecLoad`: the parsed :class:`BotApiSpec`, or ``None``
  and a ``skip_reason`` saying why validation is skipped (the file is absent or unreadable).
* :meth:`BotApiSpec.check_request` lists what is wrong with a call: an unknown method (the
  name is case-sensitive, as written in the spec), a missing required parameter, a parameter
  the method does not have.
* :meth:`BotApiSpec.check_value` / :meth:`BotApiSpec.check_result` list the fields of a
  returned object that its type does not define, missing required fields and wrong scalar
  types, recursively (``Array of X`` and union types such as ``ChatMember`` included).
* :func:`coerce_value` turns a form/query-string value (always a string) into the type the
  spec declares for the parameter: ``Integer``, ``Boolean``, ``Float``, ``String``, or JSON for
  objects and arrays (PTB JSON-encodes ``reply_markup`` and friends inside form bodies).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SPEC_ENV = "GRADGUIDE_BOT_API_SPEC"
REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_RELATIVE = "../shared/telegram-bot-api-spec/api.min.json"
DEFAULT_SPEC_PATH = (REPO_ROOT / SPEC_RELATIVE).resolve()

# The test-isolation fixture in tests/conftest.py deletes GRADGUIDE_* variables before every
# test, so the override is also captured when this module is imported (at collection time).
_ENV_AT_IMPORT: Path | None = (
    Path(os.environ[SPEC_ENV]).expanduser().resolve() if os.environ.get(SPEC_ENV) else None
)

SCALAR_TYPES = frozenset({"Integer", "Float", "Boolean", "True", "String", "InputFile"})
_INT_RE = re.compile(r"[+-]?\d+")


def spec_path() -> Path:
    """The spec file to read: ``$GRADGUIDE_BOT_API_SPEC`` (now or at import) or the default."""
    value = os.environ.get(SPEC_ENV)
    if value:
        return Path(value).expanduser().resolve()
    return _ENV_AT_IMPORT or DEFAULT_SPEC_PATH


@dataclass(frozen=True)
class SpecField:
    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class RequestProblem:
    """One thing wrong with a request: ``kind`` is unknown_method, missing or unknown_param."""

    kind: Literal["unknown_method", "missing", "unknown_param"]
    param: str | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fields: Mapping[str, SpecField]
    returns: tuple[str, ...]


@dataclass(frozen=True)
class TypeSpec:
    name: str
    fields: Mapping[str, SpecField]
    subtypes: tuple[str, ...]


def _fields(raw: Sequence[Mapping[str, Any]]) -> dict[str, SpecField]:
    return {
        f["name"]: SpecField(f["name"], tuple(f.get("types", ())), bool(f.get("required")))
        for f in raw
    }


def _describe(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class BotApiSpec:
    """Methods and types of one Bot API version."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.version: str = str(data.get("version", "unknown"))
        self.methods: dict[str, MethodSpec] = {
            name: MethodSpec(name, _fields(m.get("fields", [])), tuple(m.get("returns", [])))
            for name, m in data["methods"].items()
        }
        self.types: dict[str, TypeSpec] = {
            name: TypeSpec(name, _fields(t.get("fields", [])), tuple(t.get("subtypes", [])))
            for name, t in data["types"].items()
        }
        self._lower_methods = {name.lower(): name for name in self.methods}

    @classmethod
    def from_file(cls, path: Path) -> BotApiSpec:
        with path.open(encoding="utf-8") as handle:
            return cls(json.load(handle))

    # -- requests ---------------------------------------------------------------------------

    def spelled(self, method: str) -> str | None:
        """The spec's spelling of a method name given in any letter case, if it exists."""
        return self._lower_methods.get(method.lower())

    def param_types(self, method: str, param: str) -> tuple[str, ...] | None:
        spec = self.methods.get(method)
        field = spec.fields.get(param) if spec else None
        return field.types if field else None

    def check_request(self, method: str, params: Mapping[str, object]) -> list[RequestProblem]:
        """Everything wrong with calling ``method`` with these parameter names."""
        spec = self.methods.get(method)
        if spec is None:
            spelled = self.spelled(method)
            if spelled:
                message = (
                    f"unknown method {method!r}: the Bot API spells it {spelled!r} "
                    "(method names are checked case-sensitively)"
                )
            else:
                message = f"unknown method {method!r}: not in the Bot API spec ({self.version})"
            return [RequestProblem("unknown_method", None, message)]
        problems = [
            RequestProblem("missing", name, f"{method}: required parameter {name!r} is missing")
            for name, field in spec.fields.items()
            if field.required and name not in params
        ]
        problems += [
            RequestProblem(
                "unknown_param",
                name,
                f"{method}: unknown parameter {name!r} (not in the Bot API spec for {method})",
            )
            for name in params
            if name not in spec.fields
        ]
        return problems

    # -- replies ----------------------------------------------------------------------------

    def check_result(self, method: str, result: object) -> list[str]:
        """Problems of a method's result against the types the spec says it returns."""
        spec = self.methods.get(method)
        if spec is None or not spec.returns:
            return []
        return self.check_value(spec.returns, result, f"{method}()")

    def check_value(self, types: Sequence[str], value: object, where: str) -> list[str]:
        """Problems of ``value`` as any of ``types``; empty when one of them fits."""
        best: list[str] | None = None
        for type_name in types:
            problems = self._check_one(type_name, value, where)
            if not problems:
                return []
            if best is None or len(problems) < len(best):
                best = problems
        return best or []

    def check_object(self, type_name: str, value: object, where: str | None = None) -> list[str]:
        return self._check_one(type_name, value, where or type_name)

    def _check_one(self, type_name: str, value: object, where: str) -> list[str]:
        if type_name.startswith("Array of "):
            if not isinstance(value, list):
                return [f"{where}: expected {type_name}, got {_describe(value)}"]
            inner = type_name.removeprefix("Array of ")
            problems: list[str] = []
            for index, item in enumerate(value):
                problems += self._check_one(inner, item, f"{where}[{index}]")
            return problems
        if type_name in SCALAR_TYPES:
            return (
                []
                if _scalar_fits(type_name, value)
                else [f"{where}: expected {type_name}, got {_describe(value)}"]
            )
        spec = self.types.get(type_name)
        if spec is None:
            return []  # a type this description does not detail
        if spec.subtypes:
            return self.check_value(spec.subtypes, value, where)
        if not isinstance(value, dict):
            return [f"{where}: expected a {type_name} object, got {_describe(value)}"]
        problems = [
            f"{where}: field {key!r} is not defined for {type_name}"
            for key in value
            if key not in spec.fields
        ]
        problems += [
            f"{where}: required field {name!r} of {type_name} is missing"
            for name, field in spec.fields.items()
            if field.required and name not in value
        ]
        for key, item in value.items():
            field = spec.fields.get(key)
            if field is not None:
                problems += self.check_value(field.types, item, f"{where}.{key}")
        return problems


def _scalar_fits(type_name: str, value: object) -> bool:
    if type_name == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_name == "Boolean":
        return isinstance(value, bool)
    if type_name == "True":
        return value is True
    if type_name == "String":
        return isinstance(value, str)
    return True  # InputFile never appears in replies


def coerce_value(types: Sequence[str], value: object) -> object:
    """A parameter value as the spec types it; raises ValueError when it cannot be one.

    Strings come from query strings, form and multipart bodies; JSON bodies bring typed values,
    but Telegram also accepts JSON-encoded strings for objects there, and so does this.
    """
    if not isinstance(value, str):
        if any(_scalar_fits(t, value) for t in types if t in SCALAR_TYPES):
            return value
        if "String" in types and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # Telegram reads a JSON number given for a String as its digits
        return value
    for type_name in types:
        if type_name == "Integer":
            if _INT_RE.fullmatch(value.strip()):
                return int(value)
        elif type_name == "Float":
            try:
                return float(value)
            except ValueError:
                continue
        elif type_name in ("Boolean", "True"):
            lowered = value.strip().lower()
            if lowered in ("true", "1"):
                return True
            if lowered in ("false", "0") and type_name == "Boolean":
                return False
        elif type_name in ("String", "InputFile"):
            return value
        else:  # an object or an array, JSON-encoded
            try:
                return json.loads(value)
            except ValueError:
                continue
    raise ValueError(f"expected {' or '.join(types)}, got {_describe(value)}")


@dataclass(frozen=True)
class SpecLoad:
    """The outcome of reading the spec: ``spec`` is None when it could not be read."""

    spec: BotApiSpec | None
    path: Path
    skip_reason: str | None


def _shown(path: Path, explicit: bool) -> str:
    if path == DEFAULT_SPEC_PATH:
        return SPEC_RELATIVE
    return str(path) if explicit else f"{path} (from ${SPEC_ENV})"


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, mtime_ns: int) -> BotApiSpec:
    return BotApiSpec.from_file(path)


def load_spec(path: Path | str | None = None) -> SpecLoad:
    """Read the Bot API description; a missing or broken file gives a reason, not an error."""
    explicit = path is not None
    target = Path(path).expanduser().resolve() if path is not None else spec_path()
    try:
        mtime = target.stat().st_mtime_ns
    except OSError:
        reason = f"{_shown(target, explicit)} not found: Bot API request validation skipped"
        return SpecLoad(None, target, reason)
    try:
        return SpecLoad(_load_cached(target, mtime), target, None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        shown = _shown(target, explicit)
        reason = f"{shown} unreadable ({exc}): Bot API request validation skipped"
        return SpecLoad(None, target, reason)
