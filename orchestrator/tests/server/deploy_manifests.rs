//! The deployment in `k8s/`: every manifest is a valid object of its Kubernetes type, the example
//! overlay renders with kustomize, and the alert rules pass promtool's checks and their unit
//! tests. Needs kubectl and promtool (scripts/test installs them).

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s")
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} (scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Parses `doc` as `T` and back: what comes back must be what went in, so a misspelt or
/// misplaced field (which a lenient parse would drop) fails.
fn round_trips<T: DeserializeOwned + Serialize>(doc: &Value, name: &str) {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{name} is not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(
        &back, doc,
        "{name}: fields its type does not have were dropped"
    );
}

/// Checks one object by its kind; returns the kind.
fn check_object(doc: &Value, source: &str) -> String {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let name = format!("{source}: {kind} {}", doc["metadata"]["name"]);
    match kind.as_str() {
        "Deployment" => round_trips::<Deployment>(doc, &name),
        "Service" => round_trips::<Service>(doc, &name),
        "HorizontalPodAutoscaler" => round_trips::<HorizontalPodAutoscaler>(doc, &name),
        "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(doc, &name),
        "ServiceAccount" => round_trips::<ServiceAccount>(doc, &name),
        "Role" => round_trips::<Role>(doc, &name),
        "RoleBinding" => round_trips::<RoleBinding>(doc, &name),
        "NetworkPolicy" => round_trips::<NetworkPolicy>(doc, &name),
        "ConfigMap" => round_trips::<ConfigMap>(doc, &name),
        "Secret" => {
            // kustomize wraps long base64 values; the API server's decoder skips the newlines.
            let mut doc = doc.clone();
            if let Some(data) = doc["data"].as_object_mut() {
                for v in data.values_mut() {
                    if let Some(text) = v.as_str() {
                        *v = Value::String(text.split_whitespace().collect());
                    }
                }
            }
            round_trips::<Secret>(&doc, &name);
        }
        "Namespace" => round_trips::<Namespace>(doc, &name),
        "Ingress" => round_trips::<Ingress>(doc, &name),
        "ValidatingAdmissionPolicy" => round_trips::<ValidatingAdmissionPolicy>(doc, &name),
        "ValidatingAdmissionPolicyBinding" => {
            round_trips::<ValidatingAdmissionPolicyBinding>(doc, &name)
        }
        // A Prometheus Operator resource: k8s-openapi has no type; its rules are checked by
        // promtool below.
        "PrometheusRule" => assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{name}"),
        other => panic!("{name}: no check for kind {other:?}; add its type here"),
    }
    kind
}

fn yaml_docs(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn every_manifest_is_a_valid_object_of_its_type() {
    let mut checked = 0;
    for dir in ["base", "overlays/example"] {
        for entry in std::fs::read_dir(k8s_dir().join(dir)).expect("k8s dir") {
            let path = entry.expect("entry").path();
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // Kustomize's own files, patches (partial objects) and promtool's tests are not
            // objects.
            if !file.ends_with(".yaml")
                || file == "kustomization.yaml"
                || file.ends_with("-patch.yaml")
                || file.ends_with(".test.yaml")
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read manifest");
            for doc in yaml_docs(&text) {
                check_object(&doc, &format!("{dir}/{file}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 18, "only {checked} manifests found");
}

#[test]
fn the_example_overlay_renders_the_whole_deployment() {
    let rendered = run(
        Command::new("kubectl")
            .args(["kustomize"])
            .arg(k8s_dir().join("overlays/example")),
        "kubectl kustomize",
    );
    let docs = yaml_docs(&rendered);
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| check_object(d, "kubectl kustomize k8s/overlays/example"))
        .collect();
    for kind in [
        "Namespace",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "Ingress",
        "PrometheusRule",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} rendered");
    }
    for d in &docs {
        // Cluster-scoped: whether kustomize stamps the namespace on the admission policy depends
        // on whether its schema knows the kind; the API server drops it either way.
        let kind = d["kind"].as_str().unwrap_or_default();
        if !matches!(
            kind,
            "Namespace" | "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding"
        ) {
            assert_eq!(
                d["metadata"]["namespace"], "parley",
                "{}",
                d["metadata"]["name"]
            );
        }
    }
    let bot = docs
        .iter()
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "parley-bot")
        .expect("bot deployment");
    assert!(
        bot["spec"]["replicas"].is_null(),
        "the launcher owns the bot count: applying the manifests must not reset it"
    );
    let container = &bot["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/parley/bot:0.1.0");
    assert!(container["resources"]["requests"]["memory"].is_string());

    // Bots join meetings at user-supplied links: their way to the internet must not lead into
    // the cluster's networks or to the cloud metadata service.
    let bot_policy = docs
        .iter()
        .find(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == "parley-bot")
        .expect("bot network policy");
    assert!(
        bot_policy["spec"]["policyTypes"]
            .as_array()
            .expect("policyTypes")
            .iter()
            .any(|t| t == "Egress"),
        "the bot NetworkPolicy must restrict egress"
    );
    let internet: Vec<&Value> = bot_policy["spec"]["egress"]
        .as_array()
        .expect("bot egress rules")
        .iter()
        .flat_map(|rule| rule["to"].as_array().into_iter().flatten())
        .filter(|peer| peer["ipBlock"]["cidr"] == "0.0.0.0/0")
        .collect();
    assert!(
        !internet.is_empty(),
        "bots reach the internet by an ipBlock"
    );
    for peer in internet {
        let except = peer["ipBlock"]["except"].as_array().expect("except");
        for range in ["10.0.0.0/8", "169.254.0.0/16"] {
            assert!(
                except.iter().any(|e| e == range),
                "bot egress must exclude {range}"
            );
        }
    }

    // /metrics has a Service and port of its own, which no Ingress routes to.
    let config = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("config map");
    assert_eq!(config["data"]["PARLEY_METRICS_LISTEN"], "0.0.0.0:9090");
    let service_ports = |name: &str| -> Vec<String> {
        let service = docs
            .iter()
            .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Service {name}"));
        service["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(service_ports("parley-orchestrator"), ["http"]);
    assert_eq!(service_ports("parley-orchestrator-metrics"), ["metrics"]);
    let ingresses: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Ingress").collect();
    assert!(!ingresses.is_empty(), "no Ingress rendered");
    for ingress in ingresses {
        let backends: Vec<&Value> = ingress["spec"]["rules"]
            .as_array()
            .expect("ingress rules")
            .iter()
            .flat_map(|rule| rule["http"]["paths"].as_array().into_iter().flatten())
            .map(|path| &path["backend"]["service"])
            .chain(
                std::iter::once(&ingress["spec"]["defaultBackend"]["service"])
                    .filter(|s| !s.is_null()),
            )
            .collect();
        assert!(
            !backends.is_empty(),
            "{}: no backend",
            ingress["metadata"]["name"]
        );
        for service in backends {
            assert_eq!(
                service["name"], "parley-orchestrator",
                "the API Service only"
            );
            assert_eq!(service["port"]["name"], "http", "the API port only");
        }
    }

    let policy = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicy")
        .expect("admission policy");
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("admission policy binding");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
}

/// The bot image, and the ConfigMap its pods run with, name the model the image installs: a
/// worker finds it in the image's model dir instead of failing (or downloading) at start.
#[test]
fn the_bot_image_holds_the_model_its_configuration_names() {
    let dockerfile = std::fs::read_to_string(k8s_dir().join("../docker/bot.Dockerfile"))
        .expect("docker/bot.Dockerfile");
    let installed: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.split("models install ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let removed: Vec<&str> = dockerfile
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("/opt/parley/models/ggml-"))
        .filter_map(|f| f.strip_suffix(".bin"))
        .collect();
    let named = dockerfile
        .split_whitespace()
        .find_map(|w| w.strip_prefix("PARLEY_MODEL="))
        .expect("the image sets PARLEY_MODEL");
    assert!(
        installed.contains(&named) && !removed.contains(&named),
        "the image names {named}; it installs {installed:?} and removes {removed:?}"
    );
    let configmap =
        std::fs::read_to_string(k8s_dir().join("base/configmap.yaml")).expect("configmap.yaml");
    let config = yaml_docs(&configmap).remove(0);
    assert_eq!(
        config["data"]["PARLEY_MODEL"], named,
        "the ConfigMap's model"
    );
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let text = std::fs::read_to_string(k8s_dir().join("base/prometheusrule.yaml"))
        .expect("prometheusrule.yaml");
    let rule: Value = yaml_docs(&text).into_iter().next().expect("one document");
    let spec = serde_yaml::to_string(&rule["spec"]).expect("spec as YAML");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("alerts.rules.yaml"), spec).expect("write rules");
    std::fs::copy(
        k8s_dir().join("base/alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .expect("copy tests");
    let checked = run(
        Command::new("promtool")
            .args(["check", "rules", "alerts.rules.yaml"])
            .current_dir(dir.path()),
        "promtool check rules",
    );
    assert!(checked.contains("SUCCESS"), "{checked}");
    run(
        Command::new("promtool")
            .args(["test", "rules", "alerts.test.yaml"])
            .current_dir(dir.path()),
        "promtool test rules",
    );
    let tests = std::fs::read_to_string(dir.path().join("alerts.test.yaml")).expect("tests");
    for group in rule["spec"]["groups"].as_array().expect("groups") {
        for r in group["rules"].as_array().expect("rules") {
            if let Some(alert) = r["alert"].as_str() {
                assert!(
                    tests.contains(&format!("alertname: {alert}")),
                    "alert {alert} has no unit test"
                );
            }
        }
    }
}
