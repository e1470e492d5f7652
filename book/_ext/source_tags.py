"""The `{source}` role: who says a statement, written inside statement boxes and prose as

    {source}`paper: abstract`   {source}`authors' code: main.py`   {source}`literature: garrod2024persistence`
    {source}`ours: derived and verified here`

and rendered as a small bracketed tag, ``[paper: abstract]``. A tag whose kind is not one of
:data:`KINDS` is a build warning (and the book builds with warnings as errors), so a typo cannot
silently attribute a statement to nobody.
"""

from __future__ import annotations

from docutils import nodes

KINDS = ("paper", "authors' code", "literature", "ours")


def tag_kind(text: str) -> str | None:
    """The kind of a source tag (the part before the first colon), or None if it is not allowed.

    >>> tag_kind("paper: abstract"), tag_kind("authors' code: main.py"), tag_kind("spec: 3.1")
    ('paper', "authors' code", None)
    """
    kind = text.split(":", 1)[0].strip()
    return kind if kind in KINDS else None


def source_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    tag = nodes.inline(rawtext, f"[{text.strip()}]", classes=["source-tag"])
    if tag_kind(text) is None:
        message = inliner.reporter.warning(
            f"source tag {text!r}: the kind before ':' must be one of {', '.join(KINDS)}", line=lineno)
        return [tag], [message]
    return [tag], []


def setup(app):
    app.add_role("source", source_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
