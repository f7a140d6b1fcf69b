#!/usr/bin/env python3
"""Writes the dashboard's files (web/) as a C file of byte arrays: the table web_assets of
src/server/web.h, each file with its path under web/, its Content-Type and an ETag of its bytes."""
import argparse
import hashlib
import os

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="the web/ directory")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    out = ['/* Written by src/server/embed_web.py from web/: do not edit. */',
           '#include "server/web.h"', '']
    rows = []
    for i, path in enumerate(sorted(os.path.abspath(f) for f in args.files)):
        rel = "/" + os.path.relpath(path, root).replace(os.sep, "/")
        ext = os.path.splitext(path)[1]
        if ext not in TYPES:
            raise SystemExit(f"embed_web: {rel}: no Content-Type for '{ext}' files")
        data = open(path, "rb").read()
        etag = '\\"' + hashlib.sha256(data).hexdigest()[:20] + '\\"'
        out.append(f"static const unsigned char f{i}[] = {{")
        for k in range(0, len(data), 20):
            out.append("    " + ", ".join(str(b) for b in data[k:k + 20]) + ",")
        if not data:
            out.append("    0,")
        out.append("};")
        rows.append(f'    {{"{rel}", "{TYPES[ext]}", "{etag}", f{i}, {len(data)}}},')
    out += ["", "const struct web_asset web_assets[] = {"] + rows + ["};", ""]
    out.append("const size_t web_nassets = sizeof(web_assets) / sizeof(web_assets[0]);")
    with open(args.output, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
