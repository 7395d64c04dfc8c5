"""The deployment files: every kustomize overlay builds and its output validates (Kubernetes' schemas
for built-in kinds, our Strimzi schema for Kafka's), the compose file follows the Compose
Specification, the generated files match the code, and the manifests keep the platform's rules."""

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from contracts.topics import PARTITIONS, SERVICES, Topic, dead_letter_topic
from deploy.kafka.acls import Grant, service_acls
from deploy.kafka.principals import LOCAL_PASSWORDS
from deploy.manifests import COMPOSE, REALM, stale
from deploy.manifests.validate import OVERLAYS, ManifestError, _go_install, build, check_jsonschema, compose_problems, problems_of


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict]]:
    return {overlay: build(overlay) for overlay in OVERLAYS}


def of_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_the_generated_files_are_what_the_code_makes() -> None:
    assert stale() == [], "run `python -m deploy.manifests generate` and commit the result"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_builds_and_everything_it_makes_validates(built, overlay) -> None:
    kinds = {r["kind"] for r in built[overlay]}
    assert {"Deployment", "Service", "Job", "ConfigMap", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= kinds
    assert problems_of(overlay, built[overlay]) == []


def test_the_validation_catches_what_is_wrong(built) -> None:
    resources = copy.deepcopy(built["production"])
    deployment = of_kind(resources, "Deployment")["finance"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"  # misspelt field
    of_kind(resources, "KafkaTopic")["icc.finance.invoices"]["spec"]["replicas"] = 1
    user = of_kind(resources, "KafkaUser")["travel"]
    user["spec"]["authorization"]["acls"][0]["resource"]["patternType"] = "prefixed"  # Kafka's word, not Strimzi's
    of_kind(resources, "Kafka")["icc-kafka"]["spec"]["kafka"]["listeners"][0].pop("authentication")

    report = "\n".join(problems_of("production", resources))
    assert "Deployment/finance: spec.template.spec.containers.0: Additional properties are not allowed ('imagePullPolicey'" in report
    assert "KafkaTopic-icc.finance.invoices.json::$.spec.replicas: 3 was expected" in report
    assert "KafkaUser-travel.json::$.spec.authorization.acls[0].resource.patternType: 'prefixed' is not one of" in report
    assert "Kafka-icc-kafka.json::$.spec.kafka.listeners[0]: 'authentication' is a required property" in report


def test_the_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    assert compose_problems() == []
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["finance"]["prots"] = ["8004:8004"]
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert "prots" in "\n".join(check_jsonschema([tmp_path / "compose.yaml"], "--builtin-schema", "vendor.compose-spec"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_runs_non_root_probed_configured_and_migrated_by_its_job(built, overlay) -> None:
    deployments, jobs = of_kind(built[overlay], "Deployment"), of_kind(built[overlay], "Job")
    [config] = of_kind(built[overlay], "ConfigMap").values() if overlay == "production" else [
        c for name, c in of_kind(built[overlay], "ConfigMap").items() if name.startswith("icc-config")]
    assert config["data"]["MIGRATE_ON_START"] == "false" and config["data"]["KAFKA_REPLICATION_FACTOR"] == "3"
    for service in SERVICES:
        pod = deployments[service]["spec"]["template"]["spec"]
        [server], [wait] = pod["containers"], pod["initContainers"]
        assert server["readinessProbe"]["httpGet"]["path"] == "/ready" and server["livenessProbe"]["httpGet"]["path"] == "/health"
        assert server["resources"]["requests"] and server["resources"]["limits"]["memory"]
        assert wait["command"][2:5] == [f"services.{service}", "migrate", "--check"]
        job = jobs[f"{service}-migrate"]["spec"]["template"]["spec"]
        assert job["containers"][0]["command"] == ["python", "-m", f"services.{service}", "migrate"]
        for spec, container in [(pod, server), (pod, wait), (job, job["containers"][0])]:
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
            secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
            assert secrets["KAFKA_SASL_PASSWORD"] == service  # the Secret Strimzi makes for the KafkaUser
            assert {"DATABASE_URL", "OIDC_WEB_CLIENT_SECRET"} <= set(secrets)
            assert not [e for e in container["env"] if "value" in e and e["name"] not in ("HTTP_PORT", "REPLICAS")]  # no literal values


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_runs_replicas_rolled_one_at_a_time_each_named_after_its_pod(built, overlay) -> None:
    for service in SERVICES:
        deployment = of_kind(built[overlay], "Deployment")[service]
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
        [server] = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in server["env"]}
        assert env["REPLICAS"]["value"] == "2"
        assert env["REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        # browser sessions are a pod's own: a browser stays with its pod
        assert of_kind(built[overlay], "Service")[service]["spec"]["sessionAffinity"] == "ClientIP"
        budget = of_kind(built[overlay], "PodDisruptionBudget")[service]["spec"]  # a drain leaves one serving
        assert budget["maxUnavailable"] == 1 and budget["selector"] == deployment["spec"]["selector"]


def test_kafka_gets_the_same_users_and_acls_as_the_local_broker(built) -> None:
    for overlay in OVERLAYS:
        users = of_kind(built[overlay], "KafkaUser")
        assert set(users) == set(LOCAL_PASSWORDS)
        granted = set()
        for name, user in users.items():
            for acl in user["spec"].get("authorization", {}).get("acls", []):
                resource = acl["resource"]
                pattern = {"literal": "literal", "prefix": "prefixed"}[resource["patternType"]]
                granted.add((name, pattern, tuple(acl["operations"]), resource["type"], resource["name"]))
        wanted = {
            (g.principal, g.pattern, g.operations, kind, resource)
            for g in service_acls()
            for kind, resource in [*(("topic", t) for t in g.topics), *(("group", c) for c in g.groups)]
        }
        assert granted == wanted
        topics = of_kind(built[overlay], "KafkaTopic")
        assert {t["spec"]["topicName"] for t in topics.values()} == {*Topic, *map(dead_letter_topic, SERVICES)}
        assert {(t["spec"]["partitions"], t["spec"]["replicas"], t["spec"]["config"]["min.insync.replicas"]) for t in topics.values()} == {(PARTITIONS, 3, 2)}


def test_local_runs_everything_inside_and_production_takes_database_and_provider_by_reference(built) -> None:
    local, production = built["local"], built["production"]
    assert set(of_kind(local, "StatefulSet")) == {"postgres"} and "keycloak" in of_kind(local, "Deployment")
    [realm] = [c for name, c in of_kind(local, "ConfigMap").items() if name.startswith("keycloak-realm")]
    assert realm["data"]["realm-icc.json"] == REALM.read_text()
    assert {name.rsplit("-", 1)[0] for name in of_kind(local, "Secret")} == {"icc-database", "postgres", "icc-oidc", "keycloak-admin"}

    assert of_kind(production, "StatefulSet") == {} and "keycloak" not in of_kind(production, "Deployment")
    assert of_kind(production, "Secret") == {}  # created beside the platform, referenced by name
    [config] = of_kind(production, "ConfigMap").values()
    assert config["data"]["OIDC_ISSUER"].startswith("https://") and config["data"]["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert of_kind(production, "Kafka")["icc-kafka"]["spec"]["kafka"]["listeners"][0]["tls"] is True
    for workload in [*of_kind(production, "Deployment").values(), *of_kind(production, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            assert container["image"].startswith("registry.example.org/") and not container["image"].endswith(":dev")
            if workload["metadata"]["name"] == "portal":  # pages over the services' APIs: no Kafka client
                continue
            assert {"name": "kafka-ca", "mountPath": "/etc/icc/kafka-ca", "readOnly": True} in container["volumeMounts"]


def test_without_go_kustomize_cannot_be_fetched_and_the_error_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ManifestError, match="Install Go 1.26 or newer"):
        _go_install(tmp_path)
