//! Compiles `proto/escalator/v1/escalator.proto` into `OUT_DIR` with protox (pure Rust), so no
//! system `protoc` is needed, and writes the descriptor set that server reflection serves.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(["escalator/v1/escalator.proto"], ["proto"])?;
    fs::write(
        out_dir.join("escalator_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    // compile_fds cannot emit this for us.
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
