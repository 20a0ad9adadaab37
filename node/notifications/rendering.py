"""Template rendering in Jinja2's sandbox: an admin's template can format the context
it is given and nothing else (no attribute walks to Python internals, bounded ranges)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from node.notifications.catalog import TemplateSpec, TemplateText

MAX_TEMPLATE_CHARS = 100_000

# optional keys may be missing: they render as nothing (also ``payment.txHash`` when ``payment``
# lacks it); required keys are checked before rendering
class _Sandbox(SandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # the stock sandbox renders a forbidden attribute as empty; an editor should be told
        raise SecurityError(f"access to attribute {attribute!r} is not allowed")


_html = _Sandbox(autoescape=True, undefined=ChainableUndefined, keep_trailing_newline=True)
_text = _Sandbox(autoescape=False, undefined=ChainableUndefined, keep_trailing_newline=True)


class RenderError(ValueError):
    pass


@dataclass(frozen=True)
class Rendered:
    subject: str
    body_text: str
    body_html: str


def missing_keys(spec: TemplateSpec, context: dict[str, Any]) -> list[str]:
    return [key for key in spec.required if context.get(key) in (None, "")]


def check_syntax(text: TemplateText) -> None:
    for part, source in (("subject", text.subject), ("text", text.body_text), ("html", text.body_html)):
        if len(source) > MAX_TEMPLATE_CHARS:
            raise RenderError(f"{part}: longer than {MAX_TEMPLATE_CHARS} characters")
        try:
            (_html if part == "html" else _text).parse(source)
        except TemplateError as exc:
            raise RenderError(f"{part}: {exc}") from None


def render(spec: TemplateSpec, text: TemplateText, context: dict[str, Any]) -> Rendered:
    missing = missing_keys(spec, context)
    if missing:
        raise RenderError(f"missing context: {', '.join(missing)}")
    try:
        subject = _text.from_string(text.subject).render(context)
        body_text = _text.from_string(text.body_text).render(context)
        body_html = _html.from_string(text.body_html).render(context)
    except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
        # an edited template is untrusted input: whatever it trips over is the editor's to fix
        raise RenderError(f"{type(exc).__name__}: {exc}") from None
    # one line, no header injection; the mail library encodes non-ASCII
    subject = " ".join(subject.split())[:300]
    return Rendered(subject, body_text, body_html)
