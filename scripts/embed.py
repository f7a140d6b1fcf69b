#!/usr/bin/env python3
"""Turns a file into C: `const char NAME[]` with its bytes and `const size_t NAME_len`.

usage: embed.py NAME INPUT OUTPUT
"""
import sys


def main():
    name, src, dst = sys.argv[1:4]
    data = open(src, "rb").read()
    lines = []
    for i in range(0, len(data), 16):
        lines.append("    " + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",")
    with open(dst, "w") as out:
        out.write("/* Made from %s by scripts/embed.py; do not edit. */\n" % src.split("/")[-1])
        out.write("#include <stddef.h>\n\n")
        out.write("extern const char %s[];\nextern const size_t %s_len;\n\n" % (name, name))
        out.write("const char %s[] = {\n%s\n    0x00};\n" % (name, "\n".join(lines)))
        out.write("const size_t %s_len = %d;\n" % (name, len(data)))


if __name__ == "__main__":
    main()
