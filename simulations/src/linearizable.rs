//! A linearizability checker for a register (Wing & Gong's search with Lowe's
//! memoization): is there an order of the operations, each placed between its
//! invocation and its answer, in which every read returns the last value written?
//! Writes that got no answer may take effect at any time after their invocation, or
//! never; reads that got no answer are dropped. Written for castmesh's history
//! format: the few existing crates check other models or want their own client API.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOp {
    Write(String),
    Read(String),
}

#[derive(Debug, Clone)]
pub struct Timed {
    pub op: RegisterOp,
    pub invoked: Duration,
    /// None: no answer (only kept for writes).
    pub answered: Option<Duration>,
}

/// Ok, or why not: no linearization exists.
pub fn check(initial: &str, ops: &[Timed]) -> Result<(), String> {
    // Values as small integers, so states hash cheaply.
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut id = |v: &str| -> u32 {
        let next = ids.len() as u32;
        *ids.entry(v.to_string()).or_insert(next)
    };
    let init = id(initial);
    let coded: Vec<(bool, u32)> = ops
        .iter()
        .map(|t| match &t.op {
            RegisterOp::Write(v) => (true, id(v)),
            RegisterOp::Read(v) => (false, id(v)),
        })
        .collect();
    let n = ops.len();
    let words = n.div_ceil(64);
    let required = ops.iter().filter(|t| t.answered.is_some()).count();
    let is_done = |done: &[u64], i: usize| done[i / 64] & (1 << (i % 64)) != 0;

    let mut seen: HashSet<(Vec<u64>, u32)> = HashSet::new();
    // Depth-first search over (operations linearized so far, register value).
    let mut stack = vec![(vec![0u64; words], init, 0usize)];
    let mut deepest = 0;
    while let Some((done, value, count)) = stack.pop() {
        if count == required {
            return Ok(());
        }
        if !seen.insert((done.clone(), value)) {
            continue;
        }
        deepest = deepest.max(count);
        // An operation can go next only if it was invoked before every pending
        // answered operation returned.
        let horizon = (0..n)
            .filter(|&i| !is_done(&done, i))
            .filter_map(|i| ops[i].answered)
            .min();
        for i in 0..n {
            if is_done(&done, i) || horizon.is_some_and(|h| ops[i].invoked > h) {
                continue;
            }
            let (write, v) = coded[i];
            if !write && v != value {
                continue;
            }
            let mut next = done.clone();
            next[i / 64] |= 1 << (i % 64);
            let count = count + usize::from(ops[i].answered.is_some());
            stack.push((next, if write { v } else { value }, count));
        }
    }
    Err(format!(
        "no linearization of {n} operations ({required} answered); the longest linearizable prefix has {deepest} answered operations"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: RegisterOp, invoked: u64, answered: Option<u64>) -> Timed {
        Timed {
            op,
            invoked: Duration::from_millis(invoked),
            answered: answered.map(Duration::from_millis),
        }
    }
    use RegisterOp::{Read, Write};

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            op(Write("a".into()), 0, Some(1)),
            op(Read("a".into()), 2, Some(3)),
            op(Write("b".into()), 4, Some(5)),
            op(Read("b".into()), 6, Some(7)),
        ];
        assert!(check("", &h).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not() {
        let h = [
            op(Write("a".into()), 0, Some(1)),
            op(Write("b".into()), 2, Some(3)),
            op(Read("a".into()), 4, Some(5)),
        ];
        assert!(check("", &h).is_err());
    }

    #[test]
    fn concurrent_operations_may_go_either_way() {
        let h = [
            op(Write("a".into()), 0, Some(10)),
            op(Read("".into()), 1, Some(2)),
            op(Read("a".into()), 3, Some(4)),
        ];
        assert!(check("", &h).is_ok());
    }

    #[test]
    fn an_unanswered_write_may_take_effect_late_or_never() {
        let late = [
            op(Write("a".into()), 0, None),
            op(Read("".into()), 5, Some(6)),
            op(Read("a".into()), 7, Some(8)),
        ];
        assert!(check("", &late).is_ok());
        let never = [
            op(Write("a".into()), 0, None),
            op(Read("".into()), 5, Some(6)),
        ];
        assert!(check("", &never).is_ok());
        // But once seen, it cannot be unseen.
        let flicker = [
            op(Write("a".into()), 0, None),
            op(Read("a".into()), 5, Some(6)),
            op(Read("".into()), 7, Some(8)),
        ];
        assert!(check("", &flicker).is_err());
    }

    #[test]
    fn a_read_of_a_value_never_written_is_not() {
        let h = [op(Read("z".into()), 0, Some(1))];
        assert!(check("", &h).is_err());
    }
}
