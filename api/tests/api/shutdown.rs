//! Graceful shutdown: a request already being handled when shutdown starts still gets its answer, and the
//! port is closed once the server has stopped.

use std::{sync::Arc, time::Duration};

use convene_api::{
    http::routes::health::Dependencies,
    http::server::{self, HttpApp},
    platform::metrics::Metrics,
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn in_flight_requests_finish_before_the_server_stops() {
    // `/readyz` probing a media node that never answers takes the full check timeout (2 s): a request that
    // is reliably still in its handler when shutdown begins.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = listener.local_addr().unwrap();
    let app = HttpApp {
        dependencies: Dependencies { media: Some(silent.local_addr().unwrap()), ..Dependencies::default() },
        metrics: Arc::new(Metrics::new()),
        site: None,
        node: None,
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, app, shutdown.clone(), Duration::from_secs(10)));

    let in_flight = tokio::spawn(reqwest::get(format!("http://{address}/readyz")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();

    let response = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight request is answered")
        .unwrap()
        .expect("with a response, not a dropped connection");
    assert_eq!(response.status(), 503, "the handler ran to completion");

    tokio::time::timeout(Duration::from_secs(10), server).await.expect("the server stops").unwrap().unwrap();
    assert!(TcpStream::connect(address).await.is_err(), "a stopped server accepts no connections");
}
