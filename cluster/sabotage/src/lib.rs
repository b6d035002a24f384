//! Deliberate bugs, off unless a test turns them on. The simulator proves that its
//! invariants catch real mistakes by switching one of these on and requiring a seed
//! sweep to fail (`simulations/tests/finds_bugs.rs`). A switch is per thread: the
//! simulator runs a whole cluster on one thread, so tests running side by side do
//! not see each other's bugs.
//!
//! The switches exist only with the `test-hooks` feature (the simulation enables
//! it). Without it [`active`] is a constant `false`, the compiler drops the code it
//! guards, and nothing can turn a bug on: the binary an operator builds has none.

#[cfg(feature = "test-hooks")]
use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The log store acknowledges appends (and the committed index) before they are
    /// fsynced.
    AckBeforeDurable,
    /// The vote is never written: a node that restarts may vote twice in one term.
    ForgetVote,
    /// `read` answers from the local state without asking the leader.
    StaleReads,
    /// `AcquireLease` skips the epoch check and grants the epoch after the one the
    /// requester last saw: two racing publishers get the same epoch.
    SkipEpochCheck,
    /// A new origin that got no hand-over continues the most advanced copy it saw
    /// (same run, next sequence number) instead of starting a new run: a previous
    /// origin still producing, or a copy nobody sent, had other bytes under its names.
    ContinueAnyCopy,
    /// A new run of a stream starts its numbering at 0, not past every copy.
    RestartNumbering,
    /// Segments never carry EXT-X-DISCONTINUITY.
    NoDiscontinuity,
    /// Edges stop following an origin whose lease expired by their own clock (nodes'
    /// clocks may disagree by seconds).
    ClockBoundFollow,
    /// Session checks answer from the node's copy of the state without waiting for
    /// the leader's commit index: a signed-out session works on a lagging node.
    LocalSessionCheck,
}

impl Bug {
    pub const ALL: [Bug; 9] = [
        Bug::AckBeforeDurable,
        Bug::ForgetVote,
        Bug::StaleReads,
        Bug::SkipEpochCheck,
        Bug::ContinueAnyCopy,
        Bug::RestartNumbering,
        Bug::NoDiscontinuity,
        Bug::ClockBoundFollow,
        Bug::LocalSessionCheck,
    ];

    #[cfg(feature = "test-hooks")]
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

#[cfg(feature = "test-hooks")]
thread_local! {
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

/// Turns `bug` on for this thread (`None` turns every bug off).
#[cfg(feature = "test-hooks")]
pub fn set(bug: Option<Bug>) {
    ACTIVE.with(|a| a.set(bug.map_or(0, Bug::bit)));
}

#[cfg(feature = "test-hooks")]
pub fn active(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() & bug.bit() != 0)
}

#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub const fn active(_bug: Bug) -> bool {
    false
}
