//! Waits until this node has applied every write committed before the wait began: a
//! session revoked on another node a moment ago is then seen here too. One read of
//! the leader's commit index serves every request waiting at once, so checking many
//! sessions costs the leader one round per batch, not one per request.

use castmesh_cluster::member::ClusterMember;
use tokio::sync::{mpsc, oneshot};

/// Why a wait did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BarrierError {
    #[error("too many requests are waiting for the cluster")]
    Busy,
    #[error("the cluster is unavailable: {0}")]
    Unavailable(String),
}

type Waiter = oneshot::Sender<Result<(), BarrierError>>;

#[derive(Clone)]
pub struct ReadBarrier {
    waiting: mpsc::Sender<Waiter>,
}

impl ReadBarrier {
    /// At most `capacity` requests wait at once; more are refused with `Busy`.
    pub fn spawn(member: ClusterMember, capacity: usize) -> Self {
        let (waiting, queue) = mpsc::channel(capacity);
        tokio::spawn(serve(member, queue, capacity));
        Self { waiting }
    }

    pub async fn wait(&self) -> Result<(), BarrierError> {
        let (done, answer) = oneshot::channel();
        self.waiting
            .try_send(done)
            .map_err(|_| BarrierError::Busy)?;
        answer
            .await
            .unwrap_or_else(|_| Err(BarrierError::Unavailable("node shutting down".into())))
    }
}

/// Takes everyone waiting, reads the commit index once (a read that starts after all
/// of them arrived, so it is linearizable for each), answers them all, repeats.
/// Requests arriving during a read wait for the next one: the current read may have
/// fetched its index before they arrived.
async fn serve(member: ClusterMember, mut queue: mpsc::Receiver<Waiter>, capacity: usize) {
    let mut batch = Vec::with_capacity(capacity);
    while queue.recv_many(&mut batch, capacity).await > 0 {
        let outcome = member
            .read(|_| ())
            .await
            .map_err(|e| BarrierError::Unavailable(e.to_string()));
        for waiter in batch.drain(..) {
            let _ = waiter.send(outcome.clone());
        }
    }
}
