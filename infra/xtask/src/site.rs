//! Builds the browser bundles: the `convene-hydrate` crate for wasm32, once per host (the main site's
//! `convene`, the meet host's `convene_meet` with `--features meet`), each through `wasm-bindgen` into
//! `<target>/site/pkg`, where `convene` looks for them by default, with a brotli and a gzip copy of each
//! file beside it for the server to send as they are. The meet host's bundle is split first: the call's code
//! (what `convene_app::meeting::chunk`'s split points reach) becomes `split_call.wasm`, which the page fetches
//! after it loads, so the pre-join screen does not wait for it.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;

use crate::{cargo, run, step};

/// Must equal the `wasm-bindgen` crate in Cargo.lock: the CLI refuses modules from another version
/// (the tidy test checks the two agree).
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WASM_PROFILE: &str = "wasm-release";

/// Clippy over the browser crate, for its own target (its features must not unify with the server's), with
/// the meet host's pages, which are a superset of the site's code.
pub const WASM_CLIPPY_ARGS: [&str; 10] =
    ["clippy", "--package", "convene-hydrate", "--target", WASM_TARGET, "--features", "meet", "--", "-D", "warnings"];

/// Each host's bundle: its name (`convene_app::Surface::bundle`), the features that select its pages, and
/// whether it has split points.
const BUNDLES: [(&str, &[&str], bool); 2] = [("convene", &[], false), ("convene_meet", &["--features", "meet"], true)];

/// Installs what is missing, then builds the bundles.
pub fn build(target_dir: &Path) -> anyhow::Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen()?;
    let wasm = target_dir.join(WASM_TARGET).join(WASM_PROFILE).join("convene_hydrate.wasm");
    let out_dir = target_dir.join("site").join("pkg");
    for (name, features, split) in BUNDLES {
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
        let mut files = vec![format!("{name}_bg.wasm"), format!("{name}.js")];
        let main_module = if split {
            let (main_module, chunks) = split_out(&wasm, &out_dir, name)?;
            files.extend(chunks);
            main_module
        } else {
            wasm.clone()
        };
        // A split module keeps the linker's exports, which its chunks import.
        run(Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript"])
            .args(if split { &["--keep-lld-exports"][..] } else { &[] })
            .args(["--out-name", name, "--out-dir"])
            .arg(&out_dir)
            .arg(&main_module))?;
        for file in files {
            let file = out_dir.join(file);
            if file.extension().is_some_and(|extension| extension == "wasm") {
                strip_custom_sections(&file)?;
            }
            precompress(&file)?;
        }
    }
    println!("bundles written to {}", out_dir.display());
    Ok(())
}

/// Splits the module at its split points: the chunks and their loader (`<name>_split.js`, which the
/// bundle's script imports) go to `out_dir`; returns the main module, for wasm-bindgen, and the files written.
fn split_out(wasm: &Path, out_dir: &Path, name: &str) -> anyhow::Result<(PathBuf, Vec<String>)> {
    let input = fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let main_module = wasm.with_file_name(format!("{name}_split.wasm"));
    let loader = format!("{name}_split.js");
    let script = format!("./{name}.js");
    let link_name = format!("./{loader}");
    let mut options = wasm_split_cli_support::Options::new(&input);
    options.output_dir = out_dir;
    options.main_out_path = &main_module;
    options.main_module = &script;
    options.link_name = &link_name;
    let split = wasm_split_cli_support::transform(options)
        .map_err(|error| anyhow::anyhow!("splitting the `{name}` bundle: {error:#}"))?;
    anyhow::ensure!(!split.split_modules.is_empty(), "the `{name}` bundle has no split points");
    let mut files = vec![loader];
    for chunk in &split.split_modules {
        let file = chunk.file_name().and_then(|file| file.to_str()).context("a chunk without a file name")?;
        files.push(file.to_owned());
    }
    Ok((main_module, files))
}

/// Drops a module's custom sections, which browsers never read: function names (for stack traces, over a
/// third of a module), the linker's relocations that wasm-split needs, the producers.
fn strip_custom_sections(file: &Path) -> anyhow::Result<()> {
    let input = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut output = wasm_encoder::Module::new();
    for payload in wasmparser::Parser::new(0).parse_all(&input) {
        let payload = payload.with_context(|| format!("reading {}", file.display()))?;
        if let Some((id, range)) = payload.as_section()
            && !matches!(payload, wasmparser::Payload::CustomSection(_))
        {
            let data = usize::try_from(range.start)?..usize::try_from(range.end)?;
            output.section(&wasm_encoder::RawSection { id, data: &input[data] });
        }
    }
    fs::write(file, output.finish()).with_context(|| format!("writing {}", file.display()))
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
