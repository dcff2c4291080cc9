"""Rewrite the environment-variable table in README.md from .env.example.

    python3 .ci/readme_env_table.py

.env.example is the source: `# --- Section ---` headers, `# comment` lines
describing the variable (or the run of one family's variables) that follows,
and `NAME=default` lines. A family's variables under one comment share a row.
tests/crm/test_settings.py fails when a variable is missing from the README.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- env-table:start -->", "<!-- env-table:end -->"
# Self-explanatory variables that .env.example leaves without a comment.
OBVIOUS = {
    "LOG_LEVEL": "Root log level: DEBUG, INFO, WARNING or ERROR.",
    "LANGUAGE_CODE": "Default language of the admin (en, fa, ar); the browser's choice wins.",
    "TIME_ZONE": "Time zone the admin shows times in; everything is stored in UTC.",
    "TIMELINE_PAGE_SIZE": "Timeline items per API page by default, and the most a client may ask for.",
}


def groups():
    """Yield ("section", title) and ("vars", [(name, default)], meaning)."""
    section_pending, comment, run = None, [], []

    def flush():
        nonlocal run, comment
        if run:
            names = [name for name, _ in run]
            meaning = " ".join(comment) or " ".join(OBVIOUS.get(n, "") for n in names).strip()
            yield ("vars", run, meaning)
        run, comment = [], []

    for line in (ROOT / ".env.example").read_text().splitlines():
        header = re.match(r"^#\s*---\s*(.+?)\s*-*\s*$", line)
        variable = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if header:
            yield from flush()
            yield ("section", header.group(1).strip(" -"))
        elif line.startswith("#"):
            if run:
                yield from flush()
            comment.append(line.lstrip("# ").strip())
        elif variable:
            # A variable without its own comment shares the previous one's only
            # when it belongs to the same family (TWILIO_…, KPI_…).
            if run and variable.group(1).split("_")[0] != run[-1][0].split("_")[0]:
                yield from flush()
            run.append((variable.group(1), variable.group(2)))
        else:
            yield from flush()
            comment = []
    yield from flush()


def table():
    out, pending = [], None
    for row in groups():
        if row[0] == "section":
            pending = row[1]
            continue
        if pending is not None:
            out += ["", f"**{pending}**", "", "| variable | example / default | meaning |", "|---|---|---|"]
            pending = None
        _, run, meaning = row
        names = "<br>".join(f"`{name}`" for name, _ in run)
        defaults = "<br>".join(f"`{default}`" if default else "—" for _, default in run)
        out.append(f"| {names} | {defaults} | {meaning.replace('|', '/')} |")
    return "\n".join(out).strip()


def main():
    readme = ROOT / "README.md"
    text = readme.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(f"{before}{START}\n{table()}\n{END}{after}")


if __name__ == "__main__":
    main()
