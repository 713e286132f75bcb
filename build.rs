//! Records what `heft --version` reports: the target triple and build
//! profile, and whether this is a static build with heft's own entry point.
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
    // The static builds (cross/build names the target in HEFT_CROSS_TRIPLE)
    // start at heft's own `_start` instead of the C library's.
    println!("cargo:rustc-check-cfg=cfg(heft_own_start)");
    if env::var("HEFT_CROSS_TRIPLE").is_ok_and(|t| t == target) {
        println!("cargo:rustc-cfg=heft_own_start");
    }
    println!("cargo:rerun-if-env-changed=HEFT_CROSS_TRIPLE");
    println!("cargo:rerun-if-changed=build.rs");
}
