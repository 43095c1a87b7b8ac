//! The static simple index: rendering a tree's pages (`render`: PEP 503
//! HTML and PEP 691 JSON project pages, root pages, the landing page),
//! the templates they come from (`templates`), and `airlock index DIR`
//! (`local`), which indexes a directory of wheels and sdists the same way,
//! and the manifest's lock files rewritten to point into the tree (`locks`).

pub mod local;
pub mod locks;
pub mod render;
pub mod templates;

pub use render::{
    EnvStatus, RenderError, SecuritySummary, SiteFile, SiteInfo, SiteRender, Statuses, Unselected, VulnMark,
    render_site, version_anchor,
};
pub use templates::{TemplateError, Templates};
