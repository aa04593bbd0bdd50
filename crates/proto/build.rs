//! Generates the prost types from the workspace's `proto/` directory. Uses protox, a
//! protobuf compiler written in Rust, so no `protoc` binary is needed to build.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["prometheus/types.proto", "prometheus/remote.proto", "io/prometheus/write/v2/types.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root]).expect("proto files compile");
    prost_build::Config::new().bytes(["."]).compile_fds(fds).expect("prost code generation");
}
