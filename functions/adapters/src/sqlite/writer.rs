//! Group commit: one writer thread, many writes per fsync.
//!
//! With `synchronous=FULL` every commit waits for the disk. Committing each
//! write on its own would make concurrent captures queue up behind each
//! other's fsync, so all writes go to one thread that takes every job waiting
//! in its channel, runs each inside its own SAVEPOINT (a failed job rolls
//! back alone and does not disturb the others), commits once, and only then
//! answers each caller. An answer therefore always means "on disk": a job
//! whose batch failed to commit gets the commit's error, never its own
//! optimistic result.

use std::sync::mpsc;

use failover_core::ports::StoreError;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::unavailable;

/// Most jobs in one transaction (bounds the latency of the first one).
const MAX_BATCH: usize = 128;

trait Job: Send {
    fn run(&mut self, tx: &mut rusqlite::Transaction<'_>);
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Typed<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, tx: &mut rusqlite::Transaction<'_>) {
        let Some(work) = self.work.take() else { return };
        let outcome = match tx.savepoint() {
            Ok(sp) => match work(&sp) {
                Ok(v) => sp.commit().map(|_| v).map_err(unavailable),
                // Dropping the savepoint rolls this job back, alone.
                Err(e) => Err(e),
            },
            Err(e) => Err(unavailable(e)),
        };
        self.result = Some(outcome);
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (committed, self.result) {
            (Ok(()), Some(r)) => r,
            (Ok(()), None) => Err(unavailable("job did not run")),
            (Err(e), _) => Err(e),
        };
        let _ = self.reply.send(answer);
    }
}

/// The handle callers hold; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub(super) fn start(mut conn: Connection) -> Result<Self, StoreError> {
        let (jobs, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => batch.push(j),
                            Err(_) => break,
                        }
                    }
                    let committed = commit_batch(&mut conn, &mut batch);
                    for job in batch {
                        job.finish(committed.clone());
                    }
                }
            })
            .map_err(unavailable)?;
        Ok(Self { jobs })
    }

    /// Runs `work` in the next batch; resolves once that batch is on disk.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work: Some(work),
            result: None,
            reply,
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| unavailable("the writer thread has stopped"))?;
        answer
            .await
            .map_err(|_| unavailable("the writer thread dropped a job"))?
    }
}

fn commit_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    for job in batch.iter_mut() {
        job.run(&mut tx);
    }
    tx.commit().map_err(unavailable)
}
