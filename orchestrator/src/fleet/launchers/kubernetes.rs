//! Bot workers as the pods of a Deployment (`parley-bot` in `k8s/`). The launcher sets the
//! Deployment's replica count. It scales a Deployment of warm workers rather than creating a
//! Job per meeting: a Job's pod would load the model (and pull the image) on every join,
//! which costs seconds that a meeting's first words cannot wait for; warm pods join at once.
//!
//! Before a count changes, each pod is annotated with `controller.kubernetes.io/pod-deletion-cost`
//! (high for pods in a meeting), so a scale-down removes idle workers, never a bot mid-meeting.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use parley_bot::fleet::{BotInfo, WorkerState};
use serde_json::json;
use std::collections::HashSet;

const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Deletion costs: a pod in a meeting is the last the ReplicaSet removes.
const BUSY_COST: &str = "1000";
const IDLE_COST: &str = "0";
/// Patches from this launcher are owned by this field manager.
const MANAGER: &str = "parley-orchestrator";

pub struct KubernetesLauncher {
    deployments: Api<Deployment>,
    pods: Api<Pod>,
    deployment: String,
}

impl std::fmt::Debug for KubernetesLauncher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesLauncher")
            .field("deployment", &self.deployment)
            .finish_non_exhaustive()
    }
}

impl KubernetesLauncher {
    /// Connects with the in-cluster service account, or `KUBECONFIG` / `~/.kube/config`.
    /// `namespace`: the Deployment's [default: the client's namespace].
    pub async fn connect(namespace: Option<&str>, deployment: &str) -> anyhow::Result<Self> {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the Kubernetes API (in-cluster account or kubeconfig): {e}"
            )
        })?;
        let namespace =
            namespace.map_or_else(|| client.default_namespace().to_owned(), str::to_owned);
        Ok(Self::new(client, &namespace, deployment))
    }

    pub fn new(client: kube::Client, namespace: &str, deployment: &str) -> Self {
        Self {
            deployments: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            deployment: deployment.to_owned(),
        }
    }

    pub async fn scale(&self, desired: usize, bots: &[BotInfo]) -> anyhow::Result<()> {
        let d = self
            .deployments
            .get(&self.deployment)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read deployment {}: {e}", self.deployment))?;
        let current = d.spec.replicas.unwrap_or(1);
        let desired = i32::try_from(desired).unwrap_or(i32::MAX);
        if current == desired {
            return Ok(());
        }
        if desired < current {
            self.mark_busy_pods(&d, bots).await?;
        }
        let patch = json!({ "spec": { "replicas": desired } });
        self.deployments
            .patch(&self.deployment, &patch_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| anyhow::anyhow!("cannot scale deployment {}: {e}", self.deployment))?;
        tracing::info!(deployment = %self.deployment, from = current, to = desired, "bot workers scaled");
        Ok(())
    }

    /// Sets each of the Deployment's pods' deletion cost from its worker's state (a worker's id
    /// is its pod's name).
    async fn mark_busy_pods(&self, d: &Deployment, bots: &[BotInfo]) -> anyhow::Result<()> {
        let labels = d.spec.selector.match_labels.as_ref().ok_or_else(|| {
            anyhow::anyhow!("deployment {} has no label selector", self.deployment)
        })?;
        let selector = labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let busy: HashSet<&str> = bots
            .iter()
            .filter(|b| b.state != WorkerState::Idle)
            .map(|b| b.worker_id.as_str())
            .collect();
        let pods = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| anyhow::anyhow!("cannot list bot pods: {e}"))?;
        // The server filters by the selector; checking again costs nothing and keeps a lenient
        // API (or a changed selector) from getting other pods annotated.
        let selected = |pod: &Pod| {
            let have = pod.metadata.labels.as_ref();
            labels
                .iter()
                .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
        };
        for pod in pods.into_iter().filter(selected) {
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            let cost = if busy.contains(name) {
                BUSY_COST
            } else {
                IDLE_COST
            };
            let has = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DELETION_COST))
                .map(String::as_str);
            if has == Some(cost) {
                continue;
            }
            let patch = json!({ "metadata": { "annotations": { DELETION_COST: cost } } });
            self.pods
                .patch(name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| anyhow::anyhow!("cannot annotate pod {name}: {e}"))?;
        }
        Ok(())
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    }
}
