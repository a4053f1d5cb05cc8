"""Every number in the prose is true by construction: each number of three or more significant digits typed in the
committed notebook's markdown cells or in README.md appears in the notebook's outputs, in a committed result file
that the prose names, or in LITERATURE (figures quoted from papers, each with its source). A number typed by hand
drifts from the run it describes once the notebook is executed again; this test names every number without a source.

The rules, strict so that no way of writing a number slips past, and fair to the ways one number may be written:
- Prose is the markdown minus what is not a claim: fenced code blocks, code spans, LaTeX math ($...$, $$...$$),
  images, link targets `](...)`, URLs and HTML comments.
- A number is its digits: thousands separators ("1,797" is 1797), a sign (+, -, −) and a unit (%, s, ×, x) are not
  part of it, so "0.276–0.300" or "99.44% ± 0.04" gives each number on its own. A mantissa with its exponent
  ("1.2e-07") and a dotted version ("2.14.1") are one number each.
- Significant digits are all digits after the leading zeros, trailing zeros included, however the number is written:
  "0.297" has 3, "95.00" 4, "5,000" and "5000" 4, "500" 3, "12" 2. Numbers with fewer than three are not checked.
- Not claims either: a year in citation form ("et al., 2021", "Xiong et al. (2020,", "Wolf (2021)", '"Title", 1998',
  "86(11), 1998"), and a reference to a numbered heading of the notebook ("section 10.1", "(11.2)") with no unit
  after it.
- Sources: the code cells' outputs (stream text, text/plain, text/markdown; not images), and the git-tracked files of
  RESULT_DIRS whose path or folder the prose names (`checkpoints/sweep.csv`, `benchmarks/results/`).
- Matching is textual after normalising: "99.47%" matches 99.47, or the same digits as a fraction, 0.9947, but never
  99.5 or 99.470. Only a result file's full-precision value may be rounded, to the prose's decimals: 0.99469998 in a
  CSV matches "0.9947" and "99.47%". Notebook outputs are already rounded for the reader, so they are matched exactly.
What the check cannot see: a number is looked up among all sources at once, so one that happens to equal an
unrelated output passes.
"""

import csv
import io
import json
import re
import subprocess
from decimal import Decimal

from conftest import NOTEBOOK, ROOT

LITERATURE = {  # number (as typed, separators dropped) -> where it is quoted from
    "60000": "MNIST's training set: LeCun, Cortes & Burges, The MNIST database of handwritten digits",
    "500": "MNIST's writers: the same page (its training digits by about 250 writers, its test digits by others)",
}
RESULT_DIRS = ("checkpoints", "benchmarks/results", "studies/results")
REPORTS = ("README.md", "studies/README.md")  # prose outside the notebook, checked the same way
NOT_CLAIMS = [  # in this order: fenced code, code spans, HTML comments, math, images, link targets, URLs
    r"```.*?```", r"`[^`]*`", r"<!--.*?-->", r"\$\$.*?\$\$", r"\$[^$]+\$", r"!\[[^\]]*\]\([^)]*\)", r"(?<=\])\([^)]*\)",
    r"https?://\S+",
]
NUMBER = r"\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)*(?:[eE][-+]?\d+)?"
PROSE_NUMBER = re.compile(r"(?<![\w.])(?:" + NUMBER + ")")  # not the 86 of x86, nor the 200 of H200
SOURCE_NUMBER = re.compile(r"(?<![\d.])(?:" + NUMBER + ")")
CITATION_BEFORE_YEAR = re.compile(r'(?:et al\.,? \(?|[A-Z][a-z]+,? \(|[A-Z][a-z]+, |", |\d\(\d+\), )$')
UNIT_AFTER = re.compile(r"\s?(?:%|×|x\b|s\b|ms\b|min\b|points?\b|pixels?\b|times\b|MB\b)")
INTERVAL_OF_PERCENTAGE = re.compile(r"\d%\s\((?:[\d.]+[–-])?$")  # "98.35% (97.7–98.8)": the interval is in percent
HEADING_NUMBER = re.compile(r"^#+\s+(\d+(?:\.\d+)+)", re.M)


