"""A model's chat template, rendered the one way orgtune renders it everywhere.

    text = render(tokenizer, [{"role": "user", "content": "hi"}], add_generation_prompt=True)

Training, evaluation, serving and export all render through here, so that a conversation becomes the same
text on the day it is trained, resumed, evaluated and exported; a template that transformers' Jinja sandbox
refuses becomes an orgtune error naming the file and line.
"""

from __future__ import annotations

from pathlib import Path

from orgtune.errors import OrgtuneError

# Variables orgtune fixes when it renders a chat template. Llama 3 templates put "Today Date: <today>" in
# every system header; pinned to the template's own fallback, a conversation renders the same on the day
# it is trained, resumed, evaluated and exported (the Ollama TEMPLATE cannot call a clock).
TEMPLATE_VARS = {"date_string": "26 Jul 2024"}


def render(tok, messages: list[dict], *, add_generation_prompt: bool = False) -> str:
    from jinja2.exceptions import SecurityError, TemplateSyntaxError

    try:
        return tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, **TEMPLATE_VARS
        )
    except (SecurityError, TemplateSyntaxError) as e:
        raise template_error(template_where(tok, getattr(e, "lineno", None)), e) from None


def template_where(tok, line: int | None) -> str:
    folder = Path(tok.name_or_path or ".")
    if (folder / "chat_template.jinja").is_file():
        return f"{folder / 'chat_template.jinja'}" + (f":{line}" if line else "")
    return f"{folder / 'tokenizer_config.json'}: chat_template" + (f" line {line}" if line else "")


def template_error(where: str, e: Exception) -> OrgtuneError:
    """A chat template that is not valid Jinja, or that does what transformers' Jinja sandbox refuses."""
    from jinja2.exceptions import TemplateSyntaxError

    what = "is not valid Jinja" if isinstance(e, TemplateSyntaxError) else "does something the Jinja sandbox refuses"
    return OrgtuneError(
        f"{where}: the chat template {what} ({getattr(e, 'message', None) or e})",
        fix="restore the model's own chat template; a template may not reach Python internals "
        "(attributes like __class__) or change its inputs (append, update)",
    )
