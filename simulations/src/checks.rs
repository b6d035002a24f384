//! The invariants every run must keep, checked on what it recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::history::{Call, Op, Outcome};
use crate::linearizable::{self, RegisterOp, Timed};
use crate::profiles;
use crate::record::Record;
use crate::workload::REGISTERS;

/// At most one Raft leader per term.
pub fn one_leader_per_term(record: &Record) -> Vec<String> {
    record
        .leaders
        .iter()
        .filter(|(_, leaders)| leaders.len() > 1)
        .map(|(term, leaders)| format!("term {term} had {} leaders: {leaders:?}", leaders.len()))
        .collect()
}

/// The registers the workloads share: what each holds, and its value at the start.
fn registers() -> Vec<(String, &'static str)> {
    let titles = REGISTERS.iter().map(|s| (format!("title of {s}"), ""));
    let names = std::iter::once((
        format!("name of {}", profiles::ACCOUNT),
        profiles::INITIAL_NAME,
    ));
    titles.chain(names).collect()
}

/// The register `op` writes or reads, and how: a write that got no answer may have
/// happened (answered: None); refused writes and unanswered reads did nothing.
fn register_op(op: &Op) -> Option<(String, RegisterOp, Option<Duration>)> {
    let (register, write) = match &op.call {
        Call::SetTitle { stream, title } => (format!("title of {stream}"), Some(title)),
        Call::GetTitle { stream } => (format!("title of {stream}"), None),
        Call::SetName { user, name } => (format!("name of {user}"), Some(name)),
        Call::GetName { user } => (format!("name of {user}"), None),
        Call::Create { .. } | Call::List => return None,
    };
    let entry = match (write, &op.done) {
        (Some(v), Some((at, Outcome::Ok(_)))) => (RegisterOp::Write(v.clone()), Some(*at)),
        (Some(v), None | Some((_, Outcome::Unknown))) => (RegisterOp::Write(v.clone()), None),
        (None, Some((at, Outcome::Ok(Some(v))))) => (RegisterOp::Read(v.clone()), Some(*at)),
        _ => return None,
    };
    Some((register, entry.0, entry.1))
}

/// Each register's history (stream titles, an account's name: set and read) is
/// linearizable.
pub fn linearizable_registers(ops: &[Op]) -> Vec<String> {
    let mut violations = Vec::new();
    for (register, initial) in registers() {
        let mut timed = Vec::new();
        let mut lines = Vec::new();
        for op in ops {
            let Some((of, entry, answered)) = register_op(op) else {
                continue;
            };
            if of == register {
                lines.push(describe(op));
                timed.push(Timed {
                    op: entry,
                    invoked: op.invoked,
                    answered,
                });
            }
        }
        if let Err(why) = linearizable::check(initial, &timed) {
            violations.push(format!(
                "{register}: {why}; its history:\n      {}",
                lines.join("\n      ")
            ));
        }
    }
    violations
}

/// Every acknowledged creation is in every list taken after the heal. `None` when no
/// list was taken (the verifier never got that far).
pub fn no_acknowledged_write_lost(ops: &[Op], healed_at: Duration) -> Option<Vec<String>> {
    let acknowledged: BTreeSet<&str> = ops
        .iter()
        .filter_map(|op| match (&op.call, &op.done) {
            (Call::Create { stream }, Some((_, Outcome::Ok(_)))) => Some(stream.as_str()),
            _ => None,
        })
        .collect();
    let lists: Vec<(&Op, BTreeSet<&str>)> = ops
        .iter()
        .filter(|op| op.call == Call::List && op.invoked >= healed_at)
        .filter_map(|op| match &op.done {
            Some((_, Outcome::Ok(Some(ids)))) => Some((op, ids.split(',').collect())),
            _ => None,
        })
        .collect();
    if lists.is_empty() {
        return None;
    }
    let mut violations = Vec::new();
    for (op, listed) in lists {
        let lost: Vec<&&str> = acknowledged.difference(&listed).collect();
        if !lost.is_empty() {
            violations.push(format!(
                "node{} lists {} streams at {:.3}s but lost acknowledged creations {lost:?}",
                op.node,
                listed.len(),
                op.invoked.as_secs_f64()
            ));
        }
    }
    Some(violations)
}

fn describe(op: &Op) -> String {
    let done = match &op.done {
        Some((at, outcome)) => format!("{:>8.3}s {outcome:?}", at.as_secs_f64()),
        None => "no answer".into(),
    };
    format!(
        "{:>8.3}s client{} node{} {:?} -> {done}",
        op.invoked.as_secs_f64(),
        op.client,
        op.node,
        op.call
    )
}
