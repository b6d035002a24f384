//! Simulated people sharing one account, renaming it and reading its name back
//! through the REST API on random nodes, under the same faults as the operators. Its
//! display name is a register whose history must be linearizable, as the streams'
//! titles are: account commands go through Raft like stream changes, and `GET
//! /api/v1/me` answers only after the node has applied the leader's commit index.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::history::{Call, Outcome};
use crate::http;
use crate::workload::Workload;

/// The shared account; its name before anyone renames it (the email's local part).
pub const ACCOUNT: &str = "shared@sim.example";
pub const INITIAL_NAME: &str = "shared";
/// Recorder client numbers of these people (the operators use 0..).
const FIRST_CLIENT: u32 = 100;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_default()
}

/// A session of the shared account: the first person signs it up, the others (and
/// one whose sign-up got no answer) sign in.
async fn session(w: &Workload, rng: &mut StdRng) -> Option<String> {
    let form = serde_json::json!({ "email": ACCOUNT, "password": "simulated password" });
    while now() < w.work_until {
        let node = rng.random_range(1..=w.nodes);
        for path in ["/api/v1/auth/signup", "/api/v1/auth/login"] {
            let answer = http::call(
                node,
                "POST",
                path,
                None,
                Some(form.to_string()),
                REQUEST_TIMEOUT,
            )
            .await;
            if let Ok((200 | 201, body)) = answer
                && let Some(token) = json(&body)["token"].as_str()
            {
                return Some(token.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
    }
    None
}

pub async fn client(w: Workload, id: u32) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(w.seed ^ 0x9a3e ^ (u64::from(id) << 36));
    while now() < w.work_until && !w.ready.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(token) = session(&w, &mut rng).await else {
        return Ok(());
    };
    let client = FIRST_CLIENT + id;
    let mut n = 0u32;
    while now() < w.work_until {
        n += 1;
        let node = rng.random_range(1..=w.nodes);
        let user = ACCOUNT.to_string();
        let (call, method, body) = if rng.random_bool(0.5) {
            let name = format!("p{id}-{n}");
            let body = serde_json::json!({ "display_name": name }).to_string();
            (Call::SetName { user, name }, "PATCH", Some(body))
        } else {
            (Call::GetName { user }, "GET", None)
        };
        let op = w.recorder.invoke(client, node, call.clone());
        let answer = http::call(
            node,
            method,
            "/api/v1/me",
            Some(&token),
            body,
            REQUEST_TIMEOUT,
        )
        .await;
        let outcome = match answer {
            Ok((200, body)) => match call {
                Call::GetName { .. } => {
                    let name = json(&body)["user"]["display_name"]
                        .as_str()
                        .map(str::to_string);
                    Outcome::Ok(name)
                }
                _ => Outcome::Ok(None),
            },
            // Refused before any change (e.g. 401 while the node cannot confirm the
            // session, 429): nothing was written.
            Ok((400..=499, _)) => Outcome::Refused,
            _ => Outcome::Unknown,
        };
        w.recorder.complete(op, outcome);
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..300))).await;
    }
    Ok(())
}
