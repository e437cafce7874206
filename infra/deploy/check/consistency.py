"""What no schema knows: that the deployment files agree with each other and with the product.

- Each rendered variant of the chart (RENDERED/*.yaml, from chart.py): selectors select, ports and Services
  line up, the media node is wired to its control plane (URL, shared secret, node URL, drain hook, UDP range =
  shards), only the media node uses the host network, every container is locked down, the migration hook runs
  `convene migrate`, the Ingress serves the two hosts, the ServiceMonitor finds both metrics ports.
- Every CONVENE_* variable the chart and the compose file set is a setting the binary knows
  (api/src/platform/settings/mod.rs); the media node gets no database setting.
- The dashboard's and the HPA's metric and label names are ones the code registers (prometheus-client adds
  `_total` to counters).
- compose.yaml wires its two media nodes like the chart does, with distinct published UDP ranges.
- The Terraform module opens the ports the chart uses, sizes the media group as the HPA's bounds, and labels
  and taints its node groups as values-aws.yaml selects and tolerates.

usage: python consistency.py RENDERED_DIR
"""

import base64
import json
import re
import sys
from pathlib import Path

import hcl2
import yaml

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent.parent
CHART = DEPLOY / "helm" / "convene"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
AWS_VALUES = yaml.safe_load((CHART / "values-aws.yaml").read_text())
BINARY = "/opt/convene/bin/convene"

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


# --- The product's own names -----------------------------------------------------------------------------


def known_settings():
    text = (ROOT / "api/src/platform/settings/mod.rs").read_text()
    names = set(re.findall(r'"(CONVENE_[A-Z0-9_]+)"', text))
    if not names:
        raise SystemExit("found no CONVENE_* settings in api/src/platform/settings/mod.rs: has the table moved?")
    return names


def registered_metrics():
    """Metric names (without type suffixes) and label names the code registers with prometheus-client."""
    names, labels = set(), set()
    for path in list((ROOT / "api/src").rglob("*.rs")) + list((ROOT / "media/src").rglob("*.rs")):
        text = path.read_text()
        prefixes = set(re.findall(r'sub_registry_with_prefix\(\s*"([a-z0-9_]+)"', text))
        for name in re.findall(r'\.register\(\s*"([a-z0-9_]+)"', text):
            names.add(name)
            names.update(f"{prefix}_{name}" for prefix in prefixes)
        for body in re.findall(r"derive\([^)]*EncodeLabelSet[^)]*\)\]\s*(?:pub(?:\([a-z]+\))?\s+)?struct\s+\w+\s*\{([^}]*)\}", text):
            labels.update(re.findall(r"(?:pub(?:\([a-z]+\))?\s+)?([a-z_][a-z0-9_]*)\s*:", body))
    return names, labels


SETTINGS = known_settings()
METRICS, LABELS = registered_metrics()
# Labels Prometheus adds to every scraped series (ServiceMonitor targets), and the histogram's bucket label.
TARGET_LABELS = {"pod", "namespace", "instance", "job", "service", "container", "endpoint", "le"}


def metric_known(name):
    base = re.sub(r"_(total|bucket|sum|count|created)$", "", name)
    return name in METRICS or base in METRICS


def check_expression(expr, where):
    for name in set(re.findall(r"\b((?:convene|process)_[a-z0-9_]+)\b", expr)):
        check(metric_known(name), f"{where}: {name} is not a metric the code registers")
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        for label in (part.strip() for part in group.split(",")):
            check(label in LABELS | TARGET_LABELS, f"{where}: label {label!r} is on no registered metric")


# --- Rendered manifests ----------------------------------------------------------------------------------


def pod_spec(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "Job"):
        return obj["spec"]["template"]
    return None


def env_of(container):
    return {item["name"]: item for item in container.get("env", [])}


