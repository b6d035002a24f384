//! Table and JSON renderings of API answers.
//!
//! The table printer is a few lines of column alignment (kubectl style: no borders);
//! table crates draw boxes by default and would be a dependency for `format!` padding.

use std::time::{Duration, UNIX_EPOCH};

use castmesh_proto::admin::v1::{self as pb, ClusterStatus, CreatedStream, Role, StreamStatus};
use serde_json::{Value, json};

pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

fn time(ms: Option<u64>) -> String {
    ms.map(|ms| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn status_name(s: i32) -> &'static str {
    match StreamStatus::try_from(s).unwrap_or(StreamStatus::Unspecified) {
        StreamStatus::Scheduled => "scheduled",
        StreamStatus::Live => "live",
        StreamStatus::Ended => "ended",
        StreamStatus::Archived => "archived",
        StreamStatus::Cancelled => "cancelled",
        StreamStatus::Unspecified => "unknown",
    }
}

fn role_name(r: i32) -> &'static str {
    match Role::try_from(r).unwrap_or(Role::Unspecified) {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Learner => "learner",
        Role::Unspecified => "unknown",
    }
}

fn origin(s: &pb::Stream) -> String {
    s.origin_node
        .map(|n| format!("node {n} (epoch {})", s.origin_epoch.unwrap_or(0)))
        .unwrap_or_else(|| "-".into())
}

/// "8 (node 2: 5, node 3: 3)", or "-" when the origin gave no counts.
fn viewers(s: &pb::Stream) -> String {
    if s.viewers_by_node.is_empty() {
        return "-".into();
    }
    let mut by_node: Vec<_> = s.viewers_by_node.iter().collect();
    by_node.sort();
    let nodes: Vec<String> = by_node
        .iter()
        .map(|(n, v)| format!("node {n}: {v}"))
        .collect();
    format!("{} ({})", s.viewers_total, nodes.join(", "))
}

pub fn stream_json(s: &pb::Stream) -> Value {
    json!({
        "id": s.id,
        "title": s.title,
        "description": s.description,
        "owner": s.owner,
        "owner_id": s.owner_id,
        "accepting": s.accepting,
        "status": status_name(s.status),
        "created_at": time(Some(s.created_at_ms)),
        "scheduled_at": s.scheduled_at_ms.map(|t| time(Some(t))),
        "started_at": s.started_at_ms.map(|t| time(Some(t))),
        "ended_at": s.ended_at_ms.map(|t| time(Some(t))),
        "origin_node": s.origin_node,
        "origin_epoch": s.origin_epoch,
        "play_url": s.play_url,
        "viewers_total": s.viewers_total,
        "viewers_by_node": s.viewers_by_node,
    })
}

pub fn streams_table(streams: &[pb::Stream]) -> String {
    let rows: Vec<Vec<String>> = streams
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                status_name(s.status).into(),
                s.title.clone(),
                origin(s),
                time(s.scheduled_at_ms),
                time(s.started_at_ms),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "TITLE", "ORIGIN", "SCHEDULED", "STARTED"],
        &rows,
    )
}

pub fn stream_details(s: &pb::Stream) -> String {
    let rows = [
        ("ID", s.id.clone()),
        ("Title", s.title.clone()),
        (
            "Owner",
            match s.owner_id {
                Some(id) => format!("user {id} {}", s.owner),
                None => s.owner.clone(),
            },
        ),
        (
            "Publishing",
            if s.accepting {
                "accepted"
            } else {
                "stopped (castctl stream start)"
            }
            .into(),
        ),
        ("Status", status_name(s.status).into()),
        ("Created", time(Some(s.created_at_ms))),
        ("Scheduled", time(s.scheduled_at_ms)),
        ("Started", time(s.started_at_ms)),
        ("Ended", time(s.ended_at_ms)),
        ("Origin", origin(s)),
        ("Viewers", viewers(s)),
        ("Play URL", s.play_url.clone()),
    ];
    rows.iter().map(|(k, v)| format!("{k:<10} {v}\n")).collect()
}

pub fn created_json(c: &CreatedStream) -> Value {
    let mut v = c.stream.as_ref().map(stream_json).unwrap_or(json!({}));
    v["key"] = json!(c.key);
    v["rtmp_url"] = json!(c.rtmp_url);
    v
}

pub fn created_text(c: &CreatedStream) -> String {
    let mut out = c.stream.as_ref().map(stream_details).unwrap_or_default();
    out += &format!(
        "{:<10} {}\n{:<10} {}\n",
        "Key", c.key, "RTMP URL", c.rtmp_url
    );
    out += "\nThe key is shown only now: store it (castctl stream rotate-key issues a new one).\n";
    out
}

pub fn status_json(s: &ClusterStatus) -> Value {
    json!({
        "node_id": s.node_id,
        "leader_id": s.leader_id,
        "term": s.term,
        "last_log_index": s.last_log_index,
        "applied_index": s.applied_index,
        "members": s.members.iter().map(|m| json!({
            "id": m.id,
            "role": role_name(m.role),
            "grpc": m.grpc_address,
            "rtmp": m.rtmp_address,
            "http": m.http_address,
            "last_seen_ms_ago": m.last_seen_ms_ago,
            "matched_index": m.matched_index,
            "labels": m.labels,
        })).collect::<Vec<_>>(),
    })
}

fn labels(labels: &std::collections::HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    if pairs.is_empty() {
        "-".into()
    } else {
        pairs.join(",")
    }
}

