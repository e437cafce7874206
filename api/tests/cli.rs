//! The `convene` binary as a person runs it: help, bad input (one clear line, non-zero exit, nothing
//! half-written), the admin command, and a clean stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

/// `convene` with a private data dir, free ports and none of the caller's `CONVENE_*` settings.
fn convene(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CONVENE_")) {
        command.env_remove(name);
    }
    command
        .env("CONVENE_DATA_DIR", data_dir)
        .env("CONVENE_HTTP_ADDR", "127.0.0.1:0")
        .env("CONVENE_METRICS_ADDR", "127.0.0.1:0")
        .env("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:0")
        .env("CONVENE_SIP_ADDR", "127.0.0.1:0")
        .env("CONVENE_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("convene runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The failure contract: exit code 1 and one `error:` line that contains every expected fragment.
fn assert_fails_with(output: &Output, fragments: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let error_lines: Vec<&str> = text.lines().filter(|line| line.starts_with("error: ")).collect();
    assert_eq!(error_lines.len(), 1, "one error line expected: {text}");
    for fragment in fragments {
        assert!(error_lines[0].contains(fragment), "missing {fragment:?} in {text}");
    }
}

#[test]
fn help_lists_the_commands_and_every_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(convene(dir.path()).arg("--help"));
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in ["up", "api", "media", "migrate", "admin", "CONVENE_HTTP_ADDR", "CONVENE_DATABASE_URL"] {
        assert!(text.contains(expected), "--help lacks {expected}: {text}");
    }
    let output = run(convene(dir.path()).args(["admin", "create-tenant", "--help"]));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("--owner-email") && text.contains("--owner-password"), "{text}");
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = run(convene(dir.path()).arg("frobnicate"));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("unrecognized subcommand 'frobnicate'"), "{}", stderr(&unknown));

    let missing = run(convene(dir.path()).args(["admin", "create-tenant", "--name", "Acme"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("--owner-email"), "{}", stderr(&missing));

    let bare = run(&mut convene(dir.path()));
    assert_eq!(bare.status.code(), Some(2), "no command prints usage");
}

#[test]
fn a_bad_setting_names_itself_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = run(convene(&data).env("CONVENE_HTTP_ADDR", "localhost").arg("up"));
    assert_fails_with(&output, &["CONVENE_HTTP_ADDR", "`localhost`", "127.0.0.1:3000"]);
    assert!(!data.exists(), "nothing is created before the settings are valid");

    let output = run(convene(&data).env("CONVENE_DATABASE_URL", "mysql://db/convene").arg("migrate"));
    assert_fails_with(&output, &["CONVENE_DATABASE_URL", "postgres://"]);

    let output = run(convene(&data).env("CONVENE_LOG", "[[[").arg("migrate"));
    assert_fails_with(&output, &["CONVENE_LOG"]);
}

#[test]
fn a_port_in_use_is_reported_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = run(convene(&data).env("CONVENE_HTTP_ADDR", &address).arg("up"));
    assert_fails_with(&output, &[&address, "already in use", "CONVENE_HTTP_ADDR"]);
    assert!(!data.exists(), "the data dir is untouched");
}

#[test]
fn an_unwritable_data_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A path below a regular file cannot be created, whoever we run as.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let output = run(convene(&file.join("data")).arg("migrate"));
    assert_fails_with(&output, &["CONVENE_DATA_DIR", "cannot be created"]);
    // sysfs refuses new files even to root, which a chmod'ed folder would not.
    let output = run(convene(Path::new("/sys/fs")).arg("migrate"));
    assert_fails_with(&output, &["CONVENE_DATA_DIR /sys/fs is not writable"]);
}

#[test]
fn an_unreachable_database_is_reported_promptly() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    let started = Instant::now();
    let output =
        run(convene(dir.path()).env("CONVENE_DATABASE_URL", "postgres://convene:s3cret@127.0.0.1:1/convene").arg("up"));
    assert_fails_with(&output, &["cannot connect to the database", "CONVENE_DATABASE_URL", "127.0.0.1:1"]);
    assert!(!stderr(&output).contains("s3cret"), "the password is redacted: {}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
}