def selects(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def check_variant(path):
    variant = path.stem
    objects = [obj for obj in yaml.safe_load_all(path.read_text()) if obj]
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
        check(obj["metadata"].get("namespace") == "convene", f"{variant}: {obj['kind']} {obj['metadata']['name']} has no namespace")
    workloads = [obj for obj in objects if pod_spec(obj)]
    named = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}

    def component(name):
        found = [w for w in workloads if w["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == name]
        check(len(found) == 1, f"{variant}: expected one {name} workload, found {len(found)}")
        return found[0] if found else None

    api, media, migrate = component("api"), component("media"), component("migrate")
    if not (api and media and migrate):
        return

    def container(workload):
        return workload["spec"]["template"]["spec"]["containers"][0]

    def ports(workload):
        return {p["name"]: p for p in container(workload).get("ports", [])}

    # Every container locked down, as the image's user.
    uid = int(re.search(r"--uid (\d+)", (ROOT / "infra/container/Containerfile").read_text()).group(1))
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        pod_security = spec.get("securityContext", {})
        check(pod_security.get("runAsUser") == uid, f"{variant}: {name} does not run as the image's uid {uid}")
        check(spec.get("automountServiceAccountToken") is False, f"{variant}: {name} mounts a service account token")
        for c in spec.get("initContainers", []) + spec["containers"]:
            security = c.get("securityContext", {})
            check(pod_security.get("runAsNonRoot") or security.get("runAsNonRoot"), f"{variant}: {name}/{c['name']} may run as root")
            check(security.get("readOnlyRootFilesystem") is True, f"{variant}: {name}/{c['name']} has a writable root")
            check(security.get("allowPrivilegeEscalation") is False, f"{variant}: {name}/{c['name']} may escalate")
            check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{variant}: {name}/{c['name']} keeps capabilities")
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                check({"cpu", "memory"} <= set(resources.get(kind, {})), f"{variant}: {name}/{c['name']} lacks {kind}")
        for c in spec["containers"]:
            for env_name in env_of(c):
                check(not env_name.startswith("CONVENE_") or env_name in SETTINGS, f"{variant}: {name} sets {env_name}, which convene does not read")
        check(spec.get("hostNetwork", False) == (workload is media), f"{variant}: {name}: only the media node may use the host network")

    # Roles.
    check(container(api).get("args") == ["api"], f"{variant}: the control plane does not run `convene api`")
    media_command = container(media).get("args") == ["media"] or f"exec {BINARY} media" in " ".join(container(media).get("command", []))
    check(media_command, f"{variant}: the media node does not run `convene media`")
    check(container(migrate).get("args") == ["migrate"], f"{variant}: the migration job does not run `convene migrate`")
    hooks = migrate["metadata"].get("annotations", {}).get("helm.sh/hook", "")
    check(set(hooks.split(",")) == {"pre-install", "pre-upgrade"}, f"{variant}: the migration is not a pre-install,pre-upgrade hook")

    api_env, media_env, migrate_env = env_of(container(api)), env_of(container(media)), env_of(container(migrate))
    for needed in ("CONVENE_DATABASE_URL", "CONVENE_SECRET_KEY"):
        check("secretKeyRef" in api_env.get(needed, {}).get("valueFrom", {}), f"{variant}: the control plane's {needed} is not from a Secret")
        check("secretKeyRef" in migrate_env.get(needed, {}).get("valueFrom", {}), f"{variant}: the migration's {needed} is not from a Secret")
        check(needed not in media_env, f"{variant}: the media node gets {needed}; it never touches the database")
    node_secret = [env.get("CONVENE_NODE_SECRET", {}).get("valueFrom", {}).get("secretKeyRef") for env in (api_env, media_env)]
    check(node_secret[0] is not None and node_secret[0] == node_secret[1], f"{variant}: control plane and media nodes do not share CONVENE_NODE_SECRET")

    # The control plane: public HTTP, metrics on an internal port only, probes.
    api_ports = ports(api)
    check(port_of(api_env["CONVENE_HTTP_ADDR"]["value"]) == api_ports["http"]["containerPort"], f"{variant}: api HTTP port mismatch")
    check(port_of(api_env["CONVENE_METRICS_ADDR"]["value"]) == api_ports["metrics"]["containerPort"], f"{variant}: api metrics port mismatch")
    check(api_env["CONVENE_METRICS_ADDR"]["value"].startswith("0.0.0.0:"), f"{variant}: api metrics not on 0.0.0.0")
    for workload in (api, media):
        c = container(workload)
        check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{variant}: {workload['metadata']['name']} readiness is not /readyz")
        check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{variant}: {workload['metadata']['name']} liveness is not /healthz")
        check(c["livenessProbe"]["httpGet"]["port"] == "http", f"{variant}: {workload['metadata']['name']} probes another port")

    # Services select pods and target their named ports; metrics Services are ClusterIP.
    for service in by_kind.get("Service", []):
        selected = [w for w in workloads if selects(service["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        if not check(len(selected) == 1, f"{variant}: Service {service['metadata']['name']} selects {len(selected)} workloads"):
            continue
        for port in service["spec"]["ports"]:
            check(port["targetPort"] in ports(selected[0]), f"{variant}: Service {service['metadata']['name']} targets a missing port {port['targetPort']}")
        if service["metadata"]["name"].endswith("-metrics"):
            check(service["spec"].get("type", "ClusterIP") == "ClusterIP", f"{variant}: {service['metadata']['name']} is not internal")
            check([p["name"] for p in service["spec"]["ports"]] == ["metrics"], f"{variant}: {service['metadata']['name']} exposes more than metrics")
        else:
            check("metrics" not in [p["targetPort"] for p in service["spec"]["ports"]], f"{variant}: the public Service exposes metrics")

    # Media node: control plane URL, node URL, ports, drain, one per host.
    media_spec = media["spec"]["template"]["spec"]
    media_ports = ports(media)
    api_service = named.get(("Service", api["metadata"]["name"]))
    control = re.fullmatch(r"http://([a-z0-9-]+)\.convene\.svc:(\d+)", media_env["CONVENE_CONTROL_URL"].get("value", ""))
    if check(control and api_service, f"{variant}: CONVENE_CONTROL_URL is not the control plane's Service"):
        check(control.group(1) == api_service["metadata"]["name"], f"{variant}: CONVENE_CONTROL_URL names {control.group(1)}")
        check(int(control.group(2)) in [p["port"] for p in api_service["spec"]["ports"]], f"{variant}: CONVENE_CONTROL_URL's port is not the Service's")
    check(media_env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP", f"{variant}: POD_IP is not status.podIP")
    http_port = media_ports["http"]["containerPort"]
    check(media_env["CONVENE_NODE_URL"]["value"] == f"http://$(POD_IP):{http_port}", f"{variant}: CONVENE_NODE_URL is not http://$(POD_IP):{http_port}")
    check(media_env["CONVENE_HTTP_ADDR"]["value"] == f"$(POD_IP):{http_port}", f"{variant}: media HTTP address mismatch")
    check(port_of(media_env["CONVENE_METRICS_ADDR"]["value"]) == media_ports["metrics"]["containerPort"], f"{variant}: media metrics port mismatch")
    check(list(media_env).index("POD_IP") < list(media_env).index("CONVENE_NODE_URL"), f"{variant}: POD_IP must come before its uses")
    shards = int(media_env["CONVENE_MEDIA_SHARDS"]["value"])
    first = port_of(media_env["CONVENE_MEDIA_UDP_ADDR"]["value"])
    udp = sorted(p["containerPort"] for p in media_ports.values() if p["protocol"] == "UDP")
    check(udp == list(range(first, first + shards)), f"{variant}: UDP ports {udp} are not {first}..{first + shards - 1}")
    check("CONVENE_MEDIA_PUBLIC_IP" in media_env or "CONVENE_MEDIA_PUBLIC_IP" in " ".join(container(media).get("command", [])), f"{variant}: no CONVENE_MEDIA_PUBLIC_IP")
    check("CONVENE_NODE_REGION" in media_env and "CONVENE_DATA_DIR" in media_env, f"{variant}: media region or data dir missing")
    check(media_spec.get("dnsPolicy") == "ClusterFirstWithHostNet", f"{variant}: media dnsPolicy is not ClusterFirstWithHostNet")
    check(container(media)["lifecycle"]["preStop"]["exec"]["command"] == [BINARY, "drain", "--wait"], f"{variant}: media preStop is not `convene drain --wait`")
    check(media_spec["terminationGracePeriodSeconds"] >= 3600, f"{variant}: media nodes get less than an hour to drain")
    anti = media_spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    check(any(term["topologyKey"] == "kubernetes.io/hostname" and selects(term["labelSelector"]["matchLabels"], media["spec"]["template"]["metadata"]["labels"]) for term in anti), f"{variant}: media nodes may share a machine")
    data = [v for v in media_spec["volumes"] if v["name"] == "data"]
    check(data and "emptyDir" in data[0] and media_env["CONVENE_DATA_DIR"]["value"] == "/var/lib/convene", f"{variant}: media data dir is not the emptyDir")

    # Autoscalers and disruption budgets point at what exists.
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        check((target["kind"], target["name"]) in named, f"{variant}: HPA {hpa['metadata']['name']} scales a missing {target['kind']}")
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                check_expression(metric["pods"]["metric"]["name"], f"{variant}: HPA {hpa['metadata']['name']}")
    media_hpa = [h for h in by_kind.get("HorizontalPodAutoscaler", []) if h["spec"]["scaleTargetRef"]["name"] == media["metadata"]["name"]]
    if media["kind"] == "Deployment" and "replicas" not in media["spec"]:
        check(media_hpa and media_hpa[0]["spec"]["metrics"][0]["type"] == "Pods", f"{variant}: media scales on no pods metric")
    if media["kind"] == "DaemonSet":
        check(not media_hpa, f"{variant}: an HPA targets the media DaemonSet")
    for budget in by_kind.get("PodDisruptionBudget", []) + by_kind.get("NetworkPolicy", []):
        selector = budget["spec"].get("selector", budget["spec"].get("podSelector"))["matchLabels"]
        check(any(selects(selector, w["spec"]["template"]["metadata"]["labels"]) for w in workloads), f"{variant}: {budget['kind']} {budget['metadata']['name']} selects nothing")
    for policy in by_kind.get("NetworkPolicy", []):
        check(not selects(policy["spec"]["podSelector"]["matchLabels"], media["spec"]["template"]["metadata"]["labels"]), f"{variant}: a NetworkPolicy claims to guard host-network media pods")

    # Ingress: the two hosts of the two URLs, to the control plane's http port.
    for ingress in by_kind.get("Ingress", []):
        hosts = sorted(rule["host"] for rule in ingress["spec"]["rules"])
        urls = sorted(re.sub(r"^https?://([^/:]+).*$", r"\1", api_env[k]["value"]) for k in ("CONVENE_PUBLIC_URL", "CONVENE_MEET_URL"))
        check(hosts == urls, f"{variant}: Ingress hosts {hosts} are not the site's and meet host's {urls}")
        for rule in ingress["spec"]["rules"]:
            for route in rule["http"]["paths"]:
                backend = route["backend"]["service"]
                check(backend["name"] == api["metadata"]["name"] and backend["port"].get("name") == "http", f"{variant}: Ingress goes elsewhere than the control plane's http port")

    # ServiceMonitor: scrapes exactly the two metrics Services.
    metrics_services = sorted(s["metadata"]["name"] for s in by_kind.get("Service", []) if s["metadata"]["name"].endswith("-metrics"))
    for monitor in by_kind.get("ServiceMonitor", []):
        chosen = sorted(s["metadata"]["name"] for s in by_kind.get("Service", []) if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]))
        check(chosen == metrics_services and len(chosen) == 2, f"{variant}: the ServiceMonitor selects {chosen}, not {metrics_services}")
        check([e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"], f"{variant}: the ServiceMonitor scrapes another port")

    # The dashboard.
    for config_map in by_kind.get("ConfigMap", []):
        if "convene.json" in config_map.get("data", {}):
            check(config_map["metadata"]["labels"].get("grafana_dashboard") == "1", f"{variant}: the dashboard lacks grafana_dashboard: \"1\"")
            dashboard = json.loads(config_map["data"]["convene.json"])
            expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
            check(len(expressions) >= 8, f"{variant}: the dashboard has {len(expressions)} queries")
            for expr in expressions:
                check_expression(expr, f"{variant}: dashboard")
            for wanted in ("convene_media_sessions", "convene_signal_rooms", "convene_media_rtp_bytes_total", "convene_http_requests_total"):
                check(any(wanted in e for e in expressions), f"{variant}: the dashboard does not show {wanted}")
    print(f"checked {variant}: {len(objects)} objects")


# --- compose.yaml ----------------------------------------------------------------------------------------


def check_compose():
    compose = yaml.safe_load((DEPLOY / "compose/compose.yaml").read_text())
    services = compose["services"]
    check({"postgres", "migrate", "api", "media-1", "media-2"} <= set(services), "compose: a service is missing")
    commands = {name: service.get("command") for name, service in services.items()}
    check(commands["migrate"] == ["migrate"] and commands["api"] == ["api"], "compose: migrate and api run the wrong commands")
    check(services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", "compose: api starts before the migration ends")
    secrets = set()
    published = []
    for name, service in services.items():
        env = service.get("environment", {})
        for key in env:
            check(not key.startswith("CONVENE_") or key in SETTINGS, f"compose: {name} sets {key}, which convene does not read")
        if name.startswith("media-"):
            check(commands[name] == ["media"], f"compose: {name} does not run `convene media`")
            check("CONVENE_DATABASE_URL" not in env, f"compose: {name} gets the database")
            http = port_of(env["CONVENE_HTTP_ADDR"])
            check(env["CONVENE_NODE_URL"] == f"http://{name}:{http}", f"compose: {name}'s CONVENE_NODE_URL is not http://{name}:{http}")
            check(env["CONVENE_CONTROL_URL"] == f"http://api:{port_of(services['api']['environment']['CONVENE_HTTP_ADDR'])}", f"compose: {name} has another control plane")
            check(env["CONVENE_MEDIA_PUBLIC_IP"] == "127.0.0.1", f"compose: {name}'s public IP is not 127.0.0.1")
            first, shards = port_of(env["CONVENE_MEDIA_UDP_ADDR"]), int(env["CONVENE_MEDIA_SHARDS"])
            expected = f"{first}-{first + shards - 1}:{first}-{first + shards - 1}/udp" if shards > 1 else f"{first}:{first}/udp"
            check(any(p.endswith(expected) for p in service.get("ports", [])), f"compose: {name} does not publish UDP {expected}")
            published.extend(range(first, first + shards))
        if "CONVENE_NODE_SECRET" in env:
            secrets.add(env["CONVENE_NODE_SECRET"])
    check(len(published) == len(set(published)), "compose: media nodes share UDP ports")
    check(len(secrets) == 1, "compose: the node secret differs between services")
    default_secret = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", next(iter(secrets)))
    check(len(default_secret) >= 32, "compose: the node secret is shorter than 32 characters")
    key = re.sub(r"^\$\{[A-Z_]+:-(.*)\}$", r"\1", services["api"]["environment"]["CONVENE_SECRET_KEY"])
    check(len(base64.b64decode(key)) == 32, "compose: CONVENE_SECRET_KEY is not 32 bytes in base64")
    print(f"checked compose.yaml: {len(services)} services")


# --- Terraform against the chart --------------------------------------------------------------------------


def check_terraform():
    module = DEPLOY / "terraform/aws"
    variables, node_groups = {}, {}
    for path in module.glob("*.tf"):
        with path.open() as file:
            parsed = hcl2.load(file)
        for block in parsed.get("variable", []):
            for name, body in block.items():
                variables[name] = body.get("default", [None])[0]
        for block in parsed.get("resource", []):
            for name, body in block.get("aws_eks_node_group", {}).items():
                node_groups[name] = body
    media = VALUES["media"]
    for variable, value in (("media_udp_port", media["udpPort"]), ("media_shards", media["shards"]), ("media_http_port", media["httpPort"]), ("media_metrics_port", media["metricsPort"])):
        check(variables.get(variable) == value, f"terraform: {variable} = {variables.get(variable)}, the chart's default is {value}")
    bounds = variables.get("media_nodes") or {}
    check((bounds.get("min"), bounds.get("max")) == (media["autoscaling"]["minReplicas"], media["autoscaling"]["maxReplicas"]), f"terraform: media_nodes {bounds} differ from the HPA's bounds")
    labels = node_groups["media"]["labels"][0]
    check(AWS_VALUES["media"]["nodeSelector"].items() <= labels.items(), "terraform: values-aws.yaml's media nodeSelector matches no node group label")
    check(AWS_VALUES["api"]["nodeSelector"].items() <= node_groups["control"]["labels"][0].items(), "terraform: values-aws.yaml's api nodeSelector matches no node group label")
    taint = {key: value[0] for key, value in node_groups["media"]["taint"][0].items() if isinstance(value, list)}
    toleration = AWS_VALUES["media"]["tolerations"][0]
    check((taint["key"], taint["value"], taint["effect"]) == (toleration["key"], toleration["value"], "NO_SCHEDULE") and toleration["effect"] == "NoSchedule", "terraform: the media taint is not what values-aws.yaml tolerates")
    check(AWS_VALUES["media"]["publicIp"]["source"] == "awsMetadata", "values-aws.yaml: media nodes on AWS need the public address from the instance metadata")
    print(f"checked terraform against the chart: {len(variables)} variables, node groups {sorted(node_groups)}")


def main():
    rendered = sorted(Path(sys.argv[1]).glob("*.yaml"))
    if not rendered:
        raise SystemExit(f"nothing rendered in {sys.argv[1]}: run chart.py first")
    for path in rendered:
        check_variant(path)
    check_compose()
    check_terraform()
    if failures:
        print("\n".join(f"FAIL {failure}" for failure in failures))
        raise SystemExit(f"{len(failures)} inconsistencies")
    print("consistent")


if __name__ == "__main__":
    main()
