"""Make dvc.yaml's code deps of every stage exactly what its import graph needs
(``python tools/sync_code_deps.py``): adds the missing, drops the ones it no longer imports — a
listed module it does not import would stale it for nothing. tests/test_dvc_contract.py is the
guard that fails on a gap either way."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from synthaug.dag import code_deps  # noqa: E402

CODE = re.compile(r"(?m)^(\s+)- ((?:synthaug|stages)/\w+\.py)\n")


def main() -> None:
    text = (ROOT / "dvc.yaml").read_text()
    parts = re.split(r"(?m)^(  [a-z_0-9]+:\n)", text)
    out = [parts[0]]
    for head, body in zip(parts[1::2], parts[2::2]):
        m = re.search(r"stages\.(\w+) ", body)
        listed = CODE.findall(body)
        if m and listed:
            indent, need = listed[0][0], code_deps(m.group(1))
            have = {path for _, path in listed}
            for dep in sorted(need ^ have):
                print(f"{head.strip()} {'+' if dep in need else '-'} {dep}")
            first = CODE.search(body).start()
            body = CODE.sub("", body)  # the code deps are one sorted block, where the first one was
            body = body[:first] + "".join(f"{indent}- {dep}\n" for dep in sorted(need)) + body[first:]
        out += [head, body]
    (ROOT / "dvc.yaml").write_text("".join(out))


if __name__ == "__main__":
    main()
