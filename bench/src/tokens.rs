//! The control plane minting room tokens under load (`convene bench --target tokens`): `convene up` on its
//! embedded default, and `--participants` clients, each on one kept-alive connection, minting tokens back
//! to back with the tenant's API key for `--seconds`, as a customer's backend mints one per person joining.
//! Prints tokens a second, the latency's median, p99 and slowest, the requests that failed or timed out,
//! and the server's CPU apart from the clients'.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::time::Instant;

use crate::{BenchOptions, measure::cpu_seconds, targets::ConveneSfu};

/// A request slower than this counts as timed out (and is not waited for).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Minted before the window opens, so the tenant's key exists and connections are up.
const WARM_UP: usize = 20;

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResult {
    /// Clients minting at once.
    pub clients: usize,
    /// Seconds measured.
    pub seconds: f64,
    /// Tokens minted (201) in the window.
    pub tokens: usize,
    pub tokens_per_second: f64,
    /// Latency of the minted ones, ms.
    pub median_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Answers other than 201.
    pub failures: usize,
    /// Requests with no answer within 5 s.
    pub timeouts: usize,
    /// The server's CPU time over the window, and of how many cores.
    pub server_cpu_seconds: f64,
    pub server_cores_busy: f64,
    /// The clients' (this process's) CPU time over the window.
    pub clients_cpu_seconds: f64,
}

/// What one client saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    failures: usize,
    timeouts: usize,
}

pub async fn run(options: &BenchOptions) -> anyhow::Result<TokenResult> {
    let dir = &options.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    println!("\ntokens: {} clients minting room tokens, {} s", options.participants, options.seconds);
    let server = ConveneSfu::start(options, dir).await?;
    let outcome = load(&server, options).await;
    server.stop().await;
    let result = outcome?;
    std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&result)?).context("cannot write result.json")?;
    println!(
        "  {} tokens in {:.0} s: {:.0} tokens/s; latency median {:.1} ms, p99 {:.1} ms, slowest {:.1} ms; \
         {} failed, {} timed out\n  server {:.2} CPU-s ({:.2} cores busy); clients {:.2} CPU-s",
        result.tokens,
        result.seconds,
        result.tokens_per_second,
        result.median_ms,
        result.p99_ms,
        result.max_ms,
        result.failures,
        result.timeouts,
        result.server_cpu_seconds,
        result.server_cores_busy,
        result.clients_cpu_seconds,
    );
    println!("written to {}", dir.display());
    Ok(result)
}

async fn load(server: &ConveneSfu, options: &BenchOptions) -> anyhow::Result<TokenResult> {
    let (url, api_key) = server.token_endpoint();
    let body = serde_json::json!({ "room": "bench-0", "user": { "name": "Bench Participant" } });
    let clients: Vec<reqwest::Client> = (0..options.participants)
        .map(|_| reqwest::Client::builder().pool_max_idle_per_host(1).timeout(REQUEST_TIMEOUT).build())
        .collect::<Result<_, _>>()?;
    for client in clients.iter().cycle().take(WARM_UP.max(clients.len())) {
        let answer = client.post(&url).bearer_auth(&api_key).json(&body).send().await.context("minting a token")?;
        anyhow::ensure!(answer.status() == 201, "convene refused a token: {}", answer.text().await.unwrap_or_default());
    }
    let (server_before, clients_before) = (cpu_seconds(Some(server.pid())), cpu_seconds(None));
    let started = Instant::now();
    let until = started + Duration::from_secs(options.seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (url, api_key, body) = (url.clone(), api_key.clone(), body.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                while Instant::now() < until {
                    let sent = Instant::now();
                    match client.post(&url).bearer_auth(&api_key).json(&body).send().await {
                        Ok(answer) if answer.status() == 201 => {
                            // The whole answer, as a backend reads it before handing the link on.
                            if answer.bytes().await.is_ok() {
                                let micros = sent.elapsed().as_micros();
                                seen.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
                            } else {
                                seen.failures += 1;
                            }
                        }
                        Ok(_) => seen.failures += 1,
                        Err(error) if error.is_timeout() => seen.timeouts += 1,
                        Err(_) => seen.failures += 1,
                    }
                }
                seen
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut failures, mut timeouts) = (0, 0);
    for task in tasks {
        let seen = task.await.context("a client stopped")?;
        latencies.extend(seen.latencies_us);
        failures += seen.failures;
        timeouts += seen.timeouts;
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(Some(server.pid())) - server_before;
    let clients_cpu = cpu_seconds(None) - clients_before;
    latencies.sort_unstable();
    let at = |share: f64| {
        let index = ((latencies.len() as f64 * share).ceil() as usize).saturating_sub(1);
        latencies.get(index).map_or(0.0, |&micros| f64::from(micros) / 1000.0)
    };
    Ok(TokenResult {
        clients: options.participants,
        seconds,
        tokens: latencies.len(),
        tokens_per_second: latencies.len() as f64 / seconds,
        median_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        failures,
        timeouts,
        server_cpu_seconds: server_cpu,
        server_cores_busy: server_cpu / seconds,
        clients_cpu_seconds: clients_cpu,
    })
}
