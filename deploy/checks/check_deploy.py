"""Offline checks of what deploy/ ships, run by scripts/check-deploy (and so by scripts/test).

- The rendered Kubernetes objects (`kubectl kustomize deploy/k8s`, passed on stdin) validate
  strictly against the Kubernetes API schemas bundled in `kubernetes-validate`; objects of
  custom resources (KEDA, Prometheus operator) against the schemas kept in deploy/checks/.
- Every Deployment's terminationGracePeriodSeconds is above the grace its program asks for.
- deploy/grafana/taskvault.json parses.
- deploy/compose.yaml validates against the Compose file schema (its path is the first
  argument; scripts/check-deploy takes it from the docker-compose package on PyPI).
"""

import json
import pathlib
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = pathlib.Path(__file__).resolve().parent
KUBERNETES_VERSION = "1.30.0"
# Custom resources: (apiVersion, kind) -> schema file in this folder.
CUSTOM = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.schema.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.schema.json",
}


def fail(message):
    print(f"check-deploy: error: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    objects = [doc for doc in yaml.safe_load_all(sys.stdin) if doc]
    if not objects:
        fail("kustomize rendered nothing")
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (obj.get("apiVersion"), obj.get("kind"))
        try:
            if key in CUSTOM:
                schema = json.loads((HERE / CUSTOM[key]).read_text())
                jsonschema.validate(obj, schema)
            else:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            fail(f"{name} is invalid: {error.message}")
        except kubernetes_validate.SchemaNotFoundError:
            fail(f"{name}: no schema for {key[0]} {key[1]} (add one to deploy/checks/)")
    check_grace_periods(objects)
    print(f"check-deploy: {len(objects)} Kubernetes objects valid (schemas of {KUBERNETES_VERSION})")
    check_compose(pathlib.Path(sys.argv[1]))
    check_dashboard()


def check_compose(schema_path):
    compose = HERE.parent / "compose.yaml"
    try:
        jsonschema.validate(yaml.safe_load(compose.read_text()), json.loads(schema_path.read_text()))
    except jsonschema.ValidationError as error:
        fail(f"deploy/compose.yaml is invalid at {'/'.join(map(str, error.absolute_path))}: {error.message}")
    print("check-deploy: deploy/compose.yaml valid (Compose file schema)")


def env_value(container, name, default):
    for item in container.get("env", []):
        if item.get("name") == name and "value" in item:
            return item["value"]
    return default


def check_grace_periods(objects):
    # The worker waits SHUTDOWN_GRACE_SECS (default 30) for running jobs after SIGTERM, then
    # hands them back; the pod must outlive that, or the kubelet kills jobs mid-write.
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        spec = obj["spec"]["template"]["spec"]
        grace = spec.get("terminationGracePeriodSeconds", 30)
        for container in spec["containers"]:
            if container.get("command", [None])[0] == "worker":
                wanted = int(env_value(container, "SHUTDOWN_GRACE_SECS", 30))
                if grace <= wanted + 5:
                    fail(
                        f"Deployment/{obj['metadata']['name']}: terminationGracePeriodSeconds "
                        f"{grace} must exceed the worker's SHUTDOWN_GRACE_SECS ({wanted}) by more than 5 s"
                    )


def check_dashboard():
    # The metric names in it are checked against a real run by the job service's tests.
    path = HERE.parent / "grafana" / "taskvault.json"
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        fail(f"deploy/grafana/taskvault.json is not JSON: {error}")
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    if not exprs:
        fail("deploy/grafana/taskvault.json has no queries")
    print(f"check-deploy: Grafana dashboard parses ({len(exprs)} queries)")


if __name__ == "__main__":
    main()
