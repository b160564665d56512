//! `orders-extract`: pulls one window's orders from an HTTP API page by
//! page and writes each page, as received, to the window's output in
//! object storage (`pages/page-NNNN.json`), for `orders-transform`.
//!
//! The API (`scripts/orders_api.py` for the example) answers
//! `GET <url>?from=MS&to=MS&limit=N&cursor=C` with
//! `{"orders": [...], "next": C | null}`. Keeping the raw pages makes the
//! window reproducible: a transform can be re-run without calling the API.
//!
//! Params: `url` (required), `page_size` (default 25), `container`
//! (default `lake`). A 5xx, 429 or a dropped connection is retryable;
//! a request outside the allowlists is fatal.

use serde::Deserialize;
use tidemark_sdk::{export_task, http, info, Container, Context, Error, Outcome, Result, Task};

/// More pages than this for one window is a bug in the API (a cursor that
/// never ends), not data.
const MAX_PAGES: usize = 10_000;

#[derive(Deserialize)]
struct Page {
    orders: Vec<serde_json::Value>,
    next: Option<String>,
}

struct Extract;

impl Task for Extract {
    fn run(ctx: &Context) -> Result<Outcome> {
        let url: String = ctx.require_param("url")?;
        let page_size: u32 = ctx.param_or("page_size", 25)?;
        let lake = Container::new(ctx.param("container").unwrap_or("lake"));
        let w = ctx.window();
        let mut cursor = "0".to_owned();
        let mut orders = 0;
        let mut pages = 0;
        loop {
            if pages == MAX_PAGES {
                return Err(Error::fatal(format!(
                    "{url}: more than {MAX_PAGES} pages for one window"
                )));
            }
            let page_url = format!(
                "{url}?from={}&to={}&limit={page_size}&cursor={cursor}",
                w.start_ms, w.end_ms
            );
            let resp = http::request("GET", &page_url, &[("accept", "application/json")], None)?
                .error_for_status()?;
            let page: Page = resp.json()?;
            orders += page.orders.len();
            lake.write(&format!("pages/page-{pages:04}.json"), &resp.body)?;
            pages += 1;
            match page.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        info!("{orders} orders in {pages} pages from {url}");
        Ok(Outcome::summary(format!(
            "{orders} orders in {pages} pages"
        )))
    }
}

export_task!(Extract);
