//! The store's single writer: takes queued requests in batches, checks each
//! against the committed state plus the batch so far, commits the batch to
//! the durable log in one transaction, then publishes it to readers and
//! watchers and answers every request.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;

use super::durable::{Log, encode_key};
use super::{EventType, ObjectKey, Op, State, StoreError, StoredObject, WatchEvent};

/// At most this many requests share one commit.
const MAX_BATCH: usize = 1024;

/// One queued write.
pub struct Request {
    pub key: ObjectKey,
    pub op: Op,
    pub reply: oneshot::Sender<Result<Arc<StoredObject>, StoreError>>,
}

/// What the writer thread is asked to do.
pub enum Message {
    /// Apply a write.
    Write(Request),
    /// Finish the queued writes, close the durable log and stop; the sender
    /// is told once the log is closed.
    Close(Sender<()>),
}

type Reply = oneshot::Sender<Result<Arc<StoredObject>, StoreError>>;

/// Starts the writer thread.
pub fn spawn(state: Arc<RwLock<State>>, log: Option<Log>) -> Result<Sender<Message>, StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("gameops-store-writer".into())
        .spawn(move || {
            let closed = run(&state, log.as_ref(), &rx);
            drop(log);
            if let Some(done) = closed {
                let _ = done.send(());
            }
        })
        .map_err(|e| StoreError::Durable(super::DurableError::Io(e.to_string())))?;
    Ok(tx)
}

/// Runs until every sender is gone or a close is asked for (returned).
fn run(state: &RwLock<State>, log: Option<&Log>, rx: &Receiver<Message>) -> Option<Sender<()>> {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        let mut close = None;
        while let Some(message) = next.take() {
            match message {
                Message::Write(r) => batch.push(r),
                Message::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit_batch(state, log, batch);
        }
        if close.is_some() {
            return close;
        }
    }
    None
}

fn commit_batch(state: &RwLock<State>, log: Option<&Log>, batch: Vec<Request>) {
    let read = || state.read().unwrap_or_else(|e| e.into_inner());
    let mut rv = read().rv;
    // The batch's view of each key it touched: Some(object) or None (deleted).
    let mut overlay: HashMap<ObjectKey, Option<Arc<StoredObject>>> = HashMap::new();
    let mut events: Vec<WatchEvent> = Vec::new();
    let mut answers: Vec<(Reply, Result<usize, StoreError>)> = Vec::with_capacity(batch.len());

    for Request { key, op, reply } in batch {
        let current = match overlay.get(&key) {
            Some(o) => o.clone(),
            None => read().get(&key).cloned(),
        };
        let previous = current.clone();
        let outcome = match (op, current) {
            (Op::Create(_), Some(_)) => Err(StoreError::AlreadyExists),
            (Op::Create(value), None) => Ok((EventType::Added, value)),
            (Op::Update { .. } | Op::Delete { .. }, None) => Err(StoreError::NotFound),
            (Op::Update { expect_rv, .. }, Some(cur)) if cur.rv != expect_rv => {
                Err(StoreError::Conflict { current: cur.rv })
            }
            (Op::Update { value, .. }, Some(_)) => Ok((EventType::Modified, value)),
            (
                Op::Delete {
                    expect_rv: Some(want),
                },
                Some(cur),
            ) if cur.rv != want => Err(StoreError::Conflict { current: cur.rv }),
            (Op::Delete { .. }, Some(cur)) => Ok((EventType::Deleted, cur.value.clone())),
        };
        match outcome {
            Ok((kind, value)) => {
                rv += 1;
                let object = Arc::new(StoredObject::new(rv, value));
                let visible = (kind != EventType::Deleted).then(|| object.clone());
                overlay.insert(key.clone(), visible);
                events.push(WatchEvent {
                    kind,
                    key,
                    object,
                    previous,
                });
                answers.push((reply, Ok(events.len() - 1)));
            }
            Err(e) => answers.push((reply, Err(e))),
        }
    }

    if !events.is_empty()
        && let Some(log) = log
    {
        let changes = overlay
            .iter()
            .map(|(k, o)| (encode_key(k), o.as_ref().map(|o| o.json.as_ref())));
        if let Err(e) = log.commit(changes, rv) {
            tracing::error!(error = %e, "durable commit failed; the batch is rejected");
            let msg = e.to_string();
            for (reply, _) in answers {
                let _ = reply.send(Err(StoreError::Durable(super::DurableError::Io(
                    msg.clone(),
                ))));
            }
            return;
        }
    }

    let objects: Vec<Arc<StoredObject>> = events.iter().map(|e| e.object.clone()).collect();
    {
        let mut state = state.write().unwrap_or_else(|e| e.into_inner());
        for event in events {
            state.apply(event);
        }
    }
    for (reply, outcome) in answers {
        // A caller that gave up waiting no longer needs the answer.
        let _ = reply.send(outcome.map(|i| objects[i].clone()));
    }
}
