//! The bucket's HTTP client: hyper with rustls on the ring provider. object_store's own client (reqwest)
//! would turn on rustls's aws-lc-rs provider beside ring, and rustls then has no default provider: every TLS
//! client in the process that names none (Stripe's, the mail relay's) would panic.

use std::{sync::Arc, time::Duration};

use http_body_util::BodyExt;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector as TcpConnector},
    rt::TokioExecutor,
};
use object_store::{
    ClientConfigKey, ClientOptions,
    client::{
        HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
        HttpResponseBody, HttpService,
    },
};

/// How long a request may wait for the response's head (the body streams after).
const RESPONSE_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes object_store's HTTP clients (it asks once per store).
#[derive(Debug, Clone, Copy)]
pub struct RingTls;

impl HttpConnector for RingTls {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let tls = HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|error| object_store::Error::Generic { store: "S3", source: Box::new(error) })?;
        // Plain HTTP only where the operator allows it (a local S3-compatible store).
        let allow_http = options.get_config_value(&ClientConfigKey::AllowHttp).as_deref() == Some("true");
        let schemes = if allow_http { tls.https_or_http() } else { tls.https_only() };
        let client = Client::builder(TokioExecutor::new()).build(schemes.enable_http1().build());
        Ok(HttpClient::new(Hyper(client)))
    }
}

#[derive(Debug)]
struct Hyper(Client<HttpsConnector<TcpConnector>, HttpRequestBody>);

#[async_trait::async_trait]
impl HttpService for Hyper {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = tokio::time::timeout(RESPONSE_HEAD_TIMEOUT, self.0.request(request))
            .await
            .map_err(|elapsed| HttpError::new(HttpErrorKind::Timeout, elapsed))?
            .map_err(|error| {
                let kind = if error.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
                HttpError::new(kind, error)
            })?;
        Ok(response
            .map(|body| HttpResponseBody::new(body.map_err(|error| HttpError::new(HttpErrorKind::Interrupted, error)))))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rustls_has_one_provider_so_clients_that_name_none_still_work() {
        // Stripe's client builds its TLS this way; with a second provider turned on, this panics.
        drop(rustls::ClientConfig::builder());
    }
}
