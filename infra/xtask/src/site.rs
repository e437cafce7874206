//! Builds the browser bundles: the `convene-hydrate` crate for wasm32, once per host (the main site's
//! `convene`, the meet host's `convene_meet` with `--features meet`), each through `wasm-bindgen` into
//! `<target>/site/pkg`, where `convene` looks for them by default, with a brotli and a gzip copy of each
//! file beside it for the server to send as they are.

use std::{fs, io::Write, path::Path, process::Command};

use anyhow::Context;

use crate::{cargo, run, step};

/// Must equal the `wasm-bindgen` crate in Cargo.lock: the CLI refuses modules from another version
/// (the tidy test checks the two agree).
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WASM_PROFILE: &str = "wasm-release";

/// Clippy over the browser crate, for its own target (its features must not unify with the server's).
pub const WASM_CLIPPY_ARGS: [&str; 8] =
    ["clippy", "--package", "convene-hydrate", "--target", WASM_TARGET, "--", "-D", "warnings"];

/// Each host's bundle: its name (`convene_app::Surface::bundle`) and the features that select its pages.
const BUNDLES: [(&str, &[&str]); 2] = [("convene", &[]), ("convene_meet", &["--features", "meet"])];

/// Installs what is missing, then builds the bundles.
pub fn build(target_dir: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    let wasm = target_dir.join(WASM_TARGET).join(WASM_PROFILE).join("convene_hydrate.wasm");
    let out_dir = target_dir.join("site").join("pkg");
    for (name, features) in BUNDLES {
        step(&format!("Building the browser bundle `{name}` (wasm32)"));
        run(cargo()
            .args([
                "build",
                "--package",
                "convene-hydrate",
                "--lib",
                "--target",
                WASM_TARGET,
                "--profile",
                WASM_PROFILE,
            ])
            .args(features))?;
        // The name section (function names for stack traces) is over half the module; pages ship without it.
        run(Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--remove-name-section", "--remove-producers-section"])
            .args(["--out-name", name, "--out-dir"])
            .arg(&out_dir)
            .arg(&wasm))?;
        for file in [format!("{name}_bg.wasm"), format!("{name}.js")] {
            precompress(&out_dir.join(file))?;
        }
    }
    println!("bundles written to {}", out_dir.display());
    Ok(())
}

/// Writes `<file>.br` and `<file>.gz` at the strongest settings, which the server's on-the-fly compression
/// cannot afford per request (`gzip -9` is a fifth smaller than its fast gzip, brotli 11 a quarter smaller again).
fn precompress(file: &Path) -> anyhow::Result<()> {
    let plain = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 24, ..Default::default() };
    let mut brotli = Vec::new();
    brotli::BrotliCompress(&mut plain.as_slice(), &mut brotli, &params)?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&plain)?;
    for (extension, bytes) in [("br", brotli), ("gz", gzip.finish()?)] {
        let mut path = file.as_os_str().to_owned();
        path.push(format!(".{extension}"));
        fs::write(&path, bytes).with_context(|| format!("writing {}", Path::new(&path).display()))?;
    }
    Ok(())
}

fn ensure_wasm_target() -> anyhow::Result<()> {
    let installed =
        Command::new("rustup").args(["target", "list", "--installed"]).output().context("running rustup")?;
    if String::from_utf8_lossy(&installed.stdout).lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    step("Installing the wasm32 target");
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

fn ensure_wasm_bindgen() -> anyhow::Result<()> {
    let current = Command::new("wasm-bindgen").arg("--version").output().ok();
    let wanted = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
    if current.is_some_and(|output| String::from_utf8_lossy(&output.stdout).trim() == wanted) {
        return Ok(());
    }
    step(&format!("Installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} (a few minutes, once)"));
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &format!("={WASM_BINDGEN_VERSION}")]))
}
