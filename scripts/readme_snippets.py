#!/usr/bin/env python3
"""Turns every ```cpp block of a Markdown file (the README, docs/guide.md) into one
C++ file the build compiles.

Each block goes into a namespace of its own (so two blocks may each have a main),
with its #include lines hoisted to the top. A block that is not meant to compile
on its own is fenced as ```c++ instead, and left out. With --without-tls, blocks
that include <coronet/tls.hpp> are left out too (a build without OpenSSL).
"""
import re
import sys


def main(readme_path: str, out_path: str, without_tls: bool = False) -> None:
    text = open(readme_path, encoding="utf-8").read()
    blocks = re.findall(r"^```cpp\n(.*?)^```", text, flags=re.S | re.M)
    if without_tls:
        blocks = [b for b in blocks if "#include <coronet/tls.hpp>" not in b]
    includes, bodies = [], []
    for i, block in enumerate(blocks, 1):
        lines = block.splitlines()
        includes += [l for l in lines if l.startswith("#include")]
        body = "\n".join(l for l in lines if not l.startswith("#include"))
        # main() is only special at global scope: inside a namespace it is an
        # ordinary function, so it must not rely on main's implicit return 0.
        body = body.replace("int main(", "void readme_main(" if "return" not in body else "int readme_main(")
        bodies.append(f"namespace readme_block_{i} {{\n{body}\n}}  // namespace readme_block_{i}\n")
    with open(out_path, "w", encoding="utf-8") as out:
        out.write("// Generated from README.md by scripts/readme_snippets.py: do not edit.\n")
        for inc in dict.fromkeys(includes):
            out.write(inc + "\n")
        out.write("\n".join(bodies))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--without-tls" in sys.argv[3:])
