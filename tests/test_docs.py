from bpfpga.compiler.gen_isa_doc import render
from conftest import REPO


def test_isa_doc_is_current():
    assert (REPO / "docs/isa.md").read_text() == render(), \
        "docs/isa.md is stale: python -m bpfpga.compiler.gen_isa_doc > docs/isa.md"
