"""Checks the target forms of a measurement (``measure.py``'s ``fix-<runtime>`` forms): what ``fix_resize(model,
<runtime>)`` writes must run on that runtime exactly like ORT on the original model, or be refused.

    python tests/runtimes/check_targets.py build/runtimes-targets/results.json

Prints per runtime: exact, refused (fix-resize said why), differs (a silent mismatch), rejected / crashed (the
runtime refused what fix-resize wrote) and the exact rate over the grid models ORT runs. Exits 1 when any fixed
model is not exact; a runtime that was not measured (its environment is missing) is listed as skipped.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import TARGET_FORMS  # noqa: E402


def table(data: dict) -> tuple[str, int]:
    usable = [r for r in data["models"] if r["ort"]["status"] == "ran"]
    measured = data["meta"]["runtimes"]
    lines = ["| runtime | version | tolerance | exact | refused | differs (silent) | rejected | crashed | exact rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    failures = 0
    for form, rt in TARGET_FORMS.items():
        if rt not in measured or form not in data["meta"]["forms"]:
            why = data["meta"].get("skipped", {}).get(rt, "not measured")
            lines.append(f"| {rt} | skipped: {why} | | | | | | | |")
            continue
        cnt: Counter = Counter()
        for r in usable:
            f = r["forms"].get(form, {})
            cnt["refused" if "refused" in f else r["runtimes"][rt].get(form, {}).get("status", "not run")] += 1
        failures += sum(cnt[k] for k in ("differs", "rejected", "crashed", "not run"))
        versions = data["meta"]["versions"].get(rt, {})
        version = versions.get(rt) or versions.get("rknn-toolkit2") or versions.get("onnx2tf", "")
        tol = data["meta"]["tolerance"][rt]
        lines.append(f"| {rt} | {version} | {tol:g} | {cnt['exact']} | {cnt['refused']} | {cnt['differs']} | {cnt['rejected']} "
                     f"| {cnt['crashed']} | {cnt['exact'] / len(usable):.1%} |")
    return "\n".join(lines), failures


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    data = json.loads(Path(args[0]).read_text())
    text, failures = table(data)
    print(f"{sum(r['ort']['status'] == 'ran' for r in data['models'])} grid models that ORT runs\n\n{text}")
    if failures:
        print(f"\nFAILED: {failures} fixed models do not run exactly on their runtime", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