pub fn status_text(s: &ClusterStatus) -> String {
    let mut out = format!(
        "Answered by node {}; leader: {}; term {}; applied index {}\n\n",
        s.node_id,
        s.leader_id
            .map(|l| format!("node {l}"))
            .unwrap_or_else(|| "none".into()),
        s.term,
        s.applied_index.map_or("-".into(), |i| i.to_string()),
    );
    let rows: Vec<Vec<String>> = s
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                role_name(m.role).into(),
                m.grpc_address.clone(),
                if m.http_address.is_empty() {
                    "-".into()
                } else {
                    m.http_address.clone()
                },
                m.last_seen_ms_ago
                    .map(|ms| format!("{:.1}s ago", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "never".into()),
                m.matched_index.map_or("-".into(), |i| i.to_string()),
                labels(&m.labels),
            ]
        })
        .collect();
    out += &table(
        &[
            "ID",
            "ROLE",
            "GRPC",
            "HTTP",
            "LAST SEEN",
            "MATCHED",
            "LABELS",
        ],
        &rows,
    );
    out
}

fn user_role_name(r: i32) -> &'static str {
    match pb::UserRole::try_from(r).unwrap_or(pb::UserRole::Unspecified) {
        pb::UserRole::Admin => "admin",
        pb::UserRole::Streamer => "streamer",
        pb::UserRole::Viewer => "viewer",
        pb::UserRole::Unspecified => "unknown",
    }
}

pub fn user_json(u: &pb::User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "display_name": u.display_name,
        "role": user_role_name(u.role),
        "disabled": u.disabled,
        "created_at": time(Some(u.created_at_ms)),
        "sessions": u.sessions,
    })
}

pub fn users_table(users: &[pb::User]) -> String {
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.id.to_string(),
                u.email.clone(),
                u.display_name.clone(),
                user_role_name(u.role).into(),
                if u.disabled { "disabled" } else { "active" }.into(),
                u.sessions.to_string(),
                time(Some(u.created_at_ms)),
            ]
        })
        .collect();
    table(
        &[
            "ID", "EMAIL", "NAME", "ROLE", "STATE", "SESSIONS", "CREATED",
        ],
        &rows,
    )
}

pub fn user_details(u: &pb::User) -> String {
    let rows = [
        ("ID", u.id.to_string()),
        ("Email", u.email.clone()),
        ("Name", u.display_name.clone()),
        ("Role", user_role_name(u.role).into()),
        (
            "State",
            if u.disabled { "disabled" } else { "active" }.into(),
        ),
        ("Sessions", u.sessions.to_string()),
        ("Created", time(Some(u.created_at_ms))),
    ];
    rows.iter().map(|(k, v)| format!("{k:<10} {v}\n")).collect()
}

pub fn created_user_json(c: &pb::CreatedUser) -> Value {
    let mut v = c.user.as_ref().map(user_json).unwrap_or(json!({}));
    v["password"] = json!(c.password);
    v
}

pub fn created_user_text(c: &pb::CreatedUser) -> String {
    let mut out = c.user.as_ref().map(user_details).unwrap_or_default();
    if let Some(p) = &c.password {
        out += &format!(
            "{:<10} {p}\n\nThe password is shown only now: hand it over safely and have its owner change it.\n",
            "Password"
        );
    }
    out
}

pub fn invite_json(i: &pb::Invite) -> Value {
    json!({ "code": i.code, "expires_at": time(Some(i.expires_at_ms)) })
}

pub fn invite_text(i: &pb::Invite) -> String {
    format!(
        "Invitation {}\nValid until {}. Shown only now; it signs up one account (POST /api/v1/auth/signup with \"invite\").\n",
        i.code,
        time(Some(i.expires_at_ms))
    )
}

fn destination_state(d: &pb::Destination) -> String {
    let Some(s) = &d.status else {
        return "idle".into();
    };
    match (s.state.as_str(), s.retry_at_ms) {
        ("retrying", Some(at)) => {
            let now = std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            format!("retrying in {} s", at.saturating_sub(now).div_ceil(1000))
        }
        ("live", _) => format!("live ({} kbit/s)", s.bitrate_bps / 1000),
        (state, _) => state.to_string(),
    }
}

pub fn destination_json(d: &pb::Destination) -> Value {
    let s = d.status.clone().unwrap_or_default();
    json!({
        "id": d.id,
        "name": d.name,
        "platform": d.platform,
        "server_url": d.server_url,
        "key_set": d.key_set,
        "enabled": d.enabled,
        "wanted": d.wanted,
        "created_at": time(Some(d.created_at_ms)),
        "status": {
            "state": s.state,
            "retry_at": s.retry_at_ms.map(|t| time(Some(t))),
            "last_error": s.last_error,
            "last_error_at": s.last_error_at_ms.map(|t| time(Some(t))),
            "bytes_sent": s.bytes_sent,
            "bitrate_bps": s.bitrate_bps,
            "reconnects": s.reconnects,
            "live_since": s.live_since_ms.map(|t| time(Some(t))),
            "dropped_frames": s.dropped_frames,
        },
    })
}

/// One row per destination; the key is never shown (nor known here).
pub fn destinations_table(list: &[pb::Destination]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let s = d.status.clone().unwrap_or_default();
            vec![
                d.id.to_string(),
                d.name.clone(),
                d.server_url.clone(),
                if d.wanted { "yes" } else { "no" }.into(),
                destination_state(d),
                format!("{:.1} MB", s.bytes_sent as f64 / 1e6),
                s.reconnects.to_string(),
                s.last_error.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "SERVER",
            "PUSHED",
            "STATE",
            "SENT",
            "RECONNECTS",
            "LAST ERROR",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let t = table(
            &["ID", "STATUS"],
            &[
                vec!["a-long-id".into(), "live".into()],
                vec!["b".into(), "ended".into()],
            ],
        );
        assert_eq!(t, "ID         STATUS\na-long-id  live\nb          ended\n");
    }
}
