"""How a Brain looks to a person: an HTML table in a notebook, a text table in
a terminal, names completed after ``brain["`` in IPython."""

from __future__ import annotations

import re

import numpy as np
import pytest

from brain import Brain
from brain._brain_class import SHOWN_ROWS


def test_a_notebook_shows_names_codecs_sizes_descriptions_and_capacity(store_url: str) -> None:
    brain = Brain(url=store_url, namespace="sales", capacity="64M")
    brain.learn("prices", np.linspace(0, 1, 131_072), description="unit prices")
    brain["note"] = "hello"
    page = brain._repr_html_()
    rows = re.findall(r"<tr><td.*?</tr>", page)
    assert len(rows) == 2, page
    assert "<code>prices</code>" in rows[1] and ">ndarray<" in rows[1] and ">1.0 MiB<" in rows[1], rows[1]
    assert ">unit prices<" in rows[1], rows[1]
    assert "<code>note</code>" in rows[0] and ">text<" in rows[0] and ">5 B<" in rows[0], rows[0]
    assert "namespace &#x27;sales&#x27;" in page, page
    assert re.search(r"of 64\.0 MiB capacity used \(\d+%\)", page), page


def test_every_string_is_escaped(brain: Brain) -> None:
    brain.learn("<script>alert(1)</script>", 1, description='"quoted" & <b>bold</b>')
    brain.set_namespace("<ns>")
    brain["x"] = 1
    brain.set_namespace("default")
    page = brain._repr_html_()
    assert "<script>" not in page and "<b>" not in page, page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    brain.set_namespace("<ns>")
    assert "&lt;ns&gt;" in brain._repr_html_() and "<ns>" not in brain._repr_html_()


def test_a_long_listing_is_cut_and_counted(brain: Brain) -> None:
    for i in range(SHOWN_ROWS + 12):
        brain[f"name {i:03}"] = i
    page = brain._repr_html_()
    assert len(re.findall(r"<tr><td", page)) == SHOWN_ROWS
    assert "and 12 more" in page and "brain.names()" in page
    text = str(brain)
    assert len(text.splitlines()) == 1 + 1 + SHOWN_ROWS + 1, text
    assert text.splitlines()[-1] == "... and 12 more (brain.names() lists them all)"


def test_a_terminal_shows_a_text_table(brain: Brain) -> None:
    assert str(brain).startswith("Brain: namespace 'default' of ") and "0 names" in str(brain)
    brain.learn("prices", np.linspace(0, 1, 131_072), description="unit prices")
    brain["a name\twith a tab"] = "x"
    lines = str(brain).splitlines()
    assert lines[1].split() == ["NAME", "CODEC", "SIZE", "DESCRIPTION"]
    assert lines[2].split() == ["a", "name\\twith", "a", "tab", "text", "1", "B"], lines
    assert re.fullmatch(r"prices\s+ndarray\s+1\.0 MiB\s+unit prices", lines[3]), lines
    # IPython's terminal uses the same table; repr() stays one line for logs.
    pretty = pytest.importorskip("IPython.lib.pretty")
    # The free space of the tmpfs is read anew for each rendering, and other
    # processes on this machine change it: it is left out of the comparison.
    free_space = re.compile(r"[\d.]+ \w+ free")
    assert free_space.sub("", pretty.pretty(brain)) == free_space.sub("", str(brain))
    assert "\n" not in repr(brain)


def test_a_brain_asleep_says_so(brain: Brain) -> None:
    brain.sleep()
    assert "asleep" in brain._repr_html_() and "wake_up()" in str(brain)
    assert brain._ipython_key_completions_() == []


def test_ipython_completes_names_after_a_bracket(brain: Brain) -> None:
    brain["greeting"] = "hello"
    brain["group"] = 1
    brain.set_namespace("elsewhere")
    brain["grown"] = 2
    brain.set_namespace("default")
    assert brain._ipython_key_completions_() == ["greeting", "group"]
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    completer = pytest.importorskip("IPython.core.completer")
    shell = interactiveshell.InteractiveShell.instance()
    try:
        shell.user_ns["brain"] = brain
        typed = 'brain["gr'
        with completer.provisionalcompleter():
            offered = [(c.text, c.type) for c in shell.Completer.completions(typed, len(typed))]
        assert offered == [("greeting", "dict key"), ("group", "dict key")], offered
    finally:
        shell.user_ns.pop("brain", None)
        interactiveshell.InteractiveShell.clear_instance()
