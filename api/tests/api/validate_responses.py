"""Checks real /v1 exchanges against the OpenAPI document with an independent JSON Schema validator
(the `jsonschema` package, Draft 2020-12, which OpenAPI 3.1 schemas are): every status must be documented
for its operation, every body must match the schema documented for that status, and every request the API
accepted must match the documented request body (so generated clients can send it).

Usage: validate_responses.py <openapi.json> <exchanges.json>; exits 1 listing each mismatch.
"""

import json
import sys

from jsonschema import Draft202012Validator


def pointer_part(text):
    return text.replace("~", "~0").replace("/", "~1")


def mismatches(document, pointer, instance):
    """Where `instance` breaks the schema at `pointer` in `document` (whose `#/components/...` resolve)."""
    validator = Draft202012Validator({**document, "$ref": pointer})
    return [f"{error.json_path}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda error: error.json_path)]


def main(document_path, exchanges_path):
    with open(document_path) as file:
        document = json.load(file)
    with open(exchanges_path) as file:
        exchanges = json.load(file)
    failures = []
    for exchange in exchanges:
        method, path, status, body = exchange["method"], exchange["path"], str(exchange["status"]), exchange["body"]
        name = f"{method.upper()} {path} -> {status}"
        operation = document["paths"].get(path, {}).get(method)
        if operation is None:
            failures.append(f"{name}: the operation is not documented")
            continue
        operation_pointer = "/".join(["#", "paths", pointer_part(path), method])
        accepted = status.startswith("2") and exchange["request"] is not None
        if accepted and "application/json" in operation.get("requestBody", {}).get("content", {}):
            pointer = "/".join([operation_pointer, "requestBody", "content", pointer_part("application/json"), "schema"])
            failures += [f"{name}: request {where}" for where in mismatches(document, pointer, exchange["request"])]
        response = operation["responses"].get(status)
        if response is None:
            failures.append(f"{name}: the status is not documented (documented: {sorted(operation['responses'])})")
            continue
        if "application/json" not in response.get("content", {}):
            if body is not None:
                failures.append(f"{name}: answers a body the document does not describe: {json.dumps(body)[:200]}")
            continue
        pointer = "/".join([operation_pointer, "responses", status, "content", pointer_part("application/json"),
                            "schema"])
        failures += [f"{name}: {where}" for where in mismatches(document, pointer, body)]
    print("\n".join(failures))
    print(f"{len(exchanges)} exchanges checked, {len(failures)} mismatches", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
