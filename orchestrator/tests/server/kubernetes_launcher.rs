//! The Kubernetes launcher against an in-memory Kubernetes API (kmock, installed by
//! scripts/test). No real API server, kubelet or controller can run on the test machine, so
//! this checks what the launcher asks of the API (replica counts, pod deletion costs), not pods
//! actually starting.

use crate::child_servers::wait_for;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use parley_bot::fleet::{BotInfo, WorkerState};
use parley_orchestrator::fleet::launchers::kubernetes::KubernetesLauncher;
use parley_testkit::servers::free_port;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct FakeApi(Child);

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fake_api() -> (FakeApi, u16) {
    let port = free_port().expect("port");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/kmock_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("cannot start python3 for the fake Kubernetes API");
    wait_for(
        port,
        "the fake Kubernetes API (pip install kmock)",
        &mut child,
        Duration::from_secs(30),
    );
    (FakeApi(child), port)
}

fn bot(worker: &str, state: WorkerState) -> BotInfo {
    BotInfo {
        v: parley_shared::fleet::FLEET_VERSION,
        worker_id: worker.to_owned(),
        state,
        meeting_id: None,
        meetings: Vec::new(),
        max_meetings: 1,
        load: Default::default(),
        host: worker.to_owned(),
        pid: 1,
        started_ms: 0,
        state_since_ms: 0,
        heartbeat_ms: 0,
    }
}

fn cost(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()?
        .get("controller.kubernetes.io/pod-deletion-cost")
        .cloned()
}

#[tokio::test]
async fn scales_the_bot_deployment_and_keeps_bots_in_meetings_on_a_scale_down() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_api, port) = fake_api();
    let config = kube::Config::new(format!("http://127.0.0.1:{port}").parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let ns = "parley";
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "parley-bot", "namespace": ns},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "parley-bot"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "parley-bot"}},
                "spec": {"containers": [{"name": "bot", "image": "parley-bot"}]}
            }
        }
    }))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    for (name, app) in [
        ("bot-busy", "parley-bot"),
        ("bot-idle", "parley-bot"),
        ("bot-starting", "parley-bot"),
        ("orchestrator-0", "parley-orchestrator"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": app}},
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
    }

    let launcher = KubernetesLauncher::new(client, ns, "parley-bot");
    let bots = [
        bot("bot-busy", WorkerState::InMeeting),
        bot("bot-idle", WorkerState::Idle),
    ];
    launcher.scale(1, &bots).await.expect("scale down");
    let d = deployments.get("parley-bot").await.expect("deployment");
    assert_eq!(d.spec.replicas, Some(1));
    assert_eq!(
        cost(&pods.get("bot-busy").await.expect("pod")).as_deref(),
        Some("1000"),
        "the bot in a meeting is the last to go"
    );
    for idle in ["bot-idle", "bot-starting"] {
        assert_eq!(
            cost(&pods.get(idle).await.expect("pod")).as_deref(),
            Some("0"),
            "{idle}"
        );
    }
    assert_eq!(
        cost(&pods.get("orchestrator-0").await.expect("pod")),
        None,
        "pods outside the bot Deployment are left alone"
    );

    launcher.scale(4, &bots).await.expect("scale up");
    let d = deployments.get("parley-bot").await.expect("deployment");
    assert_eq!(d.spec.replicas, Some(4));
    launcher.scale(4, &bots).await.expect("same size");

    let missing = KubernetesLauncher::new(
        kube::Client::try_from(kube::Config::new(
            format!("http://127.0.0.1:{port}").parse().expect("url"),
        ))
        .expect("client"),
        ns,
        "no-such-deployment",
    );
    let err = missing.scale(2, &bots).await.expect_err("no deployment");
    assert!(
        format!("{err:#}").contains("cannot read deployment no-such-deployment"),
        "{err:#}"
    );
}
