"""Lints and renders the Helm chart offline with Helm's SDK (helm-python-sdk).

Usage: render-chart.py CHART VALUES_DIR OUT_DIR

Each VALUES_DIR/NAME.yaml is a value set. One whose first line is "# Refused (NEEDLE):"
must fail to render with a message holding NEEDLE; the others must lint clean
(strict: warnings fail) and render, each rendering written to OUT_DIR/NAME.yaml.
"""

import pathlib
import sys

import helm_python
import yaml


def main(chart: str, values_dir: str, out_dir: str) -> int:
    loaded = helm_python.Chart.load(chart)
    failures = []
    for values_file in sorted(pathlib.Path(values_dir).glob("*.yaml")):
        text = values_file.read_text()
        values = yaml.safe_load(text) or {}
        first = text.splitlines()[0] if text else ""
        if first.startswith("# Refused ("):
            failures += refused(loaded, values_file, values, first)
            continue
        report = helm_python.lint(chart, values, strict=True)
        findings = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        if report.get("errors") or findings:
            failures.append(f"{values_file.name}: helm lint: {report}")
            continue
        rendered = loaded.render(values, name="sunset", namespace="sunset")
        documents = [
            body.strip()
            for path, body in sorted(rendered.items())
            if path.endswith((".yaml", ".yml")) and body.strip()
        ]
        pathlib.Path(out_dir, values_file.name).write_text(
            "".join(f"---\n{d}\n" for d in documents)
        )
        objects = [o for d in documents for o in yaml.safe_load_all(d) if o]
        failures += [f"{values_file.name}: {f}" for f in promises(objects)]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def promises(objects):
    """What every rendering must hold; kubernetes-validate checks only the shapes."""
    kinds = {}
    for o in objects:
        kinds.setdefault(o["kind"], []).append(o)
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    found = []
    if not container["securityContext"].get("readOnlyRootFilesystem"):
        found.append("the root file system is writable")
    if not pod["securityContext"].get("runAsNonRoot"):
        found.append("the pod may run as root")
    probes = {
        name: container.get(name, {}).get("httpGet", {}).get("path")
        for name in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    if probes != {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
        found.append(f"probes: {probes}")
    for env in container.get("env", []):
        secret_like = any(w in env["name"] for w in ("PIN", "PASSWORD", "SECRET", "DATABASE_URL"))
        if secret_like and "value" in env:
            found.append(f"{env['name']} is given in clear, not from a Secret")
    if "resources" not in container or "requests" not in container["resources"]:
        found.append("no resource requests")
    metrics = [s for s in kinds["Service"] if s["metadata"]["name"].endswith("-metrics")]
    api = [s for s in kinds["Service"] if not s["metadata"]["name"].endswith("-metrics")]
    if not metrics or any(p["name"] == "metrics" for s in api for p in s["spec"]["ports"]):
        found.append("metrics are not on a Service of their own")
    for monitor in kinds.get("ServiceMonitor", []):
        wanted = monitor["spec"]["selector"]["matchLabels"]
        ports = {p["name"] for p in metrics[0]["spec"]["ports"]}
        if any(metrics[0]["metadata"]["labels"].get(k) != v for k, v in wanted.items()):
            found.append("the ServiceMonitor selects no metrics Service")
        if any(e["port"] not in ports for e in monitor["spec"]["endpoints"]):
            found.append("the ServiceMonitor names a port the metrics Service lacks")
    return found


def refused(chart, values_file, values, first):
    """A value set whose first line is "# Refused (NEEDLE): why" must fail, naming NEEDLE."""
    needle = first.split("(", 1)[1].split(")", 1)[0]
    try:
        chart.render(values, name="sunset", namespace="sunset")
    except helm_python.HelmError as e:
        if needle in str(e):
            return []
        return [f"{values_file.name}: refused, but not for {needle}: {e}"]
    return [f"{values_file.name}: rendered, but must be refused ({first})"]


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