def prose_only(markdown: str) -> str:
    """The markdown with its non-claims blanked out, character for character, so that positions and lines stay."""
    for pattern in NOT_CLAIMS:
        markdown = re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m.group()), markdown, flags=re.S)
    return markdown


def significant_digits(token: str) -> int:
    return len(re.sub(r"\D", "", re.split(r"[eE]", token)[0]).lstrip("0"))


def normal(token: str) -> str:
    """One spelling per number: no separators; a version stays as typed."""
    token = token.replace(",", "")
    return token if token.count(".") > 1 else str(Decimal(token))


def decimals(token: str) -> int:
    return len(token.split(".")[1]) if "." in token else 0


def source_numbers(text: str) -> set[str]:
    return {normal(t) for t in SOURCE_NUMBER.findall(text)}


def result_file_numbers(path: str, text: str) -> set[str]:
    """Every number of a CSV (cell by cell, so that "4,128" in a row is not read as 4128) or JSON file, as stored."""
    if path.endswith(".json"):
        text = json.dumps(json.loads(text), indent=0)  # one value per line
    elif path.endswith(".csv"):
        text = "\n".join(cell for row in csv.reader(io.StringIO(text)) for cell in row)
    return {n for line in text.splitlines() for n in source_numbers(line)}


def rounds_to(raw: str, token: str, percent: bool) -> bool:
    """Whether a result file's full-precision value, rounded to the decimals the prose shows, is the prose's number."""
    if raw.count(".") > 1 or "E" in raw:
        return False
    d = decimals(token)
    return (decimals(raw) > d and f"{float(raw):.{d}f}" == token) or (
        percent and "." in raw and f"{float(raw) * 100:.{d}f}" == token)  # a stored fraction, shown as a percentage


def prose_claims(markdown: str, sections: set[str]):
    """(line, token, is_percentage, context) for every number of three or more significant digits that is a claim."""
    text = prose_only(markdown)
    for m in PROSE_NUMBER.finditer(text):
        token, after = m.group(), text[m.end():m.end() + 12]
        if significant_digits(token) < 3:
            continue
        if re.fullmatch(r"(19|20)\d\d", token) and CITATION_BEFORE_YEAR.search(text[max(0, m.start() - 40):m.start()]) \
                and (not after or after[0] in ")],.;"):
            continue  # a year in a citation
        if token in sections and not UNIT_AFTER.match(after):
            continue  # a reference to a section of the notebook
        context = " ".join(markdown[max(0, m.start() - 40):m.end() + 30].split())
        before = text[max(0, m.start() - 30):m.start()]
        percent = bool(re.match(r"\s?%", after)) or bool(INTERVAL_OF_PERCENTAGE.search(before))
        yield text.count("\n", 0, m.start()) + 1, token, percent, context


