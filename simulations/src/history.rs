//! The clients' operations on cluster metadata, as invoked and as answered.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Creates a stream (acknowledged creations must never be lost).
    Create { stream: String },
    /// Sets a stream's title: the register the linearizability check follows.
    SetTitle { stream: String, title: String },
    /// Reads a stream's title.
    GetTitle { stream: String },
    /// Lists every stream.
    List,
    /// Renames an account (through its own session): another register.
    SetName { user: String, name: String },
    /// Reads the account's name.
    GetName { user: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; a read's value (a title, or the listed stream ids joined by ',').
    Ok(Option<String>),
    /// The cluster said no and changed nothing (e.g. no such stream).
    Refused,
    /// No answer (timeout, unavailable, connection lost): a write may or may not
    /// have taken effect.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub client: u32,
    pub node: u32,
    pub call: Call,
    pub invoked: Duration,
    pub done: Option<(Duration, Outcome)>,
}
