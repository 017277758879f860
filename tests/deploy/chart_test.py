#!/usr/bin/env python3
"""The Helm chart (helm/kudos-platform) and the binaries agree.

No `helm` binary is available, so the chart is rendered by
tests/deploy/gotemplate.py (the subset of Go templates the chart uses) with
its values.yaml and with overrides that take the other branches (external
Redis, an ACL user, no autoscaling, restricted ingress). Then:
  - every rendered document parses as YAML and is a named Kubernetes object;
  - every --flag the chart passes to a binary is in that binary's --helpfull;
  - every environment variable it sets is one the binary reads: named in a
    getenv/EnvOr call of the sources linked into it (common/ and its service
    directory) and present in the binary itself (so a variable of a module
    the binary does not link, e.g. REDIS_ADDR for the gateway, is caught);
  - pods are locked down, secrets are files, each service has a PDB, an HPA,
    a NetworkPolicy and probes on the port it listens on; Redis is reachable
    only from the three services that use it; the image holds every binary.

  python3 chart_test.py --chart helm/kudos-platform --sources . \
      --dockerfile Dockerfile --binary ledger=build/services/ledger/ledger_server ...
  [unittest arguments, e.g. ChartTest.test_flags_are_accepted_by_each_binary]
"""

import argparse
import copy
import glob
import os
import re
import subprocess
import sys
import unittest

import yaml

sys.dont_write_bytecode = True  # run from the source tree: leave no __pycache__ in it
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gotemplate import Renderer  # noqa: E402

OPTIONS = None
SERVICES = ("ledger", "kudos", "leaderboard", "gateway", "integrations", "programs")
REDIS_USERS = ("ledger", "kudos", "leaderboard", "integrations", "programs")


def merge(base, override):
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


