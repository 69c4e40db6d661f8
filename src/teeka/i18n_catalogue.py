"""Which msgids the code shows to people, gathered from the sources, and how a catalogue
measures up against them. Used by tests/test_i18n.py (and meant for a CLI check).

A msgid is the English text itself. They come from:
- the message of every `_error(...)` call, and `message = "..."` in the body of an error class;
- module-level SMS templates (constants named `..._SMS`) and literal `template=` arguments
  of `queue_sms(...)`;
- `translate(lang, "...")` and `_("...")` calls with a literal msgid in Python;
- the literal `detail=` of `Invalid(...)` (translated inside the error's message, its
  {placeholders} filled from the error's other params);
- `_("...")` calls in the Jinja templates; `_(x.status)` there stands for every
  appointment status. Any other non-literal `_(...)` in a template is reported by
  `unknown_dynamic_calls()`: its msgids cannot be found by reading the source.

Reading files is all this module does: no database, no settings.
"""

from __future__ import annotations

import ast
import re
import string
from collections.abc import Iterable, Iterator
from pathlib import Path

from babel.messages.pofile import read_po
from jinja2 import Environment, nodes

from teeka.i18n import LOCALE_DIR
from teeka.models.booking import AppointmentStatus

PACKAGE_DIR = Path(__file__).resolve().parent
SMS_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*_SMS$")
DEVANAGARI = re.compile(r"[\u0900-\u097F]")

# `_(<expr>.<attr>)` in a template translates one of these values.
DYNAMIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "status": tuple(s.value for s in AppointmentStatus),
}


# ---------------------------------------------------------------- Python sources

def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _arg(call: ast.Call, index: int | None, keyword: str) -> str | None:
    """The literal string passed at position `index` or as `keyword`, else None."""
    if index is not None and len(call.args) > index:
        return _literal(call.args[index])
    for kw in call.keywords:
        if kw.arg == keyword:
            return _literal(kw.value)
    return None


def _func_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _is_error_class(cls: ast.ClassDef, path: Path) -> bool:
    bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
             for b in cls.bases]
    return path.name == "errors.py" or any(b.endswith("Error") for b in bases)


def _assigned(stmt: ast.stmt) -> Iterator[tuple[str, str]]:
    """(name, string) for `NAME = "..."` and `NAME: T = "..."`."""
    if isinstance(stmt, ast.Assign):
        value = _literal(stmt.value)
        if value is not None:
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    yield target.id, value
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        value = _literal(stmt.value)
        if value is not None:
            yield stmt.target.id, value


def python_msgids(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for stmt in tree.body:
        # `SEND_SMS = "notification.send_sms"` is a job name, not a text: templates have spaces.
        found.update(v for name, v in _assigned(stmt) if SMS_CONSTANT.match(name) and " " in v)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and _is_error_class(node, path):
            found.update(v for stmt in node.body for name, v in _assigned(stmt)
                         if name == "message")
        if not isinstance(node, ast.Call):
            continue
        name = _func_name(node)
        msgid = None
        if name == "_error":
            msgid = _arg(node, 2, "message")
        elif name == "translate":
            msgid = _arg(node, 1, "msgid")
        elif name == "_" and isinstance(node.func, ast.Name):
            msgid = _arg(node, 0, "msgid")
        elif name == "queue_sms":
            msgid = _arg(node, None, "template")
        elif name == "Invalid":  # errors.Invalid(detail="..."): shown inside its message
            msgid = _arg(node, None, "detail")
        if msgid:
            found.add(msgid)
    return found


# ---------------------------------------------------------------- Jinja templates

_jinja = Environment(autoescape=True)


def _template_calls(path: Path) -> Iterator[nodes.Call]:
    tree = _jinja.parse(path.read_text(encoding="utf-8"), path.name, str(path))
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == "_" and call.args:
            yield call


def template_msgids(path: Path) -> set[str]:
    found: set[str] = set()
    for call in _template_calls(path):
        arg = call.args[0]
        if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
            found.add(arg.value)
        elif isinstance(arg, nodes.Getattr) and arg.attr in DYNAMIC_ATTRIBUTES:
            found.update(DYNAMIC_ATTRIBUTES[arg.attr])
    return found


def unknown_dynamic_calls(root: Path = PACKAGE_DIR) -> list[str]:
    """`file:line` of each template `_(...)` whose msgids cannot be read from the source."""
    out: list[str] = []
    for path in _files(root / "templates", "*.html"):
        for call in _template_calls(path):
            arg = call.args[0]
            literal = isinstance(arg, nodes.Const) and isinstance(arg.value, str)
            known = isinstance(arg, nodes.Getattr) and arg.attr in DYNAMIC_ATTRIBUTES
            if not (literal or known):
                out.append(f"{path.relative_to(root)}:{call.lineno}")
    return out


# ---------------------------------------------------------------- together

def _files(directory: Path, pattern: str) -> Iterable[Path]:
    return sorted(directory.rglob(pattern)) if directory.is_dir() else []


def source_msgids(root: Path = PACKAGE_DIR) -> set[str]:
    """Every msgid the package under `root` can show to a person."""
    found: set[str] = set()
    for path in _files(root, "*.py"):
        found |= python_msgids(path)
    for path in _files(root / "templates", "*.html"):
        found |= template_msgids(path)
    return found


def placeholders(text: str) -> set[str]:
    """The `{names}` str.format fills in (`{{` and `}}` are literal braces)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def catalogue(lang: str, locale_dir: Path = LOCALE_DIR) -> dict[str, str]:
    """msgid -> translation of the non-fuzzy, translated entries of one language."""
    out: dict[str, str] = {}
    for path in sorted((locale_dir / lang / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as f:
            cat = read_po(f)
        out.update({str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy})
    return out


def missing(lang: str, msgids: Iterable[str] | None = None) -> list[str]:
    have = catalogue(lang)
    return sorted(m for m in (source_msgids() if msgids is None else msgids) if m not in have)


def obsolete(lang: str) -> list[str]:
    """Catalogue entries no source uses any more (harmless, but worth pruning)."""
    return sorted(set(catalogue(lang)) - source_msgids())
