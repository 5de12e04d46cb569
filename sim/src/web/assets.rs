//! The page's embedded assets: `assets/index.html` with `assets/wa.js` inlined into it, so the
//! page is one self-contained document (it survives drivers replaying a cached `index.html`).

use super::WebSimConfig;

const INDEX_HTML: &str = include_str!("assets/index.html");
const WA_JS: &str = include_str!("assets/wa.js");

/// The HTML served at `/`.
pub(super) fn page_html(config: &WebSimConfig) -> String {
    let version = config
        .web_version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect::<String>();
    let js = WA_JS.replace("__WA_VERSION__", &version);
    INDEX_HTML.replace("/*__WA_JS__*/", &js)
}
