"""Runs checkov (offline: --skip-download) over the rendered manifests, the Containerfile and the Terraform
module, and fails on every finding that accepted-findings.yaml (or an inline #checkov:skip in the Terraform)
does not accept with a reason, and on accepted entries that no longer match anything.

usage: python checkov.py RENDERED_DIR WORK_DIR
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent.parent
CHECKOV = Path(sys.executable).parent / "checkov"


def scan(framework, *target):
    command = [str(CHECKOV), "--framework", framework, *target, "--output", "json", "--quiet", "--compact", "--skip-download"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        report = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        raise SystemExit(f"checkov ({framework}) did not answer JSON:\n{done.stdout}\n{done.stderr}") from None
    reports = report if isinstance(report, list) else [report]
    if done.returncode not in (0, 1) or not any(r.get("summary") for r in reports):
        raise SystemExit(f"checkov ({framework}) failed to run ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    failed, passed, skipped = [], 0, 0
    for r in reports:
        summary = r.get("summary", {})
        passed += summary.get("passed", 0)
        skipped += summary.get("skipped", 0)
        failed.extend(r.get("results", {}).get("failed_checks", []))
    return failed, passed, skipped


def main():
    rendered, work = Path(sys.argv[1]), Path(sys.argv[2])
    accepted = yaml.safe_load((Path(__file__).parent / "accepted-findings.yaml").read_text())
    used = set()
    unaccepted = []

    def judge(framework, failures, where):
        for failure in failures:
            resource = failure.get("resource", "")
            matches = [
                i
                for i, entry in enumerate(accepted.get(framework, []))
                if entry["check"] == failure["check_id"] and re.search(entry["resources"], resource)
            ]
            if not entry_reasons_ok(framework, matches):
                unaccepted.append(f"{where}: {failure['check_id']} {failure['check_name']} ({resource})")
            used.update((framework, i) for i in matches)

    def entry_reasons_ok(framework, matches):
        return any(len(accepted[framework][i].get("reason", "").split()) >= 5 for i in matches)

    for path in sorted(rendered.glob("*.yaml")):
        failures, passed, skipped = scan("kubernetes", "--file", str(path))
        judge("kubernetes", failures, f"chart ({path.stem})")
        print(f"checkov kubernetes, {path.stem}: {passed} passed, {len(failures)} failed (accepted or not, below)")

    # checkov recognises Dockerfiles by name.
    dockerfile = work / "Dockerfile"
    shutil.copyfile(ROOT / "infra/container/Containerfile", dockerfile)
    failures, passed, _ = scan("dockerfile", "--file", str(dockerfile))
    for failure in failures:
        failure["resource"] = "Dockerfile"
    judge("dockerfile", failures, "infra/container/Containerfile")
    print(f"checkov dockerfile: {passed} passed, {len(failures)} failed")

    module = DEPLOY / "terraform/aws"
    failures, passed, skipped = scan("terraform", "--directory", str(module))
    judge("terraform", failures, "terraform/aws")
    print(f"checkov terraform: {passed} passed, {skipped} skipped inline with a reason, {len(failures)} failed")
    for line in (module).glob("*.tf"):
        for number, text in enumerate(line.read_text().splitlines(), 1):
            skip = re.search(r"#checkov:skip=([A-Z0-9_]+)(?::(.*))?", text)
            if skip and len((skip.group(2) or "").split()) < 5:
                unaccepted.append(f"{line.name}:{number}: {skip.group(1)} is skipped without a reason")

    stale = [
        f"accepted-findings.yaml: {framework} {entry['check']} {entry['resources']} matches nothing"
        for framework, entries in accepted.items()
        for i, entry in enumerate(entries)
        if (framework, i) not in used
    ]
    problems = unaccepted + stale
    if problems:
        print("\n".join(f"FAIL {problem}" for problem in problems))
        raise SystemExit(f"{len(problems)} checkov findings are not accepted")
    print(f"every checkov finding is accepted with a reason ({len(used)} entries of accepted-findings.yaml in use)")


if __name__ == "__main__":
    main()
