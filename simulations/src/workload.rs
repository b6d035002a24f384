//! Simulated operators: clients of the admin gRPC API (what `castctl` uses) on
//! random nodes, each call recorded as invoked and as answered.
//!
//! - Workers create streams and set and read the titles of a few shared streams
//!   (the registers the linearizability check follows) until the workload ends.
//! - The verifier creates those streams first, and after the faults are healed
//!   writes and reads through every node and lists every node's streams (the
//!   durability and liveness checks).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castmesh_cluster::auth::BearerToken;
use castmesh_node::seams::Network;
use castmesh_proto::admin::v1 as pb;
use castmesh_proto::admin::v1::stream_admin_client::StreamAdminClient;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;

use crate::cluster::{ADMIN_TOKEN, GRPC_PORT, host_name};
use crate::history::{Call, Outcome};
use crate::net::SimNetwork;
use crate::record::Recorder;

/// The shared streams whose titles are registers.
pub const REGISTERS: [&str; 2] = ["reg-0", "reg-1"];
/// A call that has not answered by then counts as unanswered.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Clone)]
pub struct Workload {
    pub seed: u64,
    pub nodes: u32,
    pub recorder: Recorder,
    /// Workers stop starting calls then.
    pub work_until: Duration,
    /// The verifier starts then: faults are healed and the workers' calls are over
    /// (a late write would hide the verifier's own).
    pub verify_from: Duration,
    /// The verifier gives up then.
    pub verify_until: Duration,
    pub ready: Arc<AtomicBool>,
    /// How long the verifier took, from its start after the heal, to see every node
    /// answer (None: it never did).
    pub converged: Arc<Mutex<Option<Duration>>>,
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// One client's connections, one per node.
struct Client {
    id: u32,
    token: BearerToken,
    connections: BTreeMap<u32, StreamAdminClient<Channel>>,
    recorder: Recorder,
}

impl Client {
    fn new(id: u32, recorder: Recorder) -> Self {
        Self {
            id,
            token: BearerToken::new(ADMIN_TOKEN),
            connections: BTreeMap::new(),
            recorder,
        }
    }

    fn connection(&mut self, node: u32) -> StreamAdminClient<Channel> {
        self.connections
            .entry(node)
            .or_insert_with(|| {
                let channel = SimNetwork
                    .channels()
                    .to(
                        &format!("{}:{GRPC_PORT}", host_name(node)),
                        Duration::from_secs(1),
                    )
                    .expect("valid simulated address");
                StreamAdminClient::new(channel)
            })
            .clone()
    }

    fn request<T>(&self, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        self.token.attach(&mut request);
        request
    }

    /// Makes `call` on `node` and records it.
    async fn call(&mut self, node: u32, call: Call) -> Outcome {
        let op = self.recorder.invoke(self.id, node, call.clone());
        let mut c = self.connection(node);
        let answer = match &call {
            Call::Create { stream } => {
                let r = self.request(pb::CreateStreamRequest {
                    id: stream.clone(),
                    ..Default::default()
                });
                tokio::time::timeout(CALL_TIMEOUT, c.create_stream(r))
                    .await
                    .map(|r| r.map(|_| None))
            }
            Call::SetTitle { stream, title } => {
                let r = self.request(pb::UpdateStreamRequest {
                    id: stream.clone(),
                    title: Some(title.clone()),
                    ..Default::default()
                });
                tokio::time::timeout(CALL_TIMEOUT, c.update_stream(r))
                    .await
                    .map(|r| r.map(|_| None))
            }
            Call::GetTitle { stream } => {
                let r = self.request(pb::GetStreamRequest { id: stream.clone() });
                tokio::time::timeout(CALL_TIMEOUT, c.get_stream(r))
                    .await
                    .map(|r| r.map(|s| Some(s.into_inner().title)))
            }
            // People rename their own accounts through the REST API (`profiles`);
            // operators never make these calls.
            Call::SetName { .. } | Call::GetName { .. } => {
                Ok(Err(tonic::Status::unimplemented("not an operator's call")))
            }
            Call::List => {
                let r = self.request(pb::ListStreamsRequest::default());
                tokio::time::timeout(CALL_TIMEOUT, c.list_streams(r))
                    .await
                    .map(|r| {
                        r.map(|l| {
                            let ids: Vec<String> =
                                l.into_inner().streams.into_iter().map(|s| s.id).collect();
                            Some(ids.join(","))
                        })
                    })
            }
        };
        let outcome = match answer {
            Ok(Ok(value)) => Outcome::Ok(value),
            Ok(Err(status)) if refused(status.code()) => Outcome::Refused,
            Ok(Err(_)) | Err(_) => Outcome::Unknown,
        };
        if outcome == Outcome::Unknown {
            // A fresh connection next time, as a real client would after an error.
            self.connections.remove(&node);
        }
        self.recorder.complete(op, outcome.clone());
        outcome
    }
}

/// Answers that say the call changed nothing.
fn refused(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        NotFound | InvalidArgument | AlreadyExists | FailedPrecondition
    )
}

