"""Lints and renders the Convene chart with Helm's own engine (Helm's Go SDK, through helm-python-sdk), in
several variants of values, and writes each variant's manifests to OUT/<variant>.yaml for the schema,
policy and consistency checks that follow. Values that must be refused are tried too.

usage: python chart.py OUT_DIR
"""

import copy
import sys
from pathlib import Path

import helm_python as helm
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
CHART = DEPLOY / "helm" / "convene"
RELEASE = "convene"
NAMESPACE = "convene"
# The oldest Kubernetes the chart says it supports (Chart.yaml's kubeVersion).
KUBE_VERSION = "v1.27.0"


def merge(base, extra):
    """Helm's merge of values: maps merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


AWS = yaml.safe_load((CHART / "values-aws.yaml").read_text())

# What operators install: the defaults, the AWS cluster's values, a DaemonSet with a fixed public address, and
# every optional part switched on with autoscaling off.
VARIANTS = {
    "default": {},
    "aws": merge(
        AWS,
        {
            "image": {"repository": "123456789012.dkr.ecr.eu-central-1.amazonaws.com/convene", "tag": "0.1.0"},
            "ingress": {"tlsSecretName": "convene-tls"},
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/convene"}},
            "extraEnv": [{"name": "CONVENE_RECORDINGS_URL", "value": "s3://convene-recordings/prod"}],
        },
    ),
    "daemonset": {
        "media": {
            "kind": "DaemonSet",
            "shards": 8,
            "region": "eu-west",
            "publicIp": {"source": "value", "value": "203.0.113.10"},
        },
    },
    "everything": {
        "image": {"digest": "sha256:" + "0" * 64},
        "imagePullSecrets": [{"name": "registry"}],
        "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "convene-tls"},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "api": {"autoscaling": {"enabled": False}, "replicas": 3, "env": [{"name": "CONVENE_LOG", "value": "debug"}]},
        "media": {"autoscaling": {"enabled": False}, "replicas": 4, "env": [{"name": "CONVENE_LOG", "value": "debug"}]},
        "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    },
}

# Values the chart must refuse, and a word of the refusal.
REFUSED = [
    ({"media": {"shards": 0}}, "shards"),
    ({"media": {"kind": "StatefulSet"}}, "kind"),
    ({"media": {"region": "eu west"}}, "region"),
    ({"media": {"publicIp": {"source": "value"}}}, "publicIp.value"),
    ({"media": {"publicIp": {"source": "elastic"}}}, "source"),
    ({"ingress": {"enabled": True}, "meetUrl": "https://convene.example.com/meet"}, "different hosts"),
    ({"secrets": {"nodeSecret": {"name": "", "key": "secret"}}}, "nodeSecret"),
    ({"medai": {}}, "medai"),
]


def lint(values, name):
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION)
    # Severity 1 is information ("icon is recommended"); warnings (2) and errors (3) fail.
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
    if problems:
        raise SystemExit(f"helm lint ({name}): " + "; ".join(p["error"].strip() for p in problems))


def render(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(f"Helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()})")
    for name, values in VARIANTS.items():
        lint(values, name)
        manifests = render(values)
        notes = manifests.get(f"{CHART.name}/templates/NOTES.txt", "")
        if "Convene" not in notes:
            raise SystemExit(f"{name}: NOTES.txt did not render")
        documents = [text.strip() for path, text in sorted(manifests.items()) if path.endswith(".yaml") and text.strip()]
        body = "\n---\n".join(documents) + "\n"
        count = sum(1 for document in yaml.safe_load_all(body) if document)
        (out / f"{name}.yaml").write_text(body)
        print(f"rendered {name}: {count} objects -> {out / (name + '.yaml')}")
    for values, word in REFUSED:
        try:
            render(values)
        except helm.HelmError as error:
            if word not in str(error):
                raise SystemExit(f"{values} was refused, but not for {word!r}: {error}") from error
            print(f"refused as it should be: {values}")
            continue
        raise SystemExit(f"the chart accepted values it must refuse: {values}")


if __name__ == "__main__":
    main()
