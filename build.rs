//! Records what `heft --version` reports: the target triple and build
//! profile.
//!
//! Cargo gives build scripts `PROFILE` only as "debug" or "release", so the
//! profile name (`tiny` for the static builds) is read from `OUT_DIR`, which
//! is `target/[<triple>/]<profile>/build/<pkg>-<hash>/out`.

use std::env;
use std::path::Path;

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let out = env::var("OUT_DIR").unwrap_or_default();
    let profile = Path::new(&out)
        .ancestors()
        .nth(3)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("unknown")
        .to_string();
    println!("cargo:rustc-env=HEFT_TARGET={target}");
    println!("cargo:rustc-env=HEFT_PROFILE={profile}");
    println!("cargo:rerun-if-changed=build.rs");
}
