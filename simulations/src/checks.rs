//! The invariants every run must keep, checked on what it recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::history::{Call, Op, Outcome};
use crate::linearizable::{self, RegisterOp, Timed};
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

/// Each register's history (titles set and read) is linearizable.
pub fn linearizable_titles(ops: &[Op]) -> Vec<String> {
    let mut violations = Vec::new();
    for register in REGISTERS {
        let mut timed = Vec::new();
        let mut lines = Vec::new();
        for op in ops {
            let (stream, entry) = match (&op.call, &op.done) {
                (Call::SetTitle { stream, title }, Some((at, Outcome::Ok(_)))) => {
                    (stream, (RegisterOp::Write(title.clone()), Some(*at)))
                }
                (Call::SetTitle { stream, title }, None | Some((_, Outcome::Unknown))) => {
                    (stream, (RegisterOp::Write(title.clone()), None))
                }
                (Call::GetTitle { stream }, Some((at, Outcome::Ok(Some(v))))) => {
                    (stream, (RegisterOp::Read(v.clone()), Some(*at)))
                }
                _ => continue,
            };
            if stream == register {
                lines.push(describe(op));
                timed.push(Timed {
                    op: entry.0,
                    invoked: op.invoked,
                    answered: entry.1,
                });
            }
        }
        if let Err(why) = linearizable::check("", &timed) {
            violations.push(format!(
                "titles of {register}: {why}; its history:\n      {}",
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
