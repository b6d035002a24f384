//! Compiles the .proto files with protox (pure Rust: no system protoc needed) and
//! keeps the descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "castmesh/raft/v1/raft.proto",
    "castmesh/cluster/v1/internal.proto",
    "castmesh/admin/v1/admin.proto",
    "castmesh/mesh/v1/mesh.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("castmesh_descriptor.bin"), fds.encode_to_vec())?;
    // Media travels as `Bytes`, so a part is shared, not copied, on its way through.
    tonic_prost_build::configure()
        .bytes(".castmesh.mesh.v1")
        .compile_fds(fds)?;
    Ok(())
}
