//! Reads the nodes' own tracing events into the run's record: today the
//! `castmesh::origin` event a node logs when it holds a stream's origin lease, for
//! the one-origin-per-epoch check. Every host runs on the simulation's thread, so a
//! thread-local subscriber sees every node's events.

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::record::Recorder;

pub struct OriginLayer(pub Recorder);

#[derive(Default)]
struct Fields {
    node: Option<u64>,
    stream: Option<String>,
    epoch: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "node" => self.node = Some(value),
            "epoch" => self.epoch = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "stream" {
            self.stream = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for OriginLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "castmesh::origin" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        match (f.node, f.stream, f.epoch) {
            (Some(node), Some(stream), Some(epoch)) => self.0.origin(node, stream, epoch),
            _ => panic!("castmesh::origin event without node, stream and epoch: {event:?}"),
        }
    }
}

/// Stamps log lines with simulated time, as the trail of events is: wall-clock time
/// says nothing about a simulated run.
pub struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        write!(w, "{:>9.3}s", at.as_secs_f64())
    }
}
