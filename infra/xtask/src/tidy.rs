//! Repository hygiene, checked by `cargo test` like any other test (rust-analyzer's habit).

use std::process::Command;

use crate::{site::WASM_BINDGEN_VERSION, workspace_root};

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

/// The repository's own files: forks under `vendor/` keep their upstream's style and lints.
fn tracked_files() -> Vec<String> {
    let output = Command::new("git").args(["ls-files"]).current_dir(workspace_root()).output().expect("git ls-files");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|path| !path.starts_with("vendor/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_wasm_bindgen_crate_matches_the_pinned_cli() {
    let lock = read("Cargo.lock");
    let locked = lock
        .split("[[package]]")
        .find(|package| package.contains("name = \"wasm-bindgen\"\n"))
        .and_then(|package| package.lines().find_map(|line| line.strip_prefix("version = ")))
        .map(|version| version.trim_matches('"').to_owned());
    assert_eq!(locked.as_deref(), Some(WASM_BINDGEN_VERSION), "Cargo.lock's wasm-bindgen must equal the CLI pin");
    assert!(read("Cargo.toml").contains(&format!("wasm-bindgen = \"={WASM_BINDGEN_VERSION}\"")));
}

#[test]
fn no_toolchain_file_pins_nightly() {
    for name in ["rust-toolchain", "rust-toolchain.toml"] {
        let path = workspace_root().join(name);
        if path.exists() {
            let text = std::fs::read_to_string(&path).expect("readable toolchain file");
            assert!(!text.contains("nightly"), "{name} pins nightly; our machines have one stable toolchain");
        }
    }
}

#[test]
fn every_crate_uses_the_workspace_lints() {
    let members = tracked_files().into_iter().filter(|path| path.ends_with("/Cargo.toml"));
    for manifest in members {
        let text = read(&manifest);
        assert!(text.contains("[lints]\nworkspace = true"), "{manifest} must inherit [workspace.lints]");
    }
}

#[test]
fn text_files_have_no_trailing_whitespace_or_tabs() {
    let text_like = [".rs", ".toml", ".md", ".css", ".svg", ".service", ".yml", ".yaml", "run", "Containerfile"];
    let mut offenders = Vec::new();
    for path in tracked_files().iter().filter(|path| text_like.iter().any(|suffix| path.ends_with(suffix))) {
        for (number, line) in read(path).lines().enumerate() {
            if line.ends_with(' ') || line.contains('\t') {
                offenders.push(format!("{path}:{}", number + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "trailing whitespace or tabs at:\n{}", offenders.join("\n"));
}

#[test]
fn the_readme_shows_the_two_commands_and_ci_runs_the_test_command() {
    let readme = read("README.md");
    assert!(readme.contains("cargo xtask up") && readme.contains("cargo xtask test"));
    assert!(read(".ci/run").contains("cargo xtask test"));
}

/// The normal (non-dev) dependencies of `package`, one crate per line as `name vX.Y.Z`.
fn dependency_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--package", package, "--edges", "normal", "--prefix", "none", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_serving_binary_links_no_webrtc_stack_or_load_harness() {
    let tree = dependency_tree("convene-api");
    for unwanted in ["webrtc ", "convene-bots ", "convene-bench "] {
        assert!(
            !tree.lines().any(|line| line.starts_with(unwanted)),
            "the default `convene` build depends on {unwanted}; keep it behind the `bench` feature"
        );
    }
    assert!(tree.lines().any(|line| line.starts_with("str0m ")), "the check reads a real tree:\n{tree}");
}

#[test]
fn unsafe_code_is_allowed_in_the_split_point_only() {
    // The workspace denies unsafe code; wasm-split's generated loader is the one exception, and it writes
    // none by hand. Any other `allow` would be a choice to review, not a drift.
    let allowed = "app/src/meeting/chunk.rs";
    let offenders: Vec<String> = tracked_files()
        .into_iter()
        .filter(|path| path.ends_with(".rs") && path != allowed && path != "infra/xtask/src/tidy.rs")
        .filter(|path| read(path).contains("unsafe_code"))
        .collect();
    assert!(offenders.is_empty(), "unsafe code is denied outside {allowed}: {offenders:?}");
    assert!(read(allowed).contains("#![allow(unsafe_code)]"), "the check looks for the real attribute");
    assert!(read("Cargo.toml").contains("unsafe_code = \"deny\""));
}

#[test]
fn only_the_command_line_reads_the_environment() {
    // Settings are loaded once from the map `cli` collects; a module reading a variable of its own would
    // bypass their validation and the tests' own maps.
    let product = ["api/src/", "media/src/", "app/src/", "crates/"];
    let reads = ["env::var(", "env::vars(", "env::var_os(", "env::vars_os("];
    let offenders: Vec<String> = tracked_files()
        .into_iter()
        .filter(|path| path.ends_with(".rs") && product.iter().any(|root| path.starts_with(root)))
        .filter(|path| path != "api/src/cli.rs")
        .filter(|path| reads.iter().any(|read_env| read(path).contains(read_env)))
        .collect();
    assert!(offenders.is_empty(), "read settings through `platform::settings`, not the environment: {offenders:?}");
    assert!(read("api/src/cli.rs").contains("env::vars("), "the check looks for the real call");
}

#[test]
fn the_media_node_reaches_neither_the_database_nor_stripe() {
    let tree = dependency_tree("convene-media");
    for unwanted in ["sea-orm ", "sqlx ", "async-stripe ", "convene-api ", "convene-stripe-events "] {
        assert!(!tree.lines().any(|line| line.starts_with(unwanted)), "convene-media depends on {unwanted}");
    }
    assert!(tree.lines().any(|line| line.starts_with("str0m ")), "the check reads a real tree:\n{tree}");
}

/// The top-level modules a path names in `source`'s code (comments aside): `crate::x::…` and each item of
/// `crate::{x::…, y}`.
fn crate_modules_named(source: &str) -> std::collections::BTreeSet<String> {
    let code: String =
        source.lines().map(|line| line.split_once("//").map_or(line, |(code, _)| code)).collect::<Vec<_>>().join("\n");
    let mut named = std::collections::BTreeSet::new();
    for (start, _) in code.match_indices("crate::") {
        let rest = &code[start + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            named.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            continue;
        };
        let mut depth = 0_usize;
        let mut item = String::new();
        for character in group.chars() {
            match character {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    named.insert(item.trim().split("::").next().unwrap_or_default().to_owned());
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(character);
        }
        named.insert(item.trim().split("::").next().unwrap_or_default().to_owned());
    }
    named
}

#[test]
fn the_control_planes_contexts_depend_one_way() {
    // Each folder of `api/src` may name only those below it:
    // platform ← people ← webhooks ← billing ← meetings ← nodes ← http.
    let allowed: [(&str, &[&str]); 7] = [
        ("platform", &["entities"]),
        ("people", &["entities", "platform"]),
        ("webhooks", &["entities", "platform", "people"]),
        ("billing", &["entities", "platform", "people", "webhooks"]),
        ("meetings", &["entities", "platform", "people", "webhooks", "billing"]),
        ("nodes", &["entities", "platform", "people", "webhooks", "billing", "meetings"]),
        ("http", &["entities", "platform", "people", "webhooks", "billing", "meetings", "nodes"]),
    ];
    let contexts =
        ["entities", "platform", "people", "webhooks", "billing", "meetings", "nodes", "http", "roles", "cli"];
    let mut offences = Vec::new();
    for (context, below) in allowed {
        let prefix = format!("api/src/{context}/");
        for path in tracked_files().into_iter().filter(|path| path.starts_with(&prefix) && path.ends_with(".rs")) {
            for named in crate_modules_named(&read(&path)) {
                if named != context && contexts.contains(&named.as_str()) && !below.contains(&named.as_str()) {
                    offences.push(format!("{path} names `crate::{named}`"));
                }
            }
        }
    }
    assert!(offences.is_empty(), "a context reaches up or sideways: {offences:#?}");
    let sample = crate_modules_named("use crate::{a::B, c::{d, e}};\n// crate::f\nlet x = crate::g::h();");
    assert_eq!(sample.into_iter().collect::<Vec<_>>(), ["a", "c", "g"], "the reader sees what code names");
}

#[test]
fn transactions_take_the_write_lock_as_they_begin() {
    // On SQLite a transaction begun plainly fails, without waiting, at its first write after another writer
    // committed: `platform::db::begin_write` begins them IMMEDIATE.
    let offenders: Vec<String> = tracked_files()
        .into_iter()
        .filter(|path| path.starts_with("api/src/") && path.ends_with(".rs"))
        .filter(|path| read(path).contains(".begin().await"))
        .collect();
    assert!(offenders.is_empty(), "begin transactions with platform::db::begin_write in {offenders:?}");
}