def unsupported_numbers(notebook_json: dict, readme_text: str, result_files: dict[str, str],
                        reports: dict[str, str] | None = None) -> list[str]:
    """Every claimed number of the notebook's markdown, the README and the other `reports` (path -> text) that no
    output, named result file or LITERATURE entry supports, as 'where: number in "context"'. result_files maps a path
    (relative to the repository) to its text; only those whose path or folder the prose names count (a report's
    relative paths, such as `results/seeds.json` in studies/README.md, are read from the report's folder)."""
    markdown = [(f"cell {i}", "".join(c["source"])) for i, c in enumerate(notebook_json["cells"])
                if c["cell_type"] == "markdown"]
    documents = {"README.md": readme_text, **(reports or {})}
    all_prose = "\n".join(documents.values()) + "\n" + "\n".join(source for _, source in markdown)
    for name, text in (reports or {}).items():  # a report names its results relative to its own folder
        folder = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        all_prose += "\n" + re.sub(r"`([\w./-]+)`", lambda m, folder=folder: f"`{folder}{m.group(1)}`", text)
    outputs = []
    for cell in notebook_json["cells"]:
        for output in cell.get("outputs", []):
            outputs.append("".join(output.get("text", "")))
            outputs += ["".join(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/markdown")]
    exact = source_numbers("\n".join(outputs)) | set(LITERATURE)
    raw = set()
    for path, text in result_files.items():
        if path in all_prose or path.rsplit("/", 1)[0] + "/" in all_prose:
            raw |= result_file_numbers(path, text)
    exact |= raw
    sections = set(HEADING_NUMBER.findall("\n".join(source for _, source in markdown)))
    unsupported = []
    for where, source in [*markdown, *documents.items()]:
        for line, token, percent, context in prose_claims(source, sections):
            number = normal(token)
            if number in exact or (percent and number.count(".") <= 1 and str(Decimal(number).scaleb(-2)) in exact):
                continue
            if any(rounds_to(r, token.replace(",", ""), percent) for r in raw):
                continue
            place = f"{where} line {line}" if where in documents else where
            unsupported.append(f'{place}: {token}{"%" if percent else ""} in "{context}"')
    return unsupported


def committed_result_files() -> dict[str, str]:
    """The git-tracked text files of RESULT_DIRS (CSV, JSON, text), by path relative to the repository."""
    listed = subprocess.run(["git", "ls-files", "--", *RESULT_DIRS], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split()
    return {p: (ROOT / p).read_text() for p in listed if p.endswith((".csv", ".json", ".txt", ".md"))}


def committed_sources():
    reports = {name: (ROOT / name).read_text() for name in REPORTS[1:] if (ROOT / name).exists()}
    return json.loads(NOTEBOOK.read_text()), (ROOT / "README.md").read_text(), committed_result_files(), reports


def test_every_number_of_the_prose_has_a_source():
    assert (ROOT / "studies" / "README.md").exists(), "the lab's report"
    unsupported = unsupported_numbers(*committed_sources())
    assert not unsupported, f"{len(unsupported)} numbers in the prose have no source:\n" + "\n".join(unsupported)


def places(entries: list[str]) -> list[str]:
    """'where: number' of each entry, without its context."""
    return sorted(entry.split(" in ")[0] for entry in entries)


def test_a_planted_number_is_reported():
    notebook, readme, results, _ = committed_sources()
    before = set(unsupported_numbers(notebook, readme, results))
    index = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "markdown")
    notebook["cells"][index]["source"] = "".join(notebook["cells"][index]["source"]) + "\nThe ViT reads 99.99%."
    readme += "\nOne epoch takes 12.345 s (`not 98.765`, [a link](https://example.org/123.456)).\n"
    planted = set(unsupported_numbers(notebook, readme, results)) - before
    assert places(planted) == [f"README.md line {len(readme.splitlines())}: 12.345", f"cell {index}: 99.99%"], planted


def test_the_rules_on_a_small_example():
    """Separators, a percentage against a fraction, a year in a citation, a section reference, a code span and math
    pass; a result file counts once the prose names it, and only its full-precision values are rounded."""
    prose = ("## 10.1 Calibration\nOn 1,797 digits: 94.05% (93.11%–95.00%), Guo et al., 2017; see 10.1, `0.12345`, "
             "$z = 1.960$.\n")
    output = {"output_type": "stream", "name": "stdout", "text": "n=1797 acc=0.9405\n"}
    notebook = {"cells": [{"cell_type": "markdown", "source": prose}, {"cell_type": "code", "outputs": [output]}]}
    results = {"checkpoints/r.csv": "low,high\n0.931098,0.95\n"}
    assert places(unsupported_numbers(notebook, "", results)) == ["cell 0: 93.11%", "cell 0: 95.00%"]
    assert places(unsupported_numbers(notebook, "`checkpoints/r.csv`", results)) == []  # 0.95 is 95.00%


def test_a_planted_number_in_the_lab_report_is_reported():
    notebook, readme, results, reports = committed_sources()
    before = set(unsupported_numbers(notebook, readme, results, reports))
    reports = dict(reports, **{"studies/README.md": reports["studies/README.md"] + "\nThe CNN reads 12.346% more.\n"})
    planted = set(unsupported_numbers(notebook, readme, results, reports)) - before
    line = len(reports["studies/README.md"].splitlines())
    assert places(planted) == [f"studies/README.md line {line}: 12.346%"], planted
