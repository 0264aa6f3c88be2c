"""The documentation's examples build what it says they build; the pages stay short, factual and linked."""

import pathlib
import re

import torch
from hyperpyyaml import load_hyperpyyaml

from sepmamba_sb.lobes import Decoder, Encoder, MaskNet, SepMamba, separate

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 12_000


def doc_pages():
    """README.md and every page of docs/: where the examples and the links are."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def prose_pages():
    """Every page that must not narrate history: the docs pages, the benchmarks' and the recipes' READMEs."""
    recipes = sorted((ROOT / "recipes").glob("*/README.md")) + sorted((ROOT / "recipes").glob("*/*/README.md"))
    return [*doc_pages(), ROOT / "benchmarks" / "README.md", *recipes]


def readme_example(name):
    """The code block that follows ``<!-- README example: name -->`` in README.md or a docs page (exactly one)."""
    pattern = rf"<!-- README example: {re.escape(name)} -->\n```\w*\n(.*?)```"
    found = [match.group(1) for page in doc_pages() for match in re.finditer(pattern, page.read_text(), re.S)]
    assert len(found) == 1, f"README.md and docs/*.md hold {len(found)} examples named {name}, not one"
    return found[0]


def test_model_yaml_builds_sepmamba_s():
    hparams = load_hyperpyyaml(readme_example("model.yaml"))
    model = hparams["sepmamba"]
    assert isinstance(model, SepMamba)
    assert sum(p.numel() for p in model.parameters()) == 7_253_826
    with torch.no_grad():
        assert model(torch.randn(1, 500)).shape == (1, 500, 2)


def test_masking_yaml_builds_the_contract_triple():
    hparams = load_hyperpyyaml(readme_example("masking.yaml"))
    encoder, masknet, decoder = hparams["encoder"], hparams["masknet"], hparams["decoder"]
    assert isinstance(encoder, Encoder) and isinstance(masknet, MaskNet) and isinstance(decoder, Decoder)
    with torch.no_grad():
        assert separate(encoder, masknet, decoder, torch.randn(2, 700), 2).shape == (2, 700, 2)


def test_streaming_example_streams_a_strictly_causal_model():
    scope = {}
    exec(readme_example("streaming.py"), scope)
    assert scope["est"].shape == (1, 256, 2) and scope["context"].delay == 0
    assert scope["context"].out.shape[-1] < 8  # at most a frame computed ahead waits in the queue


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; at most {README_MAX_BYTES} (move detail to docs/)"


# A measured number stands beside its command, machine, threads and date; the pages tell no history.
HISTORY = re.compile(
    r"issue [0-9]+|[0-9a-f]{7} \(|previous demo|earlier version"  # as written, case-sensitive
    r"|(?i:issue [0-9]+|previous demo|previous corpus|earlier version|commit [0-9a-f]{7}"
    r"|before the corpus grew|first streaming version|predates)"
)


def test_pages_tell_no_history():
    found = [f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
             for page in prose_pages()
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if HISTORY.search(line)]
    assert not found, "history narration (state the current fact instead):\n" + "\n".join(found)


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(page):
    """The targets of ``[text](target)`` links and images outside code, less web links and pure anchors."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        yield target.split("#", 1)[0]


def test_relative_links_point_to_files():
    pages = [*doc_pages(), ROOT / "benchmarks" / "README.md"]
    assert any(True for page in pages for _ in relative_links(page))
    broken = [f"{page.relative_to(ROOT)}: {target}"
              for page in pages for target in relative_links(page)
              if not (page.parent / target).exists()]
    assert not broken, "links to missing files:\n" + "\n".join(broken)


def test_separate_your_own_recordings_example_uses_the_shipped_model(tmp_path):
    """The README's first separation example runs as written, on a real recording in place of meeting.wav."""
    import shutil

    shutil.copy(ROOT / "tests" / "data" / "speech-f-allison-en.wav", tmp_path / "meeting.wav")
    scope = {}
    code = readme_example("shipped.py")
    exec(code.replace('"meeting.wav"', repr(str(tmp_path / "meeting.wav"))), scope)
    assert scope["sources"].shape[0] == 1 and scope["sources"].shape[-1] == 2