pub async fn worker(w: Workload, id: u32) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(w.seed ^ (u64::from(id) << 40));
    let mut client = Client::new(id, w.recorder.clone());
    while !w.ready.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut n = 0u32;
    while now() < w.work_until {
        n += 1;
        let node = rng.random_range(1..=w.nodes);
        let register = REGISTERS[rng.random_range(0..REGISTERS.len())].to_string();
        let call = match rng.random_range(0..100) {
            0..10 => Call::Create {
                stream: format!("c{id}-{n}"),
            },
            10..55 => Call::SetTitle {
                stream: register,
                title: format!("c{id}-{n}"),
            },
            _ => Call::GetTitle { stream: register },
        };
        client.call(node, call).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..300))).await;
    }
    Ok(())
}

pub async fn verifier(w: Workload) -> turmoil::Result {
    let mut client = Client::new(0, w.recorder.clone());
    for stream in REGISTERS {
        let stream = stream.to_string();
        // Until it exists (an earlier unanswered attempt may have made it).
        while !matches!(
            client
                .call(
                    1,
                    Call::Create {
                        stream: stream.clone()
                    }
                )
                .await,
            Outcome::Ok(_) | Outcome::Refused
        ) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    w.ready.store(true, Ordering::Relaxed);
    while now() < w.verify_from {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = now();
    // Through every node: a write, then reads everywhere that see it, then lists.
    for node in 1..=w.nodes {
        let title = format!("final-{node}");
        let write = Call::SetTitle {
            stream: REGISTERS[0].into(),
            title: title.clone(),
        };
        if !client.retry_until(node, write, &w, |_| true).await {
            return Ok(());
        }
        for reader in 1..=w.nodes {
            let read = Call::GetTitle {
                stream: REGISTERS[0].into(),
            };
            let seen = |v: &Option<String>| v.as_deref() == Some(title.as_str());
            if !client.retry_until(reader, read, &w, seen).await {
                return Ok(());
            }
        }
    }
    for node in 1..=w.nodes {
        if !client.retry_until(node, Call::List, &w, |_| true).await {
            return Ok(());
        }
        for stream in REGISTERS {
            let read = Call::GetTitle {
                stream: stream.into(),
            };
            if !client.retry_until(node, read, &w, |_| true).await {
                return Ok(());
            }
        }
    }
    *w.converged.lock().unwrap_or_else(|e| e.into_inner()) = Some(now() - started);
    Ok(())
}

impl Client {
    /// Repeats `call` on `node` until it answers with a value `good` accepts; false
    /// when the verifier's time is up.
    async fn retry_until(
        &mut self,
        node: u32,
        call: Call,
        w: &Workload,
        good: impl Fn(&Option<String>) -> bool,
    ) -> bool {
        while now() < w.verify_until {
            if let Outcome::Ok(v) = self.call(node, call.clone()).await
                && good(&v)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}
