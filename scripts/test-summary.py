#!/usr/bin/env python3
"""Count test cases over Meson test logs and print "N passed, N failed".

A test program that speaks TAP counts once per case; any other counts once. A program that
failed without reporting a failing case (a crash, a sanitizer report) counts as one failure.
Skipped tests count in neither. "--also P F" first adds P passed and F failed cases that are not
Meson tests (a fuzz run, a build that failed).
"""
import json
import re
import sys

passed = failed = skipped = 0
args = sys.argv[1:]
if args[:1] == ["--also"]:
    passed, failed, args = int(args[1]), int(args[2]), args[3:]
for path in args:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"test-summary: {e}", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        t = json.loads(line)
        out = t.get("stdout") or ""
        ok = len(re.findall(r"^ok \d+", out, re.M))
        bad = len(re.findall(r"^not ok \d+", out, re.M))
        result = t.get("result")
        if result == "SKIP":
            skipped += 1
            continue
        if ok + bad == 0:
            ok, bad = (1, 0) if result in ("OK", "EXPECTEDFAIL") else (0, 1)
        elif result not in ("OK", "EXPECTEDFAIL") and bad == 0:
            bad = 1
        passed += ok
        failed += bad
if skipped:
    print(f"({skipped} test programs skipped)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or passed == 0 else 0)
