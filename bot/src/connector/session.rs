//! The handle every connector's `join` returns: its session runs as a task of its own, and the
//! handle holds the events it sends, a way to make it leave and wait until it has, and the task
//! itself, so a session that panics ends the meeting as lost (another bot re-joins) rather than
//! as over.

use super::{ConnectorError, ConnectorEvent, Media, MeetingConnector};
use parley_shared::{Speaker, SpeakerKey};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub type Outgoing = Result<ConnectorEvent, ConnectorError>;

/// How a session task is told to leave: it answers on the sender once it has.
pub type LeaveRequest = oneshot::Receiver<oneshot::Sender<()>>;

/// How long `leave` waits for the session to say goodbye to the platform; after that the task
/// is aborted with the handle.
const LEAVE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct SessionHandle {
    events: mpsc::Receiver<Outgoing>,
    leave: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: Option<JoinHandle<()>>,
    real_time: bool,
}

/// A handle and the session task's ends of it.
pub fn session(capacity: usize) -> (SessionHandle, mpsc::Sender<Outgoing>, LeaveRequest) {
    let (tx, events) = mpsc::channel(capacity);
    let (leave, leave_rx) = oneshot::channel();
    (
        SessionHandle {
            events,
            leave: Some(leave),
            task: None,
            real_time: true,
        },
        tx,
        leave_rx,
    )
}

impl SessionHandle {
    /// Runs the session task, owned by this handle.
    pub fn start(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.task = Some(tokio::spawn(task));
    }

    /// Marks a session whose media does not arrive as it is spoken (a replay read faster or
    /// slower than real time): its decodes have no deadlines.
    pub fn not_real_time(&mut self) {
        self.real_time = false;
    }

    /// How the session ended once its events stopped: over, or lost if its task failed.
    async fn ended(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        match self.task.take() {
            Some(task) => match task.await {
                Err(e) if e.is_panic() => {
                    tracing::error!("a connector session failed; handing the meeting over");
                    Err(ConnectorError::Lost("the connector failed".to_owned()))
                }
                Ok(()) | Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }
}

impl Drop for SessionHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl MeetingConnector for SessionHandle {
    async fn next_event(&mut self) -> Result<Option<ConnectorEvent>, ConnectorError> {
        match self.events.recv().await {
            Some(event) => event.map(Some),
            None => self.ended().await,
        }
    }

    async fn leave(&mut self) {
        if let Some(leave) = self.leave.take() {
            let (done, left) = oneshot::channel();
            if leave.send(done).is_ok() {
                let _ = tokio::time::timeout(LEAVE_WAIT, left).await;
            }
        }
        self.events.close();
    }

    fn real_time(&self) -> bool {
        self.real_time
    }
}

/// Answers a leave request once the session has left.
pub fn confirm_left(done: Result<oneshot::Sender<()>, oneshot::error::RecvError>) {
    if let Ok(done) = done {
        let _ = done.send(());
    }
}

/// The speakers a connector has announced with `Joined` and not since `Left`: a speaker is
/// announced with their first audio, so the pipeline never meets a key it does not know.
#[derive(Debug, Default)]
pub struct Present(HashSet<SpeakerKey>);

impl Present {
    /// The events delivering `media` from `speaker`: `Joined` first when they are new.
    pub fn media(
        &mut self,
        speaker: Speaker,
        at_ms: u64,
        media: Media,
    ) -> impl Iterator<Item = ConnectorEvent> + use<> {
        let joined = self
            .0
            .insert(speaker.key.clone())
            .then(|| ConnectorEvent::Joined {
                speaker: speaker.clone(),
                at_ms,
            });
        joined
            .into_iter()
            .chain(std::iter::once(ConnectorEvent::Media {
                key: speaker.key,
                at_ms,
                media,
            }))
    }

    /// `Left` for `key` if they were announced.
    pub fn left(&mut self, key: SpeakerKey, at_ms: u64, reason: &str) -> Option<ConnectorEvent> {
        self.0.remove(&key).then(|| ConnectorEvent::Left {
            key,
            at_ms,
            reason: Some(reason.to_owned()),
        })
    }

    pub fn contains(&self, key: &SpeakerKey) -> bool {
        self.0.contains(key)
    }

    /// The announced speakers not in `live`.
    pub fn missing_from(&self, live: &HashSet<SpeakerKey>) -> Vec<SpeakerKey> {
        self.0
            .iter()
            .filter(|k| !live.contains(*k))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_that_panics_is_lost_and_one_that_ends_is_over() {
        let (mut failing, tx, _leave) = session(4);
        failing.start(async move {
            let _tx = tx;
            panic!("a connector bug");
        });
        assert!(matches!(
            failing.next_event().await,
            Err(ConnectorError::Lost(_))
        ));

        let (mut ending, tx, _leave) = session(4);
        ending.start(async move { drop(tx) });
        assert!(matches!(ending.next_event().await, Ok(None)));
    }
}
