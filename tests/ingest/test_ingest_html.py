import hashlib

from orgtune.ingest.blocks import DocBuilder
from orgtune.ingest.html import read_html
from orgtune.ingest.read import read_document

MANUAL_HTML = """<!DOCTYPE html>
<html><head><title>ACME Espresso</title><style>p { color: red }</style><script>var x = "Brew pressure: 1";</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<header class="site">ACME Corp</header>
<main><article>
<header><h1>Espresso Machine</h1></header>
<div class="intro"><p>This manual covers the <em>daily use</em> of the
   machine and its <a href="#care">care</a>.</p></div>
<!-- a comment: not text -->
<section><h2>Specifications</h2>
<div>Brew pressure: 8.5 bar</div>
<table><thead><tr><th>Setting</th><th>Default</th></tr></thead>
<tbody><tr><td><b>Temp</b>erature</td><td>93 C</td></tr><tr><td>Dose</td><td>18 g</td></tr></tbody></table>
</section>
<section><h2 id="care">Descaling</h2>
<ol><li>Fill the tank with descaler.</li><li>Press <strong>Start</strong>.</li><li>Rinse twice.</li></ol>
<ul><li>Use fresh water</li><li>Empty the drip tray</li></ul>
</section>
</article></main>
<footer>Copyright ACME</footer>
</body></html>
"""


def test_manual(tmp_path, summary, manual):
    path = tmp_path / "manual.html"
    path.write_text(MANUAL_HTML, encoding="utf-8")
    doc = read_document(path)
    assert summary(doc) == manual
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 2]
    assert doc.blocks[4].header is True
    assert doc.title == "ACME Espresso" and doc.format == "html"
    assert doc.doc_id == hashlib.sha256(path.read_bytes()).hexdigest()
    for dropped in ("Home", "ACME Corp", "Copyright", "color", "var x", "comment"):
        assert dropped not in doc.text


def read(html: str):
    b = DocBuilder()
    title = read_html(html, b)
    return b.build(path="x.html", raw=html.encode(), fmt="html", title=title)


def test_definition_list_terms(summary):
    doc = read("""<h1>Grinder</h1><h2>Settings</h2>
<dl>
  <dt>Voltage</dt><dd>230 V</dd>
  <div><dt>Grind size</dt><dd><p>Sets how fine the coffee is ground.</p><p>The default is 12.</p>
      <ul><li>Finer for espresso</li></ul></dd></div>
  <dt>Timer</dt><dd>The default is 20 seconds.</dd>
</dl>
<h2>Cleaning</h2><p>Brush <br>weekly.</p><p>Burr: steel<br>Hopper: 250 g</p>""")
    assert summary(doc) == [
        ("heading", [], "Grinder"),
        ("heading", ["Grinder"], "Settings"),
        ("kv", ["Grinder", "Settings"], ("Voltage", "230 V")),
        ("heading", ["Grinder", "Settings"], "Grind size"),
        ("paragraph", ["Grinder", "Settings", "Grind size"], "Sets how fine the coffee is ground."),
        ("paragraph", ["Grinder", "Settings", "Grind size"], "The default is 12."),
        ("list", ["Grinder", "Settings", "Grind size"], ["Finer for espresso"]),
        # once a dl term became a heading, the later terms do too (nothing lands under a sibling term)
        ("heading", ["Grinder", "Settings"], "Timer"),
        ("paragraph", ["Grinder", "Settings", "Timer"], "The default is 20 seconds."),
        ("heading", ["Grinder"], "Cleaning"),
        ("paragraph", ["Grinder", "Cleaning"], "Brush weekly."),
        ("kv", ["Grinder", "Cleaning"], ("Burr", "steel")),
        ("kv", ["Grinder", "Cleaning"], ("Hopper", "250 g")),
    ]
    assert [b.level for b in doc.blocks if b.kind == "heading"] == [1, 2, 3, 3, 2]
    assert doc.title == "Grinder"  # no <title>: the first heading


def test_nested_blocks_once_and_nested_lists(summary):
    doc = read("""<div>Intro <span>text</span><div><p>Inner paragraph.</p></div>tail text<pre>a  b
  c</pre></div>
<ul><li>one<ul><li>one.a</li></ul></li><li><p>two</p></li></ul>
<table><tr><td>k</td><td>v</td></tr><tr><td>x<table><tr><td>in</td></tr></table></td><td>y</td></tr></table>""")
    assert summary(doc) == [
        ("paragraph", [], "Intro text"),
        ("paragraph", [], "Inner paragraph."),
        ("paragraph", [], "tail text"),
        ("code", [], "a  b\n  c"),
        ("list", [], ["one", "one.a", "two"]),
        ("table", [], [["k", "v"], ["x in", "y"]]),
    ]
    assert doc.blocks[-1].header is False  # no th, no thead
