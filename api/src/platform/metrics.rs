//! Prometheus metrics: one registry per process, served as text at `/metrics`. HTTP requests are counted
//! by route pattern (not raw path), so label cardinality stays bounded whatever clients send.

use std::{sync::Arc, time::Instant};

use actix_web::{
    Error,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The process registry and the HTTP metrics recorded by the middleware.
#[derive(Debug)]
pub struct Metrics {
    /// Everything registered, encoded on each scrape.
    pub registry: Registry,
    http: HttpMetrics,
    process: ProcessMetrics,
}

/// The process's CPU and memory, read from `/proc` at each scrape, under the standard names.
#[derive(Debug, Clone, Default)]
struct ProcessMetrics {
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    resident_bytes: Gauge,
    peak_resident_bytes: Gauge,
}

#[derive(Debug, Clone)]
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// Buckets from 1 ms to ~16 s: page renders and API calls, not media.
fn duration_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// A registry with the HTTP and build metrics; roles add their own (the media node's) before serving.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        };
        registry.register("convene_http_requests", "HTTP requests by route pattern and status", http.requests.clone());
        registry.register(
            "convene_http_request_duration_seconds",
            "HTTP request latency by route pattern",
            http.duration.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("convene_build_info", "The running version", build);
        let process = ProcessMetrics::default();
        registry.register("process_cpu_seconds", "CPU time used, user and system", process.cpu_seconds.clone());
        registry.register("process_resident_memory_bytes", "Resident memory", process.resident_bytes.clone());
        registry.register(
            "process_peak_resident_memory_bytes",
            "The most resident memory so far",
            process.peak_resident_bytes.clone(),
        );
        Self { registry, http, process }
    }

    /// The scrape body in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        if let Ok(usage) = convene_media::process::usage(None) {
            self.process.cpu_seconds.set(usage.cpu_seconds);
            self.process.resident_bytes.set(i64::try_from(usage.rss_bytes).unwrap_or(i64::MAX));
            self.process.peak_resident_bytes.set(i64::try_from(usage.peak_rss_bytes).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

const STANDARD_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Middleware: counts and times every request by its matched route.
pub async fn record(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let metrics = request.app_data::<web::Data<Arc<Metrics>>>().map(|metrics| metrics.http.clone());
    // Clients may send any token as a method; only the standard ones become label values.
    let method = STANDARD_METHODS.into_iter().find(|known| *known == request.method().as_str()).unwrap_or("OTHER");
    let started = Instant::now();
    let response = next.call(request).await?;
    if let Some(metrics) = metrics {
        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16();
        metrics.requests.get_or_create(&RequestLabels { method, route: route.clone(), status }).inc();
        metrics.duration.get_or_create(&RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
