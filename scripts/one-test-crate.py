#!/usr/bin/env python3
"""Moves every tests/*.rs integration test crate into the one crate tests/it/ (a module each),
with the shared helpers as modules `support` and `keyed_support`. Idempotent."""
import os, re, subprocess
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(root)
os.makedirs("tests/it", exist_ok=True)
def git_mv(a, b):
    if os.path.exists(a):
        subprocess.check_call(["git", "mv", a, b])
git_mv("tests/support/mod.rs", "tests/it/support.rs")
git_mv("tests/keyed_support/mod.rs", "tests/it/keyed_support.rs")
git_mv("tests/properties.proptest-regressions", "tests/it/properties.proptest-regressions")
for f in sorted(os.listdir("tests")):
    if f.endswith(".rs"):
        git_mv(f"tests/{f}", f"tests/it/{f}")
mods = sorted(f[:-3] for f in os.listdir("tests/it") if f.endswith(".rs") and f != "main.rs")
for m in mods:
    p = f"tests/it/{m}.rs"
    s = open(p).read()
    s = re.sub(r"^mod (keyed_support|support);\n", "", s, flags=re.M)
    s = re.sub(r"^use (keyed_support|support)::", r"use crate::\1::", s, flags=re.M)
    if re.search(r"(?<![:\w])support::", s) and "use crate::support;" not in s:
        s = re.sub(r"^(use [^\n]*;\n)(?!use )", r"\1use crate::support;\n", s, count=1, flags=re.M)
    open(p, "w").write(s)
with open("tests/it/main.rs", "w") as f:
    f.write("//! The integration tests: one crate (one link of the library), a module per area.\n")
    f.write("//! `support` and `keyed_support` hold the shared set-up.\n\n")
    for m in mods:
        f.write(f"mod {m};\n")
