#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| castmesh_node::fuzz::push_replies(data));