# Values that take every branch of the templates at least once.
VALUE_SETS = {
    "defaults": {},
    "external-redis-acl-user": {
        "redis": {"deploy": False, "seeds": ["redis.example.internal:6379"],
                  "auth": {"username": "kudos-app"}},
        "autoscaling": {"enabled": False},
        "networkPolicy": {"ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]},
    },
    "chart-redis-acl-user": {
        "redis": {"auth": {"username": "kudos-app"}, "storage": {"storageClassName": "fast"}},
        "networkPolicy": {"enabled": False},
    },
    # The rolling upgrade from a version before record-keyed kudos (helm/README.md).
    "kudos-rolling-upgrade": {"services": {"kudos": {"writeRequestKeys": True}}},
    "kudos-record-buckets-upgrade": {"services": {"kudos": {"writeRecordKeys": True}}},
    # The rolling upgrade from a version before the transfer buckets (helm/README.md).
    "ledger-rolling-upgrade": {"services": {"ledger": {"writeTransferKeys": True}}},
    # The rolling upgrade from a version before the stored leaderboard events (helm/README.md).
    "leaderboard-full-events-upgrade": {"services": {"leaderboard": {"writeFullEvents": True}}},
    # The rolling upgrade from a version before the guards scored in seconds (helm/README.md).
    "leaderboard-guard-scores-upgrade": {"services": {"leaderboard": {"writeGuardScoresInMs": True}}},
}


def render_chart(values):
    root = {"Values": values, "Release": {"Name": "kp", "Namespace": "kudos"},
            "Chart": {"Name": "kudos-platform"}}
    renderer = Renderer()
    templates = sorted(glob.glob(os.path.join(OPTIONS.chart, "templates", "*")))
    for path in templates:
        if os.path.basename(path).startswith("_"):
            with open(path) as f:
                renderer.load_helpers(f.read())
    rendered = {}
    for path in templates:
        name = os.path.basename(path)
        if name.startswith("_") or not name.endswith((".yaml", ".yml")):
            continue
        with open(path) as f:
            rendered[name] = renderer.render(f.read(), root)
    return rendered


def documents(values):
    docs = []
    for name, text in render_chart(values).items():
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                docs.append((name, doc))
    return docs


def workloads(docs):
    return [d for _, d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def service_containers(docs):
    """(service, container) for every container that runs one of our binaries."""
    found = []
    for workload in workloads(docs):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            command = container.get("command") or []
            match = re.fullmatch(r"/usr/local/bin/(\w+)_server", command[0] if command else "")
            if match:
                found.append((match.group(1), container, workload))
    return found


_FLAG_CACHE = {}
_ENV_CACHE = {}


def accepted_flags(service):
    if service not in _FLAG_CACHE:
        result = subprocess.run([OPTIONS.binaries[service], "--helpfull"], capture_output=True,
                                text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
        flags = set(re.findall(r"^\s+--([a-z0-9_]+) \(", result.stdout + result.stderr, re.M))
        if not flags:
            raise AssertionError("%s --helpfull listed no flags" % service)
        _FLAG_CACHE[service] = flags
    return _FLAG_CACHE[service]


_ENV_CALL = re.compile(r'(?:getenv|EnvOr|IntEnvOr|DoubleEnvOr)\(\s*"([A-Z0-9_]+)"')
_ENV_CONSTANT = re.compile(r'Env\[\]\s*=\s*"([A-Z0-9_]+)"')


def read_environment(service):
    """Variables the sources linked into `service` read, that the binary holds."""
    if service not in _ENV_CACHE:
        names = set()
        patterns = [os.path.join(OPTIONS.sources, "common", "**", "*.%s" % ext)
                    for ext in ("cc", "h")]
        patterns += [os.path.join(OPTIONS.sources, "services", service, "*.%s" % ext)
                     for ext in ("cc", "h")]
        for pattern in patterns:
            for path in glob.glob(pattern, recursive=True):
                with open(path, errors="replace") as f:
                    text = f.read()
                names.update(_ENV_CALL.findall(text))
                names.update(_ENV_CONSTANT.findall(text))
        with open(OPTIONS.binaries[service], "rb") as f:
            binary = f.read()
        _ENV_CACHE[service] = {n for n in names if n.encode() in binary}
    return _ENV_CACHE[service]


def flag_name(arg):
    match = re.fullmatch(r"--([a-z0-9_]+)(=.*)?", arg, re.S)
    if not match:
        raise AssertionError("argument %r is not --flag or --flag=value" % arg)
    return match.group(1)


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(OPTIONS.chart, "values.yaml")) as f:
            cls.defaults = yaml.safe_load(f)
        cls.rendered = {name: documents(merge(cls.defaults, override))
                        for name, override in VALUE_SETS.items()}

    def each_value_set(self, check):
        """check(value_set_name, docs) once per value set, each a subtest."""
        for name, docs in self.rendered.items():
            with self.subTest(values=name):
                check(name, docs)

    def test_every_template_renders_as_valid_yaml_objects(self):
        def check(value_set, docs):
            self.assertTrue(docs)
            seen = set()
            for template, doc in docs:
                self.assertIsInstance(doc, dict, template)
                for field in ("apiVersion", "kind", "metadata"):
                    self.assertIn(field, doc, template)
                key = (doc["kind"], doc["metadata"]["name"])
                self.assertNotIn(key, seen, "%s renders %s twice" % (template, key))
                seen.add(key)

        self.each_value_set(check)

    def test_every_service_runs_its_binary_from_the_image(self):
        with open(OPTIONS.dockerfile) as f:
            dockerfile = f.read()
        built = set(re.search(r"for service in ([a-z ]+); do", dockerfile).group(1).split())
        def check(value_set, docs):
            services = sorted(service for service, _, _ in service_containers(docs))
            self.assertEqual(services, sorted(SERVICES))
            self.assertTrue(set(services) <= built, "the Dockerfile builds %s" % built)

        self.each_value_set(check)

    def test_flags_are_accepted_by_each_binary(self):
        def check(value_set, docs):
            for service, container, _ in service_containers(docs):
                for arg in container.get("args", []):
                    self.assertIn(flag_name(arg), accepted_flags(service),
                                  "%s does not accept %s" % (service, arg))

        self.each_value_set(check)

    def test_environment_variables_are_read_by_each_binary(self):
        def check(value_set, docs):
            for service, container, _ in service_containers(docs):
                for variable in container.get("env", []):
                    self.assertIn(variable["name"], read_environment(service),
                                  "%s does not read %s" % (service, variable["name"]))

        self.each_value_set(check)

    def test_the_checks_catch_a_flag_or_variable_a_binary_does_not_take(self):
        # The two checks above would pass vacuously if the lookups found everything.
        self.assertNotIn("no_such_flag", accepted_flags("ledger"))
        self.assertIn("redis_password_file", accepted_flags("ledger"))
        self.assertNotIn("REDIS_PASSWORD_FILE", read_environment("gateway"))
        self.assertNotIn("LEDGER_ADDR", read_environment("ledger"))
        self.assertIn("REDIS_PASSWORD_FILE", read_environment("leaderboard"))

    def test_pods_run_non_root_read_only_without_capabilities(self):
        def check(value_set, docs):
            for workload in workloads(docs):
                name = workload["metadata"]["name"]
                pod = workload["spec"]["template"]["spec"]
                self.assertIs(pod["securityContext"]["runAsNonRoot"], True, name)
                self.assertGreater(pod["securityContext"]["runAsUser"], 0, name)
                self.assertEqual(pod["securityContext"]["seccompProfile"]["type"],
                                 "RuntimeDefault", name)
                self.assertIs(pod.get("automountServiceAccountToken"), False, name)
                for container in pod["containers"]:
                    context = container["securityContext"]
                    self.assertIs(context["readOnlyRootFilesystem"], True, name)
                    self.assertIs(context["allowPrivilegeEscalation"], False, name)
                    self.assertEqual(context["capabilities"]["drop"], ["ALL"], name)

        self.each_value_set(check)

    def test_secrets_are_mounted_files_and_never_literal_values(self):
        def check(value_set, docs):
            for service, container, workload in service_containers(docs):
                env = {e["name"]: e for e in container["env"]}
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                files = ["JWT_KEY_FILE", "SERVICE_TOKEN_SECRET_FILE"] + (["REDIS_PASSWORD_FILE"]
                                            if service in REDIS_USERS else [])
                for variable in files:
                    path = env[variable]["value"]
                    self.assertIn(os.path.dirname(path), mounts, "%s %s" % (service, variable))
                for secret in ("JWT_KEY", "REDIS_PASSWORD", "SERVICE_TOKEN_SECRET"):
                    self.assertNotIn(secret, env, "%s: %s must be a mounted file" % (service, secret))
                self.assertEqual(env["KUDOS_DEV_INSECURE_DEFAULTS"]["value"], "0")
                volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
                self.assertIn("secret", volumes["auth"])

        self.each_value_set(check)

    def test_each_service_has_a_disruption_budget_autoscaler_policy_and_probes(self):
        def check(value_set, docs):
            values = merge(self.defaults, VALUE_SETS[value_set])
            by_kind = {}
            for _, doc in docs:
                by_kind.setdefault(doc["kind"], []).append(doc)
            for service, container, workload in service_containers(docs):
                labels = workload["spec"]["template"]["metadata"]["labels"]

                def selects(doc, path):
                    selector = doc["spec"]
                    for part in path:
                        selector = selector[part]
                    return all(labels.get(k) == v for k, v in selector.items())

                self.assertTrue(any(selects(d, ("selector", "matchLabels"))
                                    for d in by_kind.get("PodDisruptionBudget", [])), service)
                if values["autoscaling"]["enabled"]:
                    self.assertTrue(any(d["spec"]["scaleTargetRef"]["name"] ==
                                        workload["metadata"]["name"]
                                        for d in by_kind["HorizontalPodAutoscaler"]), service)
                    self.assertNotIn("replicas", workload["spec"], service)
                if values["networkPolicy"]["enabled"]:
                    (policy,) = [d for d in by_kind["NetworkPolicy"]
                                 if selects(d, ("podSelector", "matchLabels"))]
                    for rule in policy["spec"]["ingress"]:
                        # Restricted ingress still admits the release's own callers.
                        peers = [p.get("podSelector", {}).get("matchLabels", {})
                                 for p in rule.get("from", [])]
                        self.assertTrue(not peers or any(
                            all(labels.get(k) == v for k, v in peer.items()) and peer
                            for peer in peers), "%s refuses the release's pods" % service)
                port = values["services"][service]["port"]
                listen = [a for a in container["args"] if a.startswith(("--listen=", "--http="))]
                self.assertEqual(listen, ["--%s=0.0.0.0:%d" % (
                    "http" if service == "gateway" else "listen", port)])
                for probe in ("readinessProbe", "livenessProbe"):
                    spec = container[probe]
                    if service == "gateway":
                        self.assertEqual(spec["httpGet"], {"path": "/healthz", "port": port})
                    else:
                        self.assertEqual(spec["grpc"]["port"], port, service)

        self.each_value_set(check)

    def test_redis_is_reachable_only_from_the_services_that_use_it(self):
        docs = self.rendered["defaults"]
        policies = [d for _, d in docs if d["kind"] == "NetworkPolicy" and
                    d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "redis"]
        self.assertEqual(len(policies), 1)
        (rule,) = policies[0]["spec"]["ingress"]
        (peer,) = rule["from"]
        expressions = {e["key"]: e["values"] for e in peer["podSelector"]["matchExpressions"]}
        self.assertEqual(sorted(expressions["app.kubernetes.io/name"]), sorted(REDIS_USERS))
        gateway_env = [e["name"] for s, c, _ in service_containers(docs) if s == "gateway"
                       for e in c["env"]]
        self.assertFalse([n for n in gateway_env if n.startswith("REDIS")])

    def test_chart_redis_keeps_an_append_only_file_on_a_volume_and_requires_a_password(self):
        def check(value_set, docs):
            sets = [d for _, d in docs if d["kind"] == "StatefulSet"]
            if not merge(self.defaults, VALUE_SETS[value_set])["redis"]["deploy"]:
                self.assertEqual(sets, [])
                return
            (redis,) = sets
            self.assertEqual(redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data")
            config = next(d for _, d in docs if d["kind"] == "ConfigMap")["data"]["redis.conf"]
            self.assertIn("appendonly yes", config.splitlines())
            self.assertIn("maxmemory-policy noeviction", config.splitlines())
            script = redis["spec"]["template"]["spec"]["containers"][0]["args"][0]
            self.assertTrue("requirepass" in script or "user default off" in script)
            self.assertNotIn("--requirepass", script)  # never on a command line

        self.each_value_set(check)

    def test_chart_redis_runs_with_the_platforms_redis_settings(self):
        """Every setting of scripts/redis-platform.conf is in the chart Redis's config."""
        with open(os.path.join(OPTIONS.sources, "scripts", "redis-platform.conf")) as f:
            settings = [line.strip() for line in f
                        if line.strip() and not line.lstrip().startswith("#")]
        self.assertTrue(settings)

        def check(value_set, docs):
            if not merge(self.defaults, VALUE_SETS[value_set])["redis"]["deploy"]:
                return
            config = next(d for _, d in docs if d["kind"] == "ConfigMap")["data"]["redis.conf"]
            lines = [line.strip() for line in config.splitlines()]
            for setting in settings:
                self.assertIn(setting, lines)

        self.each_value_set(check)


def main():
    global OPTIONS
    parser = argparse.ArgumentParser()
    parser.add_argument("--chart", required=True)
    parser.add_argument("--sources", required=True)
    parser.add_argument("--dockerfile", required=True)
    parser.add_argument("--binary", action="append", default=[],
                        help="service=path of its binary, once per service")
    OPTIONS, rest = parser.parse_known_args()
    OPTIONS.binaries = dict(b.split("=", 1) for b in OPTIONS.binary)
    missing = set(SERVICES) - set(OPTIONS.binaries)
    if missing:
        parser.error("--binary missing for %s" % sorted(missing))
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
