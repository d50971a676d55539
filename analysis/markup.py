"""Tables as markdown and LaTeX booktabs: (row labels, header groups, cells) -> files."""
from __future__ import annotations

from pathlib import Path

MISSING = "—"


def to_markdown(rows, groups, cells, row_header: str, note: str) -> str:
    esc = lambda s: str(s).replace("|", r"\|")          # a literal | would split the cell
    header = [row_header] + [f"{h} {c}" for h, cs in groups for c in cs]
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, [r, *c])) + " |" for r, c in zip(rows, cells)]
    return "\n".join(lines) + f"\n\n{note}\n"


def _tex(s: str) -> str:
    s = str(s).replace("\\", r"\textbackslash{}")
    for a, b in (("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("|", r"$|$")):
        s = s.replace(a, b)
    return s.replace(" ± ", r" $\pm$ ").replace(MISSING, "---")


def to_latex(rows, groups, cells, row_header: str, note: str) -> str:
    n_cols = sum(len(cs) for _, cs in groups)
    out = [r"% " + note.replace("\n", " "), r"\begin{tabular}{l" + "c" * n_cols + "}", r"\toprule"]
    if len(groups) > 1 or groups[0][0]:
        out.append(" & " + " & ".join(rf"\multicolumn{{{len(cs)}}}{{c}}{{{_tex(h)}}}"
                                      for h, cs in groups) + r" \\")
        start, rules = 2, []
        for _, cs in groups:
            rules.append(rf"\cmidrule(lr){{{start}-{start + len(cs) - 1}}}")
            start += len(cs)
        out.append(" ".join(rules))
    out.append(" & ".join([_tex(row_header)] + [_tex(c) for _, cs in groups for c in cs]) + r" \\")
    out.append(r"\midrule")
    out += [" & ".join([_tex(r)] + [_tex(c) for c in line]) + r" \\" for r, line in zip(rows, cells)]
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def write_table(out_dir: Path, name: str, table, row_header: str, note: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = out_dir / f"{name}.md", out_dir / f"{name}.tex"
    md.write_text(f"### {name}\n\n" + to_markdown(*table, row_header, note))
    tex.write_text(to_latex(*table, row_header, note))
    return [md, tex]
