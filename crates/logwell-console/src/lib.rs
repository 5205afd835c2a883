//! The web console served at `/console`: log groups, streams and Live Tail, as three static files
//! (HTML, CSS and plain JavaScript, no build step) embedded in the binary. The pages call the
//! CloudWatch Logs API on the same port (`POST /`) and follow live tails through `GET /live-tail`
//! (Server-Sent Events).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// One embedded file: its path under `/console`, its content type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: &[Asset] = &[
    Asset {
        path: "/console",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        path: "/console/sigv4.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/sigv4.js"),
    },
    Asset {
        path: "/console/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
];

/// The console's routes, to merge into the server's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for asset in ASSETS {
        let handler = move || async move {
            (
                [
                    (CONTENT_TYPE, asset.content_type),
                    // The assets change with the binary: revalidate rather than cache.
                    (CACHE_CONTROL, "no-cache"),
                ],
                asset.body,
            )
                .into_response()
        };
        router = router.route(asset.path, get(handler));
        if asset.path == "/console" {
            router = router.route("/console/", get(handler));
        }
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_assets() {
        let html = ASSETS[0].body;
        for asset in &ASSETS[1..] {
            assert!(html.contains(asset.path), "index.html links {}", asset.path);
        }
        // Nothing is fetched from elsewhere at run time.
        for asset in ASSETS {
            assert!(
                !asset.body.contains("https://"),
                "{} loads from the internet",
                asset.path
            );
            assert!(
                !asset.body.contains("http://"),
                "{} loads from the internet",
                asset.path
            );
        }
    }
}
