//! The on-disk (and on-wire) encoding of Raft log entries and snapshots.
//!
//! Every record is JSON of a version envelope: `{"V1": …}`. A later release that
//! changes a command or the state adds `V2` and keeps decoding `V1`, so logs and
//! snapshots written today stay readable. Metadata is small; JSON keeps it inspectable.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Serialize, Deserialize)]
enum Record<T> {
    V1(T),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(&Record::V1(value)).expect("castmesh records always serialize")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice::<Record<T>>(bytes)? {
        Record::V1(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::ids::StreamId;

    #[test]
    fn records_carry_their_version() {
        let c = Command::AcquireLease {
            stream: StreamId::parse("x").unwrap(),
            node: 7,
            expected_epoch: 3,
            now: 1,
            ttl_ms: 2,
        };
        let bytes = encode(&c);
        assert!(String::from_utf8_lossy(&bytes).starts_with("{\"V1\":"));
        assert_eq!(decode::<Command>(&bytes).unwrap(), c);
        assert!(decode::<Command>(b"{\"V9\":{}}").is_err());
    }
}