#[test]
fn migrate_and_create_tenant_work_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = run(convene(dir.path()).arg("migrate"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("up to date"));
    assert!(dir.path().join("convene.db").is_file());

    let create = |email: &str| {
        run(convene(dir.path()).args([
            "admin",
            "create-tenant",
            "--name",
            "Acme",
            "--owner-email",
            email,
            "--owner-password",
            "correct horse battery",
        ]))
    };
    let created = create("ann@acme.example");
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_slice(&created.stdout).expect("stdout is JSON");
    assert!(json["tenant_id"].as_str().is_some_and(|id| id.len() == 36), "{json}");
    assert!(json["api_key"].as_str().is_some_and(|key| key.starts_with("cvn_")), "{json}");
    assert_eq!(json["owner_email"], "ann@acme.example");
    assert_eq!(json["owner_role"], "owner");

    assert_fails_with(&create("ANN@acme.example"), &["already exists"]);
    let weak = run(convene(dir.path()).args([
        "admin",
        "create-tenant",
        "--name",
        "Acme",
        "--owner-email",
        "bo@acme.example",
        "--owner-password",
        "short",
    ]));
    assert_fails_with(&weak, &["too short", "at least 8"]);

    // The embedded default sealed the new tenant's keys with a key of its own, which reseal-keys uses.
    let resealed = run(convene(dir.path()).args(["admin", "reseal-keys"]));
    assert!(resealed.status.success(), "{}", stderr(&resealed));
    assert!(String::from_utf8_lossy(&resealed.stdout).contains("Resealed 0 private signing keys"));
    assert!(dir.path().join("secret-key").is_file());

    // The operator gives the organisation a dial-in number, lists it and takes it back.
    let tenant = json["tenant_id"].as_str().unwrap();
    let numbers = |args: &[&str]| run(convene(dir.path()).args(["admin", "dial-in-numbers"]).args(args));
    let added =
        numbers(&["add", "--tenant", tenant, "--number", "+1 (555) 123-4567", "--country", "us", "--toll-free"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let added: serde_json::Value = serde_json::from_slice(&added.stdout).expect("stdout is JSON");
    assert_eq!((added["number"].as_str(), added["country"].as_str()), (Some("+15551234567"), Some("US")), "{added}");
    assert_eq!((added["tenant_id"].as_str(), added["toll_free"].as_bool()), (Some(tenant), Some(true)), "{added}");
    let again = ["add", "--tenant", tenant, "--number", "+15551234567", "--country", "US"];
    assert_fails_with(&numbers(&again), &["+15551234567 is assigned already"]);
    let bad = ["add", "--tenant", tenant, "--number", "555-1234", "--country", "US"];
    assert_fails_with(&numbers(&bad), &["--number", "international form"]);
    let stranger =
        ["add", "--tenant", "00000000-0000-7000-8000-000000000000", "--number", "+15550000000", "--country", "US"];
    assert_fails_with(&numbers(&stranger), &["no organisation has the id"]);
    let listed: serde_json::Value = serde_json::from_slice(&numbers(&["list"]).stdout).expect("JSON");
    assert_eq!(listed["numbers"].as_array().map(Vec::len), Some(1), "{listed}");
    assert!(numbers(&["remove", "--number", "+15551234567"]).status.success());
    assert_fails_with(&numbers(&["remove", "--number", "+15551234567"]), &["+15551234567 is not assigned"]);
}

#[test]
fn generate_secret_key_prints_a_fresh_key_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let key = || {
        let output = run(convene(dir.path()).args(["admin", "generate-secret-key"]));
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let (first, second) = (key(), key());
    assert_ne!(first, second);
    assert_eq!(data_encoding::BASE64.decode(first.as_bytes()).unwrap().len(), 32, "{first}");
    let bad = run(convene(dir.path()).env("CONVENE_SECRET_KEY", "short").arg("migrate"));
    assert_fails_with(&bad, &["CONVENE_SECRET_KEY", "generate-secret-key"]);
}

#[test]
fn up_prints_where_it_runs_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = convene(dir.path())
        .env("CONVENE_LOG", "info")
        .arg("up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    while !banner.contains("Stop with Ctrl-C") {
        assert_ne!(stdout.read_line(&mut banner).unwrap(), 0, "convene up exited early: {banner}");
    }
    for expected in ["listening on http://127.0.0.1:", "http://localhost:3000/", "meet.localhost", "create-tenant"] {
        assert!(banner.contains(expected), "banner lacks {expected}: {banner}");
    }
    let address = banner.split("listening on http://").nth(1).and_then(|rest| rest.lines().next()).unwrap();
    let health = std::net::TcpStream::connect(address);
    assert!(health.is_ok(), "the server listens on {address}");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "convene did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(status.success(), "exit {status}: {logs}");
    assert!(logs.contains("shut down cleanly"), "{logs}");
}
