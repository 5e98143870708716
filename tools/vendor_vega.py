"""Build ``.dvc/plots/offline.html``: DVC's plots page template with vega, vega-lite and
vega-embed inlined, so ``dvc plots show`` renders without a network (its default page loads them
from a CDN). Fetches the exact versions DVC's renderer targets from the npm registry, checks
their published sha512 integrity, and writes one self-contained template. Run once, commit the
result (the template is what works offline; this script is its provenance):

    python tools/vendor_vega.py
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

# name, version, file in the package, sha512 integrity published by the npm registry
PACKAGES = [
    (
        "vega",
        "5.20.2",
        "package/build/vega.min.js",
        "qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
    ),
    (
        "vega-lite",
        "5.2.0",
        "package/build/vega-lite.min.js",
        "Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
    ),
    (
        "vega-embed",
        "6.18.2",
        "package/build/vega-embed.min.js",
        "wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
    ),
]
REGISTRY = "https://registry.npmjs.org"
OUT = Path(__file__).resolve().parents[1] / ".dvc" / "plots" / "offline.html"


def fetch(name: str, version: str, member: str, integrity: str) -> str:
    url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
    data = urllib.request.urlopen(url, timeout=120).read()
    if base64.b64encode(hashlib.sha512(data).digest()).decode() != integrity:
        sys.exit(f"error: {url}: sha512 does not match the registry's integrity; refusing to vendor it")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(member).read().decode()


def main() -> None:
    scripts = []
    for name, version, member, integrity in PACKAGES:
        code = fetch(name, version, member, integrity).replace("</script", "<\\/script")
        scripts.append(f"<!-- {name} {version} (BSD-3-Clause), from {REGISTRY} -->\n<script>{code}</script>")
    page = (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n{refresh_tag}\n<title>DVC Plots (offline)</title>\n'
        + "\n".join(scripts)
        + "\n<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n</body>\n</html>\n"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(page)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
