//! `GET /recordings/{id}/{file}`: a ready recording's file through a signed, expiring link (from the API or
//! the site's recordings page), served with ranges so players can seek; and the recordings page's delete
//! form.

use actix_files::NamedFile;
use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use convene_app::forms::Flash;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    http::AppState,
    http::routes::{
        auth::{back_with, unexpected},
        team::{SignedIn, forbidden, not_found},
    },
    meetings::recordings::{DownloadError, RecordingError, Stored},
};

/// Registers the download route and the delete form.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(download).service(delete);
}

/// Owners and admins delete a recording from the recordings page.
#[post("/recordings/{id}/delete")]
async fn delete(SignedIn(actor): SignedIn, id: web::Path<Uuid>, state: web::Data<AppState>) -> HttpResponse {
    match state.recordings.delete_as(actor, *id).await {
        Ok(()) => back_with("/recordings", &Flash::success("recording", "The recording is deleted."), state.cookies),
        Err(RecordingError::NotFound) => not_found(),
        Err(RecordingError::Forbidden) => forbidden(),
        Err(RecordingError::Conflict(words)) => {
            back_with("/recordings", &Flash::failure("recording", words), state.cookies)
        }
        Err(error) => unexpected("/recordings", "recording", &error, state.cookies),
    }
}

#[derive(Deserialize)]
struct Signed {
    expires: i64,
    signature: String,
}

#[get("/recordings/{id}/{file}")]
async fn download(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    signed: Option<web::Query<Signed>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (id, file) = path.into_inner();
    let (Ok(id), Some(signed)) = (uuid::Uuid::parse_str(&id), signed) else {
        return refusal(&DownloadError::NotFound);
    };
    let link = (signed.expires, signed.signature.as_str());
    let path = match state.recordings.download(id, &file, link, chrono::Utc::now()).await {
        Ok(Stored::File(path)) => path,
        // The bucket serves it (ranges and all) for as long as this link lasts.
        Ok(Stored::Bucket(url)) => {
            return HttpResponse::Found()
                .insert_header((header::LOCATION, url.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        Err(error) => return refusal(&error),
    };
    match NamedFile::open_async(&path).await {
        Ok(named) => {
            let mut response = named.use_etag(true).into_response(&request);
            let headers = response.headers_mut();
            // Already compressed media: the compression middleware leaves it as it is.
            headers.insert(header::CONTENT_ENCODING, header::HeaderValue::from_static("identity"));
            headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("private, max-age=3600"));
            response
        }
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "a ready recording's file is missing");
            refusal(&DownloadError::NotFound)
        }
    }
}

fn refusal(error: &DownloadError) -> HttpResponse {
    let mut response = match error {
        DownloadError::NotFound => HttpResponse::NotFound(),
        DownloadError::Refused | DownloadError::Expired => HttpResponse::Forbidden(),
        DownloadError::Database(error) => {
            tracing::error!(%error, "a recording download failed");
            HttpResponse::ServiceUnavailable()
        }
        DownloadError::Storage(reason) => {
            tracing::error!(%reason, "a recording's bucket could not sign a link");
            HttpResponse::ServiceUnavailable()
        }
    };
    response.content_type("text/plain; charset=utf-8").body(error.to_string())
}
