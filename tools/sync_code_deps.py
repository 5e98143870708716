"""Add to dvc.yaml every code dep a stage's import graph needs (``python tools/sync_code_deps.py``),
and list the ones it no longer needs; tests/test_dvc_contract.py is the guard that fails on a gap."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_dvc_contract import module_closure  # noqa: E402


def main() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    parts = re.split(r"(?m)^(  [a-z_0-9]+:\n)", text)
    out = [parts[0]]
    for head, body in zip(parts[1::2], parts[2::2]):
        m = re.search(r"stages\.(\w+) ", body)
        if m:
            need = {str(p.relative_to(ROOT)) for p in module_closure(ROOT / "stages" / f"{m.group(1)}.py")}
            need |= {str(p.relative_to(ROOT)) for p in module_closure(ROOT / "stages" / "__init__.py")}
            have = set(re.findall(r"(?m)^\s+- ((?:synthaug|stages)/\w+\.py)\s*$", body))
            indent = re.search(r"(?m)^(\s+)- stages/", body).group(1)
            for dep in sorted(need - have):
                lines = body.splitlines(keepends=True)
                code = [i for i, line in enumerate(lines) if re.match(r"\s+- (synthaug|stages)/", line)]
                after = max([i for i in code if lines[i].strip()[2:] < dep] or [code[0]])
                lines.insert(after + 1, f"{indent}- {dep}\n")
                body = "".join(lines)
                print(f"{head.strip()} + {dep}")
            for dep in sorted(have - need):
                print(f"{head.strip()}: {dep} is listed but not imported")
        out += [head, body]
    (ROOT / "dvc.yaml").write_text("".join(out))


if __name__ == "__main__":
    main()
