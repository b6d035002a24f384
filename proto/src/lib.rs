//! castmesh's gRPC protocols, generated from `proto/` at build time.

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("castmesh.admin.v1");
    }
}

pub mod cluster {
    pub mod v1 {
        tonic::include_proto!("castmesh.cluster.v1");
    }
}

pub mod mesh {
    pub mod v1 {
        tonic::include_proto!("castmesh.mesh.v1");
    }
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("castmesh.raft.v1");
    }
}

/// Encoded descriptors of every castmesh service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("castmesh_descriptor");
