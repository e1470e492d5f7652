"""book prepare gives every captioned figure alt text."""

from __future__ import annotations

import nbformat

from ncbook.pipeline.book import _caption_as_alt_text


def test_a_caption_becomes_alt_text_unless_alt_text_is_given():
    bare = nbformat.v4.new_code_cell("plot()")
    bare.metadata["mystnb"] = {"figure": {"caption": "NC1 against $\\lambda$", "name": "fig"}}
    _caption_as_alt_text(bare)
    assert bare.metadata["mystnb"]["image"]["alt"] == "NC1 against \\lambda"
    given = nbformat.v4.new_code_cell("plot()")
    given.metadata["mystnb"] = {"figure": {"caption": "c"}, "image": {"alt": "own words"}}
    _caption_as_alt_text(given)
    assert given.metadata["mystnb"]["image"]["alt"] == "own words"
    plain = nbformat.v4.new_code_cell("x = 1")
    _caption_as_alt_text(plain)
    assert "mystnb" not in plain.metadata
