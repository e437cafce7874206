//! Mounts the Leptos site: the meet host's pages for requests whose `Host` is the meet host, the main site's
//! for everything else, the browser bundle under `/pkg` (its precompressed copies where the browser takes
//! them), the embedded stylesheet and icon, and the iframe API script `/external_api.js` and the encryption
//! worker `/e2ee-worker.js`.

use std::path::{Path, PathBuf};

use actix_files::{NamedFile, file_extension_to_mime};
use actix_web::{
    HttpRequest, HttpResponse, Responder, error, guard,
    http::header::{self, AcceptEncoding, ContentEncoding, Encoding, Header},
    web,
};
use convene_app::{ASSETS_PATH, Surface, backend::SharedBackend, shell};
use leptos::prelude::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_actix::{LeptosRoutes, generate_route_list};

/// The stylesheet and icon are compiled in: one file to deploy, and never out of step with the markup.
const STYLESHEET: &str = include_str!("../../../../assets/convene.css");
const FAVICON: &str = include_str!("../../../../assets/favicon.svg");
/// The iframe API customers include from the meet host (JavaScript: it runs in their pages, not ours).
const EXTERNAL_API: &str = include_str!("../../../../assets/external_api.js");
/// The end-to-end encryption frame worker: browsers run encoded transforms in a worker, so it is JavaScript.
const E2EE_WORKER: &str = include_str!("../../../../assets/e2ee-worker.js");

/// What the site needs at run time.
#[derive(Clone)]
pub struct Site {
    /// Leptos's options (bundle name and location).
    pub options: LeptosOptions,
    /// The meet host's name, from `CONVENE_MEET_URL`.
    pub meet_host: String,
    /// What server functions call.
    pub backend: SharedBackend,
}

impl Site {
    /// Builds the options for a bundle in `site_dir` (the folder holding `pkg/`).
    pub fn new(site_dir: &Path, meet_host: String, backend: SharedBackend) -> Self {
        let bundles = [Surface::Site, Surface::Meet].map(Surface::bundle);
        if !bundles.iter().all(|bundle| site_dir.join("pkg").join(format!("{bundle}.js")).is_file()) {
            tracing::warn!(
                site_dir = %site_dir.display(),
                "the browser bundle is missing: pages render but do not hydrate (build it with `cargo xtask up`, or set CONVENE_SITE_DIR)"
            );
        }
        let options = LeptosOptions::builder()
            // Each page's shell names its own host's bundle; this is the default.
            .output_name(Surface::Site.bundle())
            .site_root(site_dir.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .build();
        Self { options, meet_host, backend }
    }

    /// Registers the routes. Call after every other service: the site's catch-all routes come last.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let pkg_dir = Path::new(self.options.site_root.as_ref()).join("pkg");
        cfg.app_data(web::Data::new(self.options.clone()))
            .route(
                &format!("{ASSETS_PATH}/convene.css"),
                web::get().to(|| asset(STYLESHEET, "text/css; charset=utf-8")),
            )
            .route(&format!("{ASSETS_PATH}/favicon.svg"), web::get().to(|| asset(FAVICON, "image/svg+xml")))
            .route("/external_api.js", web::get().to(|| asset(EXTERNAL_API, "text/javascript; charset=utf-8")))
            .route("/e2ee-worker.js", web::get().to(|| asset(E2EE_WORKER, "text/javascript; charset=utf-8")));
        // Without a bundle (warned about in `new`) `/pkg` falls through to the site's "not found" page.
        if pkg_dir.is_dir() {
            cfg.route(
                "/pkg/{file}",
                web::route().guard(guard::Any(guard::Get()).or(guard::Head())).to(
                    move |request: HttpRequest, file: web::Path<String>| {
                        bundle_file(request, pkg_dir.clone(), file.into_inner())
                    },
                ),
            );
        }

        let backend = self.backend.clone();
        let context = move || provide_context(backend.clone());

        let meet_options = self.options.clone();
        let meet_routes = generate_route_list(move || convene_app::surface_view(Surface::Meet));
        let meet_context = context.clone();
        cfg.service(web::scope("").guard(guard::Host(self.meet_host.clone())).configure(|meet| {
            meet.leptos_routes_with_context(meet_routes, meet_context, move || {
                shell(meet_options.clone(), Surface::Meet)
            });
        }));

        let site_options = self.options.clone();
        let site_routes = generate_route_list(move || convene_app::surface_view(Surface::Site));
        cfg.leptos_routes_with_context(site_routes, context, move || shell(site_options.clone(), Surface::Site));
    }
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site").field("meet_host", &self.meet_host).finish_non_exhaustive()
    }
}

/// The compressed copies `cargo xtask` writes beside each bundle file, with their file suffix.
const PRECOMPRESSED: [(ContentEncoding, &str); 2] = [(ContentEncoding::Brotli, "br"), (ContentEncoding::Gzip, "gz")];

/// A file of the bundle folder: the brotli or gzip copy beside it when the browser takes that encoding (sent
/// as it is; the `Compress` middleware leaves encoded responses alone), else the file itself.
async fn bundle_file(request: HttpRequest, folder: PathBuf, name: String) -> actix_web::Result<HttpResponse> {
    // A plain file name only: nothing outside the folder.
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(error::ErrorNotFound("no such file"));
    }
    let copies: Vec<(ContentEncoding, PathBuf)> = PRECOMPRESSED
        .iter()
        .map(|(encoding, suffix)| (*encoding, folder.join(format!("{name}.{suffix}"))))
        .filter(|(_, path)| path.is_file())
        .collect();
    let offered: Vec<Encoding> =
        copies.iter().map(|(encoding, _)| Encoding::Known(*encoding)).chain([Encoding::identity()]).collect();
    let chosen = AcceptEncoding::parse(&request).ok().and_then(|accepted| accepted.negotiate(offered.iter()));
    let file = match copies.into_iter().find(|(encoding, _)| chosen == Some(Encoding::Known(*encoding))) {
        Some((encoding, path)) => {
            let extension = Path::new(&name).extension().and_then(|extension| extension.to_str()).unwrap_or("");
            NamedFile::open_async(path)
                .await?
                .set_content_type(file_extension_to_mime(extension))
                .set_content_encoding(encoding)
        }
        None => NamedFile::open_async(folder.join(&name)).await?,
    };
    Ok(file.customize().insert_header((header::VARY, "accept-encoding")).respond_to(&request).map_into_boxed_body())
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}
