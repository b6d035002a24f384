//! Simulated people signing in and out through the REST API on random nodes, under
//! the same faults as the operators. The invariant: once a sign-out has been answered
//! (204), no node accepts that session again — not a lagging follower, not a node on
//! the minority side of a partition (it must answer 503 rather than trust its copy).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::http;
use crate::workload::Workload;

/// A request that has not answered by then gets no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Signs up, uses the session on a random node, signs out on another, then asks every
/// node whether the session still works; repeats until the workload ends.
pub async fn client(w: Workload) -> turmoil::Result {
    let mut rng = StdRng::seed_from_u64(w.seed ^ 0x5e55_10e5);
    while now() < w.work_until && !w.ready.load(std::sync::atomic::Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut n = 0u32;
    while now() < w.work_until {
        n += 1;
        let node = rng.random_range(1..=w.nodes);
        let body = serde_json::json!({
            "email": format!("user{n}@sim.example"),
            "password": "simulated password",
        });
        let signup = http::call(
            node,
            "POST",
            "/api/v1/auth/signup",
            None,
            Some(body.to_string()),
            REQUEST_TIMEOUT,
        )
        .await;
        let token = match signup {
            Ok((201, body)) => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["token"].as_str().map(str::to_string)),
            _ => None,
        };
        let Some(token) = token else {
            w.recorder
                .event(format!("session {n}: sign-up on node{node} not answered"));
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..500))).await;
            continue;
        };
        let used = rng.random_range(1..=w.nodes);
        let me = http::call(
            used,
            "GET",
            "/api/v1/me",
            Some(&token),
            None,
            REQUEST_TIMEOUT,
        )
        .await;
        w.recorder.event(format!(
            "session {n}: used on node{used}: {}",
            me.map_or_else(|e| e, |(s, _)| s.to_string())
        ));
        let out = rng.random_range(1..=w.nodes);
        let logout = http::call(
            out,
            "POST",
            "/api/v1/auth/logout",
            Some(&token),
            None,
            REQUEST_TIMEOUT,
        )
        .await;
        if !matches!(logout, Ok((204, _))) {
            w.recorder.event(format!(
                "session {n}: sign-out on node{out} not acknowledged"
            ));
            continue;
        }
        let revoked_at = now();
        w.recorder
            .event(format!("session {n}: signed out on node{out}"));
        for probe in 1..=w.nodes {
            let answer = http::call(
                probe,
                "GET",
                "/api/v1/me",
                Some(&token),
                None,
                REQUEST_TIMEOUT,
            )
            .await;
            let status = answer.as_ref().map_or(0, |(s, _)| *s);
            w.recorder.event(format!(
                "session {n}: after sign-out node{probe} answers {status}"
            ));
            if status == 200 {
                w.recorder.violation(format!(
                    "session {n} signed out on node{out} at {revoked_at:?} was accepted by node{probe} at {:?}",
                    now()
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..300))).await;
    }
    Ok(())
}
