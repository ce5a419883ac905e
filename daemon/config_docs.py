"""The config's documentation, generated from the pydantic models in daemon/config.py.

Every key's default, allowed range and description live in the models (`Field(description=...)`);
config/proctord.example.toml and the README's config tables are written from them, and a test checks that
both are up to date. After changing a config field:

    .venv/bin/python -m daemon.config_docs          # rewrite both files
    .venv/bin/python -m daemon.config_docs --check  # exit 1 naming the stale files
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from daemon.config import Config, RulesConfig, RuleTiming

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_PATH = REPO / "config" / "proctord.example.toml"
README_PATH = REPO / "README.md"
WIDTH = 110
REGENERATE = "python -m daemon.config_docs"


@dataclass(frozen=True)
class Key:
    table: str  # dotted table name: "camera", "rules.no_face"
    name: str
    default: object
    description: str
    allowed: str
    owner: type  # the model class that declares the field (RuleTiming for every rule's onset_s)


@dataclass(frozen=True)
class Table:
    name: str
    model: type[BaseModel]
    description: str  # the field's description in its parent (a rule's condition), else ""
    keys: list[Key]


class UndocumentedKey(Exception):
    """A config field without a description (or, unset by default, without an example): the docs cannot
    be generated."""


def tables(
    model: type[BaseModel] = Config, instance: BaseModel | None = None, prefix: str = ""
) -> Iterator[Table]:
    """Every table of the config with its keys and their defaults, in declaration order."""
    instance = instance if instance is not None else model()
    schema = model.model_json_schema()["properties"]
    keys, subtables = [], []
    for name, field in model.model_fields.items():
        value = getattr(instance, name)
        dotted = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            subtables.append((dotted, value, field.description or ""))
            continue
        if not field.description:
            raise UndocumentedKey(f"{dotted}: add Field(description=...) in daemon/config.py")
        if value is None and not field.examples:  # TOML has no null: the example shows a value, commented out
            raise UndocumentedKey(f"{dotted}: unset by default: add Field(examples=[a value]) in daemon/config.py")
        owner = next(cls for cls in model.__mro__ if name in getattr(cls, "__annotations__", {}))
        keys.append(
            Key(prefix.rstrip("."), name, value, field.description, _allowed(name, schema[name]), owner)
        )
    if keys:
        yield Table(prefix.rstrip("."), model, "", keys)
    for dotted, value, description in subtables:
        for table in tables(type(value), value, f"{dotted}."):
            yield table if table.name != dotted else Table(table.name, table.model, description, table.keys)


# --- the example TOML ---------------------------------------------------------------------------------


def example_toml() -> str:
    lines = [
        *_comment(
            f"{_doc(Config)}\n\nGenerated from daemon/config.py by `{REGENERATE}`: edit the models, "
            "not this file. Every key is shown with its default."
        )
    ]
    described: set[tuple[type, str]] = set()  # a description shared by many tables is written once
    documented: set[type] = {Config}
    for table in tables():
        parent = _model_at(table.name.rpartition(".")[0])
        models = [parent, *reversed(table.model.__mro__)]  # the enclosing table's, the base classes', its own
        docs = [cls for cls in dict.fromkeys(models) if _doc(cls) and cls not in documented]
        documented.update(docs)
        lines.append("")
        # A class many tables share (RuleTiming) is explained above the first of them, a table's own below it.
        own = table.model if table.model in docs and not _shared(table.model) else None
        lines += [line for cls in docs if cls is not own for line in _comment(_doc(cls))]
        lines.append(f"[{table.name}]")
        lines += _comment(" ".join(filter(None, (table.description, _doc(own) if own else ""))))
        for key in table.keys:
            if (key.owner, key.name) not in described:
                described.add((key.owner, key.name))
                allowed = f" Allowed: {key.allowed.replace(' ', NO_BREAK)}." if key.allowed else ""
                lines += [
                    line.replace(NO_BREAK, " ")
                    for line in _comment(f"{key.name}: {key.description}{allowed}")
                ]
            lines.append(_assignment(key))
    return "\n".join(lines) + "\n"


def _shared(model: type) -> bool:
    return sum(issubclass(table.model, model) for table in tables()) > 1


NO_BREAK = "\N{NO-BREAK SPACE}"  # textwrap breaks only at ASCII spaces: keeps "0 < fps <= 120" on one line


def _model_at(dotted: str) -> type[BaseModel]:
    model: type[BaseModel] = Config
    for part in filter(None, dotted.split(".")):
        model = model.model_fields[part].annotation
    return model


def _assignment(key: Key) -> str:
    if key.default is None:
        field = key.owner.model_fields[key.name]
        return f"# {key.name} = {_toml(field.examples[0])}   (unset by default)"
    return f"{key.name} = {_toml(key.default)}"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"[{', '.join(_toml(item) for item in value)}]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    return repr(value)


def _comment(text: str) -> list[str]:
    lines = []
    for paragraph in text.split("\n\n"):
        if lines:
            lines.append("#")
        lines += textwrap.wrap(
            paragraph,
            WIDTH,
            initial_indent="# ",
            subsequent_indent="# ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


def _doc(cls: type) -> str:
    """A class docstring as paragraphs with unwrapped lines."""
    text = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in text.split("\n\n"))


def _allowed(name: str, schema: dict) -> str:
    """What the parser accepts for a key, from its JSON schema."""
    options = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
    text = " or ".join(filter(None, (_allowed_one(name, option) for option in options)))
    return f"{text} or unset" if "anyOf" in schema and text else text


def _allowed_one(name: str, schema: dict) -> str:
    if "enum" in schema:
        return ", ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if kind == "array":
        low, high = schema.get("minItems"), schema.get("maxItems")
        count = f"{low} " if low == high and low else f"at least {low} " if low else ""
        items = schema.get("items", {})
        if "enum" in items:
            return (
                f"a list of {count}of: {_allowed_one('', items)}"
                if count
                else f"a list of: {_allowed_one('', items)}"
            )
        noun = {"number": "number", "integer": "integer"}.get(items.get("type"), "string") + (
            "" if low == 1 else "s"
        )
        each = _allowed_one("each", items)
        return f"a list of {count}{noun}" + (
            f", {each}" if each.startswith("each") else f" ({each})" if each else ""
        )
    if kind in ("number", "integer"):
        low = (
            f"{_number(schema['minimum'])} <= "
            if "minimum" in schema
            else f"{_number(schema['exclusiveMinimum'])} < "
            if "exclusiveMinimum" in schema
            else ""
        )
        high = (
            f" <= {_number(schema['maximum'])}"
            if "maximum" in schema
            else f" < {_number(schema['exclusiveMaximum'])}"
            if "exclusiveMaximum" in schema
            else ""
        )
        if low and not high:  # "weight >= 0" reads better than "0 <= weight"
            value, sign = low.split(" ", 1)
            return f"{name} {sign.strip().replace('<', '>')} {value}"
        return f"{low}{name}{high}"
    if kind == "string":
        parts = []
        if "pattern" in schema:
            parts.append(f"matching {schema['pattern']}")
        if "maxLength" in schema:
            parts.append(f"{schema.get('minLength', 0)}-{schema['maxLength']} characters")
        return ", ".join(parts)
    return ""


def _number(value: float) -> str:
    return f"{value:g}"


# --- the README tables --------------------------------------------------------------------------------


def readme_blocks() -> dict[str, str]:
    """The generated README blocks by name: the rules table (Events) and the key reference (Configuration)."""
    return {"config-rules": _rules_markdown(), "config-reference": _reference_markdown()}


def _rules_markdown() -> str:
    rows = [
        "| event | condition | onset / release / min (s) | severity | weight | thresholds |",
        "|---|---|---|---|---|---|",
    ]
    for name, field in RulesConfig.model_fields.items():
        rule = getattr(RulesConfig(), name)
        if not isinstance(rule, RuleTiming):
            continue
        own = [k for k in type(rule).model_fields if k not in RuleTiming.model_fields]
        thresholds = ", ".join(f"`{k}` = {_toml(getattr(rule, k))}" for k in own)
        timing = " / ".join(_number(getattr(rule, k)) for k in ("onset_s", "release_s", "min_duration_s"))
        rows.append(
            f"| `{name}` | {_cell(field.description)} | {timing} | {rule.severity} | "
            f"{_number(rule.weight)} | {thresholds} |"
        )
    return "\n".join(rows)


def _reference_markdown() -> str:
    out = []
    for names, table, keys in _reference_groups():
        heading = ", ".join(f"`[{name}]`" for name in names)
        intro = (
            ""
            if issubclass(table.model, RuleTiming)
            else " ".join(filter(None, (table.description, _doc(table.model))))
        )
        out += [f"**{heading}**" + (f" {_cell(intro)}" if intro else ""), ""]
        out += ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        out += [
            f"| `{key.name}` | {_code(key)} | {_allowed_cell(key)} | {_cell(key.description)} |"
            for key in keys
        ]
        out.append("")
    timing = [
        key for key in next(t for t in tables() if t.name == "rules.no_face").keys if key.owner is RuleTiming
    ]
    out += [f"**Every `[rules.<event>]`** {_cell(_doc(RuleTiming))}", ""]
    out += ["| key | allowed | meaning |", "|---|---|---|"]
    out += [f"| `{key.name}` | {_allowed_cell(key)} | {_cell(key.description)} |" for key in timing]
    return "\n".join(out).rstrip()


def _reference_groups() -> list[tuple[list[str], Table, list[Key]]]:
    """The tables to show, each once: a rule's own keys only (its timing is in the rules table), and rules
    of one class with the same defaults (phone, book, extra_person) in one table."""
    groups: dict[tuple, tuple[list[str], Table, list[Key]]] = {}
    for table in tables():
        keys = [key for key in table.keys if key.owner is not RuleTiming]
        if keys:
            same = (table.model, tuple(repr(key.default) for key in keys))
            groups.setdefault(same, ([], table, keys))[0].append(table.name)
    return list(groups.values())


def _code(key: Key) -> str:
    return "unset" if key.default is None else f"`{_toml(key.default)}`"


def _allowed_cell(key: Key) -> str:
    return f"`{key.allowed}`" if key.allowed else ""


def _cell(text: str) -> str:
    """Text in a Markdown table cell: no column break, no HTML tag (<data_dir> would vanish)."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _splice(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- generated: {name} ({REGENERATE}) -->", f"<!-- end generated: {name} -->"
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{README_PATH.name}: no block {begin} ... {end}")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def generated_files() -> dict[Path, str]:
    """Each generated file with the content it should have."""
    readme = README_PATH.read_text()
    for name, body in readme_blocks().items():
        readme = _splice(readme, name, body)
    return {EXAMPLE_PATH: example_toml(), README_PATH: readme}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=REGENERATE, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = [path for path, content in generated_files().items() if path.read_text() != content]
    for path in stale:
        if args.check:
            print(f"{path.relative_to(REPO)} is stale: run {REGENERATE}", file=sys.stderr)
        else:
            path.write_text(generated_files()[path])
            print(f"wrote {path.relative_to(REPO)}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
