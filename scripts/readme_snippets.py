#!/usr/bin/env python3
"""Turns every ```cpp block of the README into one C++ file the build compiles.

Each block goes into a namespace of its own (so two blocks may each have a main),
with its #include lines hoisted to the top. A block that is not meant to compile
on its own is fenced as ```c++ instead, and left out.

With --programs (for docs/guide.md, whose ```cpp blocks are mostly fragments of a
coroutine), only the blocks that #include something are taken: the whole programs.
"""
import os
import re
import sys


def main(readme_path: str, out_path: str, programs_only: bool = False) -> None:
    text = open(readme_path, encoding="utf-8").read()
    blocks = re.findall(r"^```cpp\n(.*?)^```", text, flags=re.S | re.M)
    if programs_only:
        blocks = [b for b in blocks if re.search(r"^#include", b, flags=re.M)]
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
        out.write(f"// Generated from {os.path.basename(readme_path)} by scripts/readme_snippets.py: do not edit.\n")
        for inc in dict.fromkeys(includes):
            out.write(inc + "\n")
        out.write("\n".join(bodies))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--programs"]
    main(args[0], args[1], programs_only="--programs" in sys.argv[1:])
